"""Fine-tuned-looking checkpoints of a 10-class ResNet-18, as users save them (fixed seeds, no downloads).

  finetuned_checkpoints.py DIR

writes DIR/wrapped.pth    {'model': state_dict, 'epoch': 7, 'optimizer': ..., 'best_acc': ...}
       DIR/dataparallel.pth {'state_dict': DataParallel(model).state_dict() ('module.' keys), 'epoch': 3}
       DIR/plain.pth      the bare state_dict
       DIR/labels.txt     the 10 class names
       DIR/nometa.pt      the same model saved with torch.jit.save and no featscope.json
       DIR/nokey.pth, DIR/short.txt  a checkpoint without weights, 3 labels (for failure tests)
"""
import os
import sys

import torch
import torchvision

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def finetuned(seed):
    torch.manual_seed(seed)
    m = torchvision.models.resnet18(weights=None, num_classes=10)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) * 0.5 + 0.75)
        # A head with a clear preference, so that predictions differ between images and classes.
        m.fc.weight.mul_(4.0)
    return m.eval()


def main(out):
    os.makedirs(out, exist_ok=True)
    a = finetuned(11)
    opt = torch.optim.SGD(a.parameters(), lr=0.01, momentum=0.9)
    torch.save({"model": a.state_dict(), "epoch": 7, "optimizer": opt.state_dict(), "best_acc": 0.91},
               os.path.join(out, "wrapped.pth"))
    torch.save(a.state_dict(), os.path.join(out, "plain.pth"))
    b = finetuned(12)
    torch.save({"state_dict": torch.nn.DataParallel(b).state_dict(), "epoch": 3}, os.path.join(out, "dataparallel.pth"))
    with open(os.path.join(out, "labels.txt"), "w") as f:
        f.write("\n".join(LABELS) + "\n")
    torch.jit.save(torch.jit.script(a), os.path.join(out, "nometa.pt"))
    # Failure cases: a checkpoint without weights, and too few labels.
    torch.save({"epoch": 1, "optimizer": {}}, os.path.join(out, "nokey.pth"))
    with open(os.path.join(out, "short.txt"), "w") as f:
        f.write("a\nb\nc\n")


if __name__ == "__main__":
    main(sys.argv[1])
