#!/usr/bin/env python3
"""Small TorchScript models for featscope's edge-case tests, written to the given folder.

frozen.pt        ResNet-18 after torch.jit.freeze: no module calls left
tuple_out.pt     forward returns (logits, features): the model output is not a tensor
tuple_layer.pt   a submodule (`pair`) returns a tuple
no_submodules.pt forward is plain ops, no submodules at all
inplace_input.pt forward does x.relu_() on its input first
branchy.pt       a submodule called inside an `if`
unused.pt        a submodule (`spare`) that forward never calls
aliasing.pt      `ident` returns the input itself, `param` returns its own weight tensor
looped.pt        a submodule (`step`) called inside a loop
overloaded.pt    `layer` has an overloaded forward (compiled as forward__0/forward__1, as DenseNet's)
"""
import os
import sys
from typing import List

import torch
import torch.nn as nn
import torchvision


class Pair(nn.Module):
    def forward(self, x):
        return x, x * 2


class TupleLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pair = Pair()

    def forward(self, x):
        a, b = self.pair(self.conv(x))
        return a + b


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        f = self.conv(x)
        return self.pool(f).flatten(1), f


class NoSub(nn.Module):
    def forward(self, x):
        return x.mean(dim=[2, 3])


class InplaceInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        x.relu_()
        return self.conv(x)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.extra = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        if bool(y.sum() > 0):
            y = self.extra(y)
        return y


class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.spare = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.conv(x)


class ParamOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.arange(4, dtype=torch.float32))

    def forward(self, x):
        return self.weight


class Aliasing(nn.Module):
    def __init__(self):
        super().__init__()
        self.ident = nn.Identity()
        self.param = ParamOut()

    def forward(self, x):
        a = self.ident(x)
        w = self.param(x)
        return a.mean(dim=[2, 3]) * w.sum()


class Looped(nn.Module):
    def __init__(self):
        super().__init__()
        self.step = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        for _ in range(int(x.size(0))):
            x = self.step(x)
        return x


class Overloaded(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    @torch.jit._overload_method  # noqa: F811
    def forward(self, x):
        # type: (List[torch.Tensor]) -> torch.Tensor
        pass

    @torch.jit._overload_method  # noqa: F811
    def forward(self, x):
        # type: (torch.Tensor) -> torch.Tensor
        pass

    def forward(self, x):  # noqa: F811
        if isinstance(x, torch.Tensor):
            return self.conv(x)
        return self.conv(torch.cat(x, 1))


class UsesOverloaded(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = Overloaded()

    def forward(self, x):
        return self.layer(x)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    r = torchvision.models.resnet18().eval()
    torch.jit.save(torch.jit.freeze(torch.jit.script(r)), os.path.join(out, "frozen.pt"))
    for name, cls in [("tuple_out", TupleOut), ("tuple_layer", TupleLayer), ("no_submodules", NoSub),
                      ("inplace_input", InplaceInput), ("branchy", Branchy), ("unused", Unused),
                      ("aliasing", Aliasing), ("looped", Looped), ("overloaded", UsesOverloaded)]:
        torch.jit.save(torch.jit.script(cls().eval()), os.path.join(out, name + ".pt"))


if __name__ == "__main__":
    main()
