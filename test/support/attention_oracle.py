"""Oracle for ViT captures and attention weights: the eager twin with forward hooks.

usage: attention_oracle.py MODEL INPUT.f32 N,C,H,W OUTDIR LAYER...

nn.MultiheadAttention's forward is wrapped (as Python users monkey-patch it): the original call
runs unchanged and a second call with need_weights=True, average_attn_weights=False records the
weights, [N, heads, L, L], as `<module path>.weights`. Token outputs [N, 1+gh*gw, D] of the other
layers are written as maps the way pytorch-grad-cam's reshape_transform makes them: class token
dropped, patch tokens reshaped to [N, gh, gw, D], permuted to [N, D, gh, gw]. Also written:
the rollout (Abnar & Zuidema: mean over heads, 0.5*A + 0.5*I, rows normalised, product over all
attention layers in order) as rollout.f32 [N, L, L], and Grad-CAM of the top-1 class at the first
token layer listed (the same reshape) as gradcam.f32 [N, gh, gw]. A layer `module:i` is part i of
the module's tuple output.
"""
import json
import os
import sys

import numpy as np
import torch

from twin import load_twin, read_input


def main():
    model_path, in_path, shape, out_dir, *layers = sys.argv[1:]
    model, meta = load_twin(model_path)
    x = read_input(in_path, [int(v) for v in shape.split(",")])
    tokens = meta["tokens"]
    ct = tokens["classTokens"]
    gh, gw = tokens["grids"][0]
    modules = dict(model.named_modules())
    weights = {}
    for name, m in modules.items():
        if isinstance(m, torch.nn.MultiheadAttention):
            orig = m.forward

            def wrapped(*args, __orig=orig, __name=name, **kwargs):
                out = __orig(*args, **kwargs)
                kw = dict(kwargs, need_weights=True, average_attn_weights=False)
                weights[__name + ".weights"] = __orig(*args, **kw)[1].detach()
                return out
            m.forward = wrapped
    acts = {}
    for name in layers:
        if name.endswith(".weights"):
            continue
        # `module:i` is part i of a tuple output (nn.MultiheadAttention's (output, weights)).
        mod = name.partition(":")[0]
        modules[mod].register_forward_hook(lambda _m, _i, o, mod=mod: acts.__setitem__(mod, o))

    def value(name):
        mod, _, part = name.partition(":")
        return acts[mod][int(part)] if part else acts[mod]

    def as_map(t):
        if t.dim() == 3 and t.shape[1] == ct + gh * gw:
            return t[:, ct:, :].reshape(t.shape[0], gh, gw, t.shape[2]).permute(0, 3, 1, 2)
        return t

    logits = model(x)
    index = {}
    for name in layers:
        t = weights[name] if name.endswith(".weights") else as_map(value(name))
        t = t.detach().contiguous().float()
        t.numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".f32"))
        index[name] = list(t.shape)
    # Rollout over every attention layer, in call order (named_modules order is call order in ViT).
    att = [weights[k] for k in sorted(weights, key=list(weights).index)]
    n, l = att[0].shape[0], att[0].shape[-1]
    r = torch.eye(l, dtype=torch.float64).expand(n, l, l)
    for a in att:
        a = a.double().mean(1)
        a = 0.5 * a + 0.5 * torch.eye(l, dtype=torch.float64)
        a = a / a.sum(-1, keepdim=True)
        r = a @ r
    r.float().numpy().astype("<f4").tofile(os.path.join(out_dir, "rollout.f32"))
    # Grad-CAM at the first token layer listed (gradients from a second, hooked forward).
    token_layers = [k for k in layers if not k.endswith(".weights")]
    if token_layers:
        acts.clear()
        logits = model(x)
        a = value(token_layers[0])
        cls = logits.argmax(1)
        score = logits.gather(1, cls[:, None]).sum()
        g = torch.autograd.grad(score, a)[0]
        am, gm = as_map(a), as_map(g)
        cam = torch.relu((gm.mean((2, 3), keepdim=True) * am).sum(1))
        cam.detach().float().numpy().astype("<f4").tofile(os.path.join(out_dir, "gradcam.f32"))
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump({"captures": index, "order": list(weights)}, f)


if __name__ == "__main__":
    main()
