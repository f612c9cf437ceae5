#!/usr/bin/env python3
"""The independent oracle for featscope's captures: Python forward hooks on the eager twin.

  hook_oracle.py MODEL.pt INPUT.f32 N,C,H,W OUTDIR layer [layer ...]

Loads the TorchScript file's state_dict into torchvision's eager model of the architecture named
in its featscope.json, registers register_forward_hook on each named module, runs the input
(raw little-endian float32) and writes each hook firing to OUTDIR/<name>.f32, where a module
called k times gives <layer>, <layer>#1, ... (featscope's naming). OUTDIR/index.json lists shapes.
Hooks copy their output (as a careful Python user would): a later in-place op must not change it.
"""
import json
import os
import sys

import torch

from twin import load_twin, read_input


def main():
    model_path, input_path, shape, outdir, *layers = sys.argv[1:]
    shape = [int(s) for s in shape.split(",")]
    eager, _ = load_twin(model_path)
    # FEATSCOPE_ORACLE_DEVICE=cuda runs the oracle on the GPU with TF32 off (exact fp32).
    dev = torch.device(os.environ.get("FEATSCOPE_ORACLE_DEVICE", "cpu"))
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    eager.to(dev)
    x = read_input(input_path, shape).to(dev)
    modules = dict(eager.named_modules())
    fired = {}
    order = []

    def make_hook(name):
        def hook(_mod, _inp, out):
            k = fired.get(name, 0)
            fired[name] = k + 1
            key = name if k == 0 else f"{name}#{k}"
            order.append((key, out.detach().clone()))
        return hook

    for name in layers:
        modules[name].register_forward_hook(make_hook(name))
    with torch.no_grad():
        out = eager(x)
    os.makedirs(outdir, exist_ok=True)
    index = {"output": list(out.shape), "captures": {}}
    out.cpu().numpy().astype("<f4").tofile(os.path.join(outdir, "output.f32"))
    for key, t in order:
        t.cpu().numpy().astype("<f4").tofile(os.path.join(outdir, key + ".f32"))
        index["captures"][key] = list(t.shape)
    with open(os.path.join(outdir, "index.json"), "w") as f:
        json.dump(index, f)


if __name__ == "__main__":
    main()
