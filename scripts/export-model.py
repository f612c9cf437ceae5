#!/usr/bin/env python3
"""Export a torchvision ResNet-18 as TorchScript for featscope.

The file carries featscope.json (TorchScript extra file) with the architecture, where the weights
came from and whether they are trained, the input size, mean/std and the 1000 ImageNet class names.

  export-model.py OUT.pt [--trace] [--weights none|imagenet|FILE.pth] [--arch resnet18] [--seed 0]
  export-model.py OUT.pt2 --format pt2 [--taps all | --taps layer1,layer4,...] [...]

--format pt2 (needs torch >= 2.6, python3-dev and a C++ compiler) makes an AOTInductor package:
torch.export, then torch._inductor.aoti_compile_and_package. Forward hooks cannot be exported, so
the chosen module calls' outputs ("taps") become extra outputs of the compiled graph; featscope
can capture only those. --taps all (default) taps every module call that returns a tensor, in
hook-firing order, named as featscope names TorchScript captures (`layer1.0.relu`, `...#1`).
The batch dimension is dynamic; the spatial size is fixed at --size.

--weights none (default) is a fixed-seed random init: UNTRAINED, for tests and offline work.
--weights imagenet downloads torchvision's IMAGENET1K_V1 weights (needs internet).
--weights FILE.pth loads a state_dict saved with torch.save(model.state_dict(), FILE).
"""
import argparse
import json
import os
import sys
import tempfile

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def fail(msg, code=1):
    print(f"export-model: {msg}", file=sys.stderr)
    sys.exit(code)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--trace", action="store_true", help="torch.jit.trace instead of torch.jit.script")
    ap.add_argument("--weights", default="none", help="none | imagenet | path to a state_dict .pth")
    ap.add_argument("--arch", default="resnet18", help="a torchvision.models classifier name")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--state-dict-out", help="also write the state_dict (for Python oracles)")
    ap.add_argument("--format", choices=["torchscript", "pt2"], default=None,
                    help="torchscript (default for .pt) or pt2: an AOTInductor package (default for .pt2)")
    ap.add_argument("--taps", default=None,
                    help="pt2 only: all (default) or a comma-separated list of module names whose calls become outputs")
    args = ap.parse_args()

    try:
        import torch
        import torchvision
    except ImportError as e:
        fail(f"needs torch and torchvision in this Python ({sys.executable}): {e}. "
             "On Debian: apt-get install python3-torch python3-torchvision")

    ctor = getattr(torchvision.models, args.arch, None)
    if ctor is None:
        fail(f"unknown --arch {args.arch!r}; try resnet18, resnet50, vgg16, mobilenet_v2 ...", 2)

    torch.manual_seed(args.seed)
    model = ctor(weights=None) if _has_weights_api(torchvision) else ctor(pretrained=False)
    categories = None
    if args.weights == "none":
        source, trained = f"random init (torch.manual_seed({args.seed}))", False
        _init_deterministic(model, args.seed)
    elif args.weights == "imagenet":
        try:
            enum = torchvision.models.get_model_weights(args.arch)
            w = enum.DEFAULT
            model.load_state_dict(w.get_state_dict(progress=False))
            categories = list(w.meta.get("categories") or [])
            source, trained = f"torchvision {w}", True
        except Exception as e:  # no network, unknown weights, ...
            fail(f"could not get ImageNet weights for {args.arch} ({type(e).__name__}: {e}). "
                 "This needs internet access to download torchvision's weights; offline, use "
                 "--weights none (untrained) or --weights FILE.pth with a state_dict you have.")
    else:
        if not os.path.isfile(args.weights):
            fail(f"--weights {args.weights!r}: no such file (expected none, imagenet or a state_dict .pth)", 2)
        sd = torch.load(args.weights, map_location="cpu")
        if isinstance(sd, dict) and "state_dict" in sd:
            sd = sd["state_dict"]
        model.load_state_dict(sd)
        source, trained = f"state_dict {os.path.basename(args.weights)}", True
    model.eval()

    if categories is None:
        categories = _imagenet_categories(torchvision)

    fmt = args.format or ("pt2" if args.out.endswith(".pt2") else "torchscript")
    if fmt != "pt2" and args.taps is not None:
        fail("--taps applies only to --format pt2 (TorchScript files can capture any layer)", 2)
    if fmt == "pt2":
        if args.trace:
            fail("--trace applies only to TorchScript; --format pt2 uses torch.export", 2)
        meta = {
            "format": "featscope-model/1",
            "architecture": args.arch,
            "export": "aoti",
            "weights": {"source": source, "trained": trained},
            "input": {"size": [args.size, args.size], "mean": MEAN, "std": STD, "layout": "NCHW", "range": "RGB in [0,1], then normalised"},
            "classes": categories,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        }
        import pt2_export
        pt2_export.export_pt2(model, args.out, meta, args.taps or "all", args.size, fail)
        if args.state_dict_out:
            torch.save(model.state_dict(), args.state_dict_out)
        return

    if args.trace:
        example = torch.zeros(1, 3, args.size, args.size)
        with torch.no_grad():
            scripted = torch.jit.trace(model, example)
    else:
        scripted = torch.jit.script(model)

    meta = {
        "format": "featscope-model/1",
        "architecture": args.arch,
        "export": "trace" if args.trace else "script",
        "weights": {"source": source, "trained": trained},
        "input": {"size": [args.size, args.size], "mean": MEAN, "std": STD, "layout": "NCHW", "range": "RGB in [0,1], then normalised"},
        "classes": categories,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    # Write to a temp name and rename so a failed export never leaves a half-written model.
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".pt", dir=os.path.dirname(out))
    os.close(fd)
    try:
        torch.jit.save(scripted, tmp, _extra_files={"featscope.json": json.dumps(meta)})
        umask = os.umask(0); os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the model file normal permissions
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if args.state_dict_out:
        torch.save(model.state_dict(), args.state_dict_out)
    print(f"export-model: wrote {out} ({args.arch}, {meta['export']}, weights: {source}"
          f"{'' if trained else ', UNTRAINED'})")


def _has_weights_api(torchvision):
    return hasattr(torchvision.models, "get_model_weights")


def _init_deterministic(model, seed):
    """torchvision's init is already seeded; also give BatchNorm non-trivial statistics so that
    captures of bn layers differ from their inputs (an identity BN would hide bugs in tests)."""
    import torch
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _imagenet_categories(torchvision):
    try:
        from torchvision.models import ResNet18_Weights
        cats = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
        if len(cats) == 1000:
            return list(cats)
    except Exception:
        pass
    return [f"class {i}" for i in range(1000)]


if __name__ == "__main__":
    main()
