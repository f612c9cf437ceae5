#!/usr/bin/env python3
"""The oracle for segmentation and detection models: Python forward hooks on the eager torchvision
twin (rebuilt from featscope.json's architecture and build kwargs, loaded with the file's
state_dict), the model's own output, and EigenCAM by numpy's SVD.

  structured_oracle.py MODEL.pt INPUT.f32 N,C,H,W OUTDIR [--eigencam NAME] layer [layer ...]

Every tensor a hook sees is written as OUTDIR/<i>.f32, named as featscope names captures: a tuple,
list or dict output's tensors are `<layer>:<key or position>` (nested: `:a:b`; a class instance's
attributes by name, `transform:0:tensors`). The output (the
eager model's, as the scripted one returns it: detection gives (losses, detections)) is flattened
the same way under the name `out`. EigenCAM of capture NAME (per image: M = activations as
positions x channels, each channel centred, projected onto the first right singular vector of M,
its sign chosen so that the vector's components sum to >= 0) goes to the name `eigencam`.
OUTDIR/index.json: [[name, shape, file], ...] in firing order.
"""
import json
import os
import sys

import numpy as np
import torch

from twin import load_twin, read_input

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import structured_models  # noqa: E402


def flatten(name, v, out):
    if isinstance(v, torch.Tensor):
        out.append((name, v.detach().clone()))
    elif isinstance(v, (list, tuple)):
        for i, e in enumerate(v):
            flatten(f"{name}:{i}", e, out)
    elif isinstance(v, dict):
        for k, e in v.items():
            flatten(f"{name}:{k}", e, out)
    elif hasattr(v, "__dict__") and not isinstance(v, torch.nn.Module):
        # A plain class instance (torchvision's ImageList): its attributes, in assignment order.
        for k, e in vars(v).items():
            flatten(f"{name}:{k}", e, out)


def eigencam(act, center=True):
    maps = []
    for a in act.double().numpy():
        m = a.reshape(a.shape[0], -1).T  # positions x channels
        if center:
            m = m - m.mean(axis=0)
        _, _, vt = np.linalg.svd(m, full_matrices=False)
        v = vt[0]
        if v.sum() < 0:
            v = -v
        maps.append((m @ v).reshape(a.shape[1:]))
    return torch.from_numpy(np.stack(maps)).float()


def main():
    model_path, input_path, shape, outdir, *rest = sys.argv[1:]
    # One intra-op thread, as the detection test pins featscope to: float sums in one order on both
    # sides, so near-tied scores of an untrained detector rank the same way.
    torch.set_num_threads(1)
    cam_of = None
    if rest[:1] == ["--eigencam"]:
        cam_of, rest = rest[1], rest[2:]
    eager, meta = load_twin(model_path)
    task = meta["task"]
    x = read_input(input_path, [int(s) for s in shape.split(",")])
    modules = dict(eager.named_modules())
    fired, order = {}, []

    def make_hook(name):
        def hook(_mod, _inp, out):
            k = fired.get(name, 0)
            fired[name] = k + 1
            flatten(name if k == 0 else f"{name}#{k}", out, order)
        return hook

    for name in rest:
        modules[name].register_forward_hook(make_hook(name))
    with torch.no_grad():
        out = structured_models.eager_forward(eager, task, x)
    flatten("out", out, order)
    if cam_of is not None:
        order.append(("eigencam", eigencam(next(t for n, t in order if n == cam_of))))
    os.makedirs(outdir, exist_ok=True)
    index = []
    for i, (name, t) in enumerate(order):
        t.float().cpu().numpy().astype("<f4").tofile(os.path.join(outdir, f"{i}.f32"))
        index.append([name, list(t.shape), f"{i}.f32"])
    with open(os.path.join(outdir, "index.json"), "w") as f:
        json.dump(index, f)


if __name__ == "__main__":
    main()
