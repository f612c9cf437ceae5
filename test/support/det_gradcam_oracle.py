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
    model_path, input_path, shape, layer, box, out_path = sys.argv[1:]
    box = int(box)
    torch.set_num_threads(1)
    files = {"featscope.json": ""}
    scripted = torch.jit.load(model_path, map_location="cpu", _extra_files=files)
    meta = json.loads(files["featscope.json"])
    model = structured_models.rebuild(torchvision, meta["architecture"], meta["task"], meta.get("build", {}))
    model.load_state_dict(scripted.state_dict())
    model.eval()
    acts = {}
    dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: acts.__setitem__("A", o))
    x = torch.from_numpy(np.fromfile(input_path, dtype="<f4").reshape([int(s) for s in shape.split(",")]))
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
