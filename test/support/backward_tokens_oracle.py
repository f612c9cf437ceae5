#!/usr/bin/env python3
"""Oracle for model.backward() on a ViT's token layers: the eager twin with forward hooks, autograd.

usage: backward_tokens_oracle.py MODEL INPUT.f32 N,C,H,W OUTDIR OBJECTIVE_LAYER CHANNEL LAYER...

Token outputs [N, 1+gh*gw, D] are taken as maps the way pytorch-grad-cam's reshape_transform makes
them (class token dropped, patch tokens to [N, D, gh, gw]); other outputs as they are.
1. score = sum_i logits[i, argmax_i]; per LAYER: the map's shape, the module's own shape, and the
   L2 norms of the map and of d score / d map, and the mean |d score / d map|  -> layers.json
2. objective_i = mean over positions of channel CHANNEL of OBJECTIVE_LAYER's map; loss = sum_i;
   objective.f32 [N] and d loss / d input as input_grad.f32.
"""
import json
import os
import sys

import torch

from twin import load_twin, read_input


def main():
    model_path, in_path, shape, out_dir, obj_layer, channel, *layers = sys.argv[1:]
    model, meta = load_twin(model_path)
    x = read_input(in_path, [int(v) for v in shape.split(",")])
    ct = meta["tokens"]["classTokens"]
    gh, gw = meta["tokens"]["grids"][0]
    modules = dict(model.named_modules())
    acts = {}
    for name in set(layers + [obj_layer]):
        modules[name].register_forward_hook(lambda m, i, o, name=name: acts.__setitem__(name, o))

    def as_map(t):
        if t.dim() == 3 and t.shape[1] == ct + gh * gw:
            n, _, d = t.shape
            return t[:, ct:, :].reshape(n, gh, gw, d).permute(0, 3, 1, 2)
        return t

    logits = model(x)
    score = logits.gather(1, logits.argmax(1).view(-1, 1)).sum()
    grads = torch.autograd.grad(score, [acts[n] for n in layers], allow_unused=True)
    out = []
    for name, g in zip(layers, grads):
        a = as_map(acts[name]).detach()
        gm = as_map(g) if g is not None else torch.zeros_like(a)
        out.append({"name": name, "shape": list(a.shape), "sourceShape": list(acts[name].shape),
                    "activationNorm": a.double().norm().item(), "gradNorm": gm.double().norm().item(),
                    "gradMeanAbs": gm.double().abs().mean().item()})
    with open(os.path.join(out_dir, "layers.json"), "w") as f:
        json.dump(out, f)

    xg = x.clone().requires_grad_(True)
    acts.clear()
    model(xg)
    m = as_map(acts[obj_layer])
    objective = m[:, int(channel)].reshape(m.shape[0], -1).mean(1)
    (gx,) = torch.autograd.grad(objective.sum(), xg)
    objective.detach().numpy().astype("<f4").tofile(os.path.join(out_dir, "objective.f32"))
    gx.numpy().astype("<f4").tofile(os.path.join(out_dir, "input_grad.f32"))


if __name__ == "__main__":
    main()
