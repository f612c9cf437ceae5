#!/usr/bin/env python3
"""Linear CKA between layers in numpy, the oracle for featscope's layerSimilarity().

  cka_oracle.py INPUT.f32 N,C,H,W OUT.json MODEL_A LAYER,LAYER,... [MODEL_B LAYER,LAYER,...]

Each model is the eager twin of its TorchScript file; forward hooks keep each layer's output,
averaged over space (channel means). Features are centred over images; CKA(X, Y) =
||Yᵀ X||²_F / (||Xᵀ X||_F ||Yᵀ Y||_F), in float64. Without MODEL_B, model A against itself.
"""
import json
import sys

import numpy as np
import torch

from twin import load_twin, read_input


def pooled(model_path, x, layers):
    model, _ = load_twin(model_path)
    modules = dict(model.named_modules())
    kept = {}
    for name in layers:
        modules[name].register_forward_hook(lambda m, i, o, name=name: kept.setdefault(name, o.detach().clone()))
    with torch.no_grad():
        model(x)
    out = {}
    for name in layers:
        a = kept[name]
        out[name] = (a.flatten(2).mean(2) if a.dim() > 2 else a).double().numpy()
    return out


def cka(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def main():
    input_path, shape, out_path, model_a, layers_a, *rest = sys.argv[1:]
    shape = [int(s) for s in shape.split(",")]
    x = read_input(input_path, shape)
    la = layers_a.split(",")
    fa = pooled(model_a, x, la)
    if rest:
        lb = rest[1].split(",")
        fb = pooled(rest[0], x, lb)
    else:
        lb, fb = la, fa
    with open(out_path, "w") as f:
        json.dump({"cka": [[cka(fa[r], fb[c]) for c in lb] for r in la]}, f)


if __name__ == "__main__":
    main()
