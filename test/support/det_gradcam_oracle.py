#!/usr/bin/env python3
"""Grad-CAM with a detection target in Python, the oracle for featscope's native one.

  det_gradcam_oracle.py MODEL.pt INPUT.f32 N,C,H,W LAYER BOX OUT.f32

Eager torchvision twin (rebuilt from featscope.json, loaded with the file's state_dict), one
intra-op thread (as the test pins featscope: near-tied scores of an untrained detector rank the
same way); a forward hook keeps the layer's output A; dets = model(list of images), one
{boxes, labels, scores} per image, sorted by score; score = sum_i dets[i]["scores"][BOX];
alpha = spatial mean of dscore/dA; cam = ReLU(sum_k alpha_k A_k). Writes cam [N, h, w], then the
BOX-th detection's labels, scores and boxes [N, 4], as float32.
"""
import sys

import torch

from twin import load_twin, read_input


def main():
    model_path, input_path, shape, layer, box, out_path = sys.argv[1:]
    box = int(box)
    torch.set_num_threads(1)
    model, _meta = load_twin(model_path)
    acts = {}
    dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: acts.__setitem__("A", o))
    x = read_input(input_path, [int(s) for s in shape.split(",")])
    dets = model(list(x.unbind(0)))
    score = sum(d["scores"][box] for d in dets)
    A = acts["A"]
    (g,) = torch.autograd.grad(score, A)
    alpha = g.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * A).sum(1)).detach()
    labels = torch.stack([d["labels"][box] for d in dets]).float()
    scores = torch.stack([d["scores"][box] for d in dets]).detach()
    boxes = torch.stack([d["boxes"][box] for d in dets]).detach()
    with open(out_path, "wb") as f:
        for t in (cam, labels, scores, boxes):
            f.write(t.numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()
