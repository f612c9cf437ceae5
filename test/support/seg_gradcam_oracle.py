#!/usr/bin/env python3
"""Grad-CAM with a segmentation target in Python, the oracle for featscope's native one.

  seg_gradcam_oracle.py MODEL.pt INPUT.f32 N,C,H,W LAYER OUT.f32 [class ...]

Eager torchvision twin (rebuilt from featscope.json, loaded with the file's state_dict); a forward
hook keeps the layer's output A; out = model(x)["out"] ([N, K, H, W]); each image's class c_i is
given (one for all, or one each), else the class predicted on the most pixels (lowest index on a
tie); score = sum_i (out[i, c_i] * (out[i].argmax(0) == c_i)).sum(); alpha = spatial mean of
dscore/dA; cam = ReLU(sum_k alpha_k A_k). Writes cam [N, h, w], then the classes, each class's
mean softmax probability over its mask (0 when empty) and the mask's pixel count, as float32.
"""
import sys

import numpy as np
import torch

from twin import load_twin, read_input


def main():
    model_path, input_path, shape, layer, out_path, *classes = sys.argv[1:]
    model, _meta = load_twin(model_path)
    acts = {}
    dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: acts.__setitem__("A", o))
    x = read_input(input_path, [int(s) for s in shape.split(",")])
    out = model(x)["out"]
    n, k = out.shape[:2]
    pred = out.detach().argmax(1)
    if classes:
        cls = torch.tensor([int(c) for c in classes]).expand(n) if len(classes) == 1 else torch.tensor([int(c) for c in classes])
    else:
        cls = torch.tensor([int(np.bincount(p.flatten().numpy(), minlength=k).argmax()) for p in pred])
    mask = (pred == cls.view(n, 1, 1)).float()
    score = (out[torch.arange(n), cls] * mask).sum()
    A = acts["A"]
    (g,) = torch.autograd.grad(score, A)
    alpha = g.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * A).sum(1)).detach()
    p = torch.softmax(out.detach(), 1)[torch.arange(n), cls]
    pixels = mask.sum((1, 2))
    probs = (p * mask).sum((1, 2)) / pixels.clamp(min=1)
    with open(out_path, "wb") as f:
        for t in (cam, cls.float(), probs, pixels):
            f.write(t.numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()
