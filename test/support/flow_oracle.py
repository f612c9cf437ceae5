#!/usr/bin/env python3
"""Gradient flow in Python, the oracle for featscope's gradientFlow().

  flow_oracle.py MODEL.pt INPUT.f32 N,C,H,W OUT.json LAYER,LAYER,... [class ...]

Eager torchvision twin (ReLUs made out-of-place so hooked outputs stay as produced) with the
TorchScript file's state_dict; loss = sum_i logits[i, c_i] (c_i given, else each image's argmax).
For every call of every layer: ||A||, ||dL/dA||, mean |dL/dA|; for every parameter: ||W||, ||dL/dW||.
"""
import json
import sys

import torch

from twin import load_twin, read_input, target_classes


def main():
    model_path, input_path, shape, out_path, layers, *classes = sys.argv[1:]
    shape = [int(s) for s in shape.split(",")]
    model, _ = load_twin(model_path)
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    acts = []
    modules = dict(model.named_modules())
    for name in layers.split(","):
        calls = [0]

        def hook(m, i, o, name=name, calls=calls):
            acts.append((name if calls[0] == 0 else f"{name}#{calls[0]}", o))
            calls[0] += 1

        modules[name].register_forward_hook(hook)
    x = read_input(input_path, shape)
    logits = model(x)
    cls = target_classes(logits, classes)
    loss = logits.gather(1, cls.view(-1, 1)).sum()
    params = [(n, p) for n, p in model.named_parameters()]
    grads = torch.autograd.grad(loss, [a for _, a in acts] + [p for _, p in params])
    out = {"loss": loss.item(), "classes": cls.tolist(), "layers": {}, "parameters": {}}
    for (name, a), g in zip(acts, grads[: len(acts)]):
        out["layers"][name] = {"activationNorm": a.double().norm().item(), "gradNorm": g.double().norm().item(), "gradMeanAbs": g.double().abs().mean().item()}
    for (name, p), g in zip(params, grads[len(acts):]):
        out["parameters"][name] = {"norm": p.double().norm().item(), "gradNorm": g.double().norm().item()}
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
