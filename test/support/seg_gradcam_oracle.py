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
import json
import os
import sys

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import structured_models  # noqa: E402


def main():
    model_path, input_path, shape, layer, out_path, *classes = sys.argv[1:]
    files = {"featscope.json": ""}
    scripted = torch.jit.load(model_path, map_location="cpu", _extra_files=files)
    meta = json.loads(files["featscope.json"])
    model = structured_models.rebuild(torchvision, meta["architecture"], meta["task"], meta.get("build", {}))
    model.load_state_dict(scripted.state_dict())
    model.eval()
    acts = {}
    dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: acts.__setitem__("A", o))
    x = torch.from_numpy(np.fromfile(input_path, dtype="<f4").reshape([int(s) for s in shape.split(",")]))
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
