#!/usr/bin/env python3
"""FGSM in Python, the oracle for featscope's fgsm().

  fgsm_oracle.py MODEL.pt INPUT.f32 N,C,H,W EPSILON OUT.f32 [class ...]

Eager torchvision twin with the TorchScript file's state_dict; loss = cross-entropy summed over the
batch against the given classes (else each image's argmax); x' = x + (eps / std_c) * sign(dL/dx),
clamped per channel to [(0 - mean_c) / std_c, (1 - mean_c) / std_c]. Writes x' then |dL/dx| (float32).
"""
import sys

import torch

from twin import load_twin, read_input, target_classes


def main():
    model_path, input_path, shape, eps, out_path, *classes = sys.argv[1:]
    shape = [int(s) for s in shape.split(",")]
    model, meta = load_twin(model_path)
    mean = torch.tensor(meta.get("input", {}).get("mean", [0.485, 0.456, 0.406]), dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(meta.get("input", {}).get("std", [0.229, 0.224, 0.225]), dtype=torch.float32).view(1, -1, 1, 1)
    x = read_input(input_path, shape).requires_grad_(True)
    logits = model(x)
    cls = target_classes(logits, classes)
    loss = torch.nn.functional.cross_entropy(logits, cls, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    step = (float(eps) / std.double()).float()
    adv = x.detach() + step * g.sign()
    adv = torch.max(torch.min(adv, (1 - mean) / std), (0 - mean) / std)
    with open(out_path, "wb") as f:
        f.write(adv.numpy().astype("<f4").tobytes())
        f.write(g.abs().numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()
