#!/usr/bin/env python3
"""Input attributions in Python torch (float32, autograd), the oracle for featscope's saliency().

  saliency_oracle.py MODEL.pt INPUT.f32 N,C,H,W OUTDIR METHOD SAMPLES NOISE NOISE.f32|- [class ...]

Eager twin with the TorchScript file's state_dict; score_i = logits[i, c_i] (c_i given, else the
argmax on the clean input). gradient: d score / d x. smoothgrad: the mean gradient over x_i +
sigma_i * eps (eps read from NOISE.f32, [N * SAMPLES, C, H, W], sigma_i = NOISE * (max - min of
x_i)). integrated-gradients: x * the mean gradient at alpha * x, alpha = (k + 0.5) / SAMPLES.
Writes OUTDIR/attributions.f32 and OUTDIR/result.json (classes, scores, completeness terms).
"""
import json
import os
import sys

import numpy as np
import torch

from twin import load_twin, read_input, target_classes


def grad_of_scores(model, x, cls):
    x = x.clone().requires_grad_(True)
    logits = model(x)
    score = logits.gather(1, cls.view(-1, 1)).sum()
    (g,) = torch.autograd.grad(score, [x])
    return g


def main():
    model_path, input_path, shape, outdir, method, samples, noise, noise_path, *classes = sys.argv[1:]
    shape = [int(s) for s in shape.split(",")]
    samples, noise = int(samples), float(noise)
    model, _ = load_twin(model_path)
    # float32, as the model runs in featscope: in float64 a ReLU or max-pool near a tie can flip
    # at a noisy input and move the gradient of a few pixels.
    x = read_input(input_path, shape)
    with torch.no_grad():
        logits = model(x)
    cls = target_classes(logits, classes)
    scores = logits.gather(1, cls.view(-1, 1)).view(-1)
    n = shape[0]
    result = {"classes": cls.tolist(), "scores": scores.tolist()}
    if method == "gradient":
        attr = grad_of_scores(model, x, cls)
    elif method == "smoothgrad":
        eps = torch.from_numpy(np.fromfile(noise_path, dtype="<f4").reshape([n * samples] + shape[1:]))
        sigma = noise * (x.flatten(1).max(1).values - x.flatten(1).min(1).values)
        attr = torch.zeros_like(x)
        for s in range(samples):
            rows = torch.arange(n) * samples + s
            noisy = x + sigma.view(-1, 1, 1, 1) * eps[rows]
            attr += grad_of_scores(model, noisy, cls)
        attr /= samples
    elif method == "integrated-gradients":
        total = torch.zeros_like(x)
        for k in range(samples):
            total += grad_of_scores(model, (k + 0.5) / samples * x, cls)
        attr = x * total / samples
        with torch.no_grad():
            base = model(torch.zeros_like(x)).gather(1, cls.view(-1, 1)).view(-1)
        result["attributionSum"] = attr.flatten(1).sum(1).tolist()
        result["scoreDelta"] = (scores - base).tolist()
    else:
        raise SystemExit(f"unknown method {method}")
    os.makedirs(outdir, exist_ok=True)
    attr.float().numpy().astype("<f4").tofile(os.path.join(outdir, "attributions.f32"))
    with open(os.path.join(outdir, "result.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
