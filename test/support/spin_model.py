#!/usr/bin/env python3
"""spin.pt: a TorchScript model whose forward loops 2^40 times over a tiny tensor before its conv:
a forward that never ends in practice (exit and signal tests need one). `conv` is capturable, and
its input depends on the loop, so a capture of `conv` (which stops at the last captured layer) waits
for the loop too. An all-zero input (the CLI's layer-shape probe) skips the loop.
Usage: spin_model.py OUT.pt"""
import sys

import torch
import torch.nn as nn


class Spin(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        n = 0
        if bool(x.abs().sum() > 0):
            n = 1 << 40
        y = x[:, :, :1, :1]
        for _ in range(n):
            y = y * 0.5 + 0.25
        return self.conv(x + y * 0)


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(Spin().eval()), sys.argv[1])
