#!/usr/bin/env python3
"""Grad-CAM in Python, the oracle for featscope's native Grad-CAM.

  gradcam_oracle.py MODEL.pt INPUT.f32 N,C,H,W LAYER OUT.f32 [class ...]

Eager torchvision twin with the TorchScript file's state_dict; a forward hook keeps the layer's
output A; score = sum_i logits[i, c_i] (c_i: given, else each image's argmax); alpha = spatial mean
of dscore/dA; cam = ReLU(sum_k alpha_k A_k). Writes cam [N, h, w] as float32, then the classes.
"""
import sys

import torch

from twin import load_twin, read_input, target_classes


def main():
    model_path, input_path, shape, layer, out_path, *classes = sys.argv[1:]
    shape = [int(s) for s in shape.split(",")]
    model, _ = load_twin(model_path)
    acts = {}
    dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: acts.__setitem__("A", o))
    x = read_input(input_path, shape)
    logits = model(x)
    cls = target_classes(logits, classes)
    score = logits.gather(1, cls.view(-1, 1)).sum()
    A = acts["A"]
    (g,) = torch.autograd.grad(score, A)
    alpha = g.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * A).sum(1)).detach()
    with open(out_path, "wb") as f:
        f.write(cam.numpy().astype("<f4").tobytes())
        f.write(cls.numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()
