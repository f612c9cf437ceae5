#!/usr/bin/env python3
"""A TorchScript model with known dead channels, for featscope's folder statistics test.

  dead_channels_model.py OUT.pt

conv (3 -> 8, 3x3) then ReLU. Channels 2 and 5 have zero weights and bias -1: their ReLU output is
0 everywhere on every input (dead). Channel 7 has zero weights and bias +1: it always fires (1).
The other channels have random weights and zero bias.
"""
import sys

import torch
import torch.nn as nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


def main():
    torch.manual_seed(0)
    m = Tiny().eval()
    with torch.no_grad():
        m.conv.bias.zero_()
        for c, b in [(2, -1.0), (5, -1.0), (7, 1.0)]:
            m.conv.weight[c].zero_()
            m.conv.bias[c] = b
    torch.jit.save(torch.jit.script(m), sys.argv[1])


if __name__ == "__main__":
    main()
