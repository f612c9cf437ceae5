#!/usr/bin/env python3
"""Oracle for Swin captures: the eager torchvision twin with forward hooks.

usage: swin_oracle.py MODEL INPUT.f32 N,C,H,W OUTDIR LAYER...

Each LAYER's output, a channel-last map [N, H, W, C] permuted to [N, C, H, W] (how featscope shows
it), as OUTDIR/<i>.f32 in the order given; OUTDIR/shapes.json lists the shapes.
"""
import json
import os
import sys

import torch

from twin import load_twin, read_input


def main():
    model_path, in_path, shape, out_dir, *layers = sys.argv[1:]
    model, _ = load_twin(model_path)
    x = read_input(in_path, [int(v) for v in shape.split(",")])
    modules = dict(model.named_modules())
    acts = {}
    for name in layers:
        modules[name].register_forward_hook(lambda m, i, o, name=name: acts.__setitem__(name, o))
    with torch.no_grad():
        model(x)
    shapes = []
    for i, name in enumerate(layers):
        t = acts[name].permute(0, 3, 1, 2).contiguous()
        shapes.append(list(t.shape))
        t.numpy().astype("<f4").tofile(os.path.join(out_dir, f"{i}.f32"))
    with open(os.path.join(out_dir, "shapes.json"), "w") as f:
        json.dump(shapes, f)


if __name__ == "__main__":
    main()
