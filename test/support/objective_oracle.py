#!/usr/bin/env python3
"""The gradient of a layer's mean activation with respect to the input, in Python torch.

  objective_oracle.py MODEL.pt INPUT.f32 N,C,H,W OUTDIR LAYER CHANNEL

Eager twin with the TorchScript file's state_dict; a forward hook keeps LAYER's output; the
objective is its mean over space (channel CHANNEL, or all channels when CHANNEL is -1) per image,
summed over the batch. Writes OUTDIR/grad.f32 (d objective / d input) and OUTDIR/result.json.
"""
import json
import os
import sys

import torch

from twin import load_twin, read_input


def main():
    model_path, input_path, shape, outdir, layer, channel = sys.argv[1:]
    shape = [int(s) for s in shape.split(",")]
    channel = int(channel)
    model, _ = load_twin(model_path)
    kept = []
    dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: kept.append(o))
    x = read_input(input_path, shape).requires_grad_(True)
    model(x)
    a = kept[0]
    if channel >= 0:
        a = a[:, channel]
    objective = a.reshape(a.shape[0], -1).mean(1).sum()
    (g,) = torch.autograd.grad(objective, [x])
    os.makedirs(outdir, exist_ok=True)
    g.numpy().astype("<f4").tofile(os.path.join(outdir, "grad.f32"))
    with open(os.path.join(outdir, "result.json"), "w") as f:
        json.dump({"objective": objective.item()}, f)


if __name__ == "__main__":
    main()
