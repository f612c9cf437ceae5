#!/usr/bin/env python3
"""Small TorchScript models for featscope's edge-case tests, written to the given folder.

frozen.pt        ResNet-18 after torch.jit.freeze: no module calls left
tuple_out.pt     forward returns (logits, features): the model output is not a tensor
tuple_layer.pt   a submodule (`pair`) returns a tuple
pair_head.pt     a classifier whose `pair` returns a tuple (x, 2x) of the conv's maps, summed, pooled, fc
deep_parts.pt    `deep` returns its input inside 34 nested 1-tuples (deeper than featscope's part limit)
no_submodules.pt forward is plain ops, no submodules at all
inplace_input.pt forward does x.relu_() on its input first
branchy.pt       a submodule called inside an `if`
unused.pt        a submodule (`spare`) that forward never calls
aliasing.pt      `ident` returns the input itself, `param` returns its own weight tensor
looped.pt        a submodule (`step`) called inside a loop
overloaded.pt    `layer` has an overloaded forward (compiled as forward__0/forward__1, as DenseNet's)
constcap.pt      `scaled` returns a value computed from its weight only (freezing makes it a constant)
counter.pt       forward writes a module attribute (`self.calls += 1`) before calling `conv`
loopnet.pt       modules called inside a loop whose trip count comes from the input, inside an `if`
                 in the loop, before and after it, with an in-place ReLU after a BatchNorm; its
                 featscope.json names the class, so the hook oracle can build the eager twin
"""
import json
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


class PairHead(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pair = Pair()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        a, b = self.pair(self.conv(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(a + b, 1), 1))


class Deep(nn.Module):
    def forward(self, x):
        return ((((((((((((((((((((((((((((((((((x,),),),),),),),),),),),),),),),),),),),),),),),),),),),),),),),),),)


class DeepParts(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.deep = Deep()

    def forward(self, x):
        y = self.conv(x)
        self.deep(y)
        return y


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


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.arange(4, dtype=torch.float32))

    def forward(self, x):
        return self.weight * 2


class ConstCap(nn.Module):
    def __init__(self):
        super().__init__()
        self.scaled = Scaled()

    def forward(self, x):
        return x.mean(dim=[2, 3]) * self.scaled(x).sum()


class Counter(nn.Module):
    calls: int

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.conv(x)


class LoopBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.bn(self.conv(x))
        y.relu_()  # in place, after bn: bn's hook still sees its own output
        return y + x


class LoopNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.stem = nn.Conv2d(3, 3, 1)
        self.block = LoopBlock()
        self.gate = nn.Conv2d(3, 3, 1)
        self.head = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.block.bn.running_mean.uniform_(-0.2, 0.2)
            self.block.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        x = self.stem(x)
        x = self.block(x)
        for i in range(int(x.size(0)) + 1):
            x = self.block(x) * 0.5
            if i % 2 == 1:
                x = self.gate(x)
        x = self.stem(x)
        return self.head(x).mean((2, 3))  # logits [N, 2]


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
    for name, cls in [("tuple_out", TupleOut), ("tuple_layer", TupleLayer), ("pair_head", PairHead), ("deep_parts", DeepParts),
                      ("no_submodules", NoSub),
                      ("inplace_input", InplaceInput), ("branchy", Branchy), ("unused", Unused),
                      ("aliasing", Aliasing), ("looped", Looped), ("overloaded", UsesOverloaded), ("counter", Counter), ("constcap", ConstCap)]:
        torch.jit.save(torch.jit.script(cls().eval()), os.path.join(out, name + ".pt"))
    meta = json.dumps({"architecture": "featscope-test:LoopNet"})
    torch.jit.save(torch.jit.script(LoopNet().eval()), os.path.join(out, "loopnet.pt"), _extra_files={"featscope.json": meta})


if __name__ == "__main__":
    main()
