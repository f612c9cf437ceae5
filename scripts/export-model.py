#!/usr/bin/env python3
"""Export a torchvision classification model as TorchScript for featscope.

The file carries featscope.json (a TorchScript extra file) with the architecture, where the weights
came from and whether they are trained, the input size, mean/std and the class names
(docs/api.md, "Model metadata").

  export-model.py OUT.pt [--arch resnet18] [--weights none|imagenet|FILE.pth] [--num-classes N]
                  [--labels FILE] [--mean R,G,B] [--std R,G,B] [--size PX] [--script|--trace]
  export-model.py OUT.pt2 --format pt2 [--taps all | --taps layer1,layer4,...] [--device cpu|cuda] [...]

--format pt2 (needs torch >= 2.6, python3-dev and a C++ compiler) makes an AOTInductor package:
torch.export, then torch._inductor.aoti_compile_and_package. Forward hooks cannot be exported, so
the chosen module calls' outputs ("taps") become extra outputs of the compiled graph; featscope
can capture only those. --taps all (default) taps every module call that returns a tensor, in
hook-firing order, named as featscope names TorchScript captures (`layer1.0.relu`, `...#1`).
The batch dimension is dynamic; the spatial size is fixed at --size. A package is compiled for one
device: --device cpu (default) or --device cuda (needs a Python whose torch sees a CUDA GPU; run it
on the GPU machine); featscope loads it on that device only.

--arch        any torchvision classification model (resnet50, mobilenet_v2, vit_b_16, swin_t, ...),
              vit_small (a small VisionTransformer for tests: 32 px, patch 8, 2 layers, 2 heads,
              width 64; transformers also store their token layout, docs/api.md), or a
              segmentation model (fcn_resnet50, deeplabv3_resnet50, deeplabv3_mobilenet_v3_large,
              lraspp_mobilenet_v3_large) or detection model (fasterrcnn_resnet50_fpn,
              fasterrcnn_mobilenet_v3_large_320_fpn, retinanet_resnet50_fpn, maskrcnn_resnet50_fpn
              with instance masks, keypointrcnn_resnet50_fpn with person keypoints, ...): these are
              exported untrained only (--weights none, weights_backbone=None, nothing downloads),
              scripted, with their task and category names (COCO's 91 for detection, Pascal
              VOC's 21 for segmentation) in the metadata; scripts/structured_models.py.
--score-thresh detection only: drop detections scoring below it (torchvision's default 0.05; an
              untrained model scores about 1/num_classes, so pass 0 to see its boxes).
--weights     none (default): a fixed-seed random init, UNTRAINED, for tests and offline work.
              imagenet: torchvision's weights for --arch (downloads them: needs internet).
              FILE.pth: your weights: a state_dict (torch.save(model.state_dict(), FILE)), or a
              checkpoint dict holding it under 'model', 'state_dict' or 'model_state_dict' (other
              keys such as 'epoch' or 'optimizer' are ignored). The 'module.' prefix that
              DataParallel / DistributedDataParallel add is stripped.
--num-classes the classifier's output size; read from FILE.pth when not given.
--labels      a text file with one class name per line, in class-index order.
--mean/--std  the normalisation the model was trained with (default: ImageNet's).
--size        the input side in pixels (default 224).
--script      torch.jit.script (default); --trace: torch.jit.trace on a size x size input.

Failures are one line naming the fix; set FEATSCOPE_DEBUG=1 for the Python traceback.
"""
import argparse
import difflib
import json
import os
import sys
import tempfile

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CHECKPOINT_KEYS = ("model", "state_dict", "model_state_dict")


class Failure(Exception):
    """A failure the user can fix: printed as one line, exit status `code`."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise Failure(f"{message} (see export-model.py --help)", 2)


def _fail(message, code=1):
    """The failure callback scripts/pt2_export.py takes: one line, exit code `code`."""
    raise Failure(message, code)


def main(argv):
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the TorchScript file to write")
    ap.add_argument("--arch", default="resnet18", help="a torchvision classification model name")
    ap.add_argument("--weights", default="none", help="none | imagenet | FILE.pth (state_dict or checkpoint)")
    ap.add_argument("--num-classes", type=int, help="classifier outputs (default: from --weights FILE, else 1000)")
    ap.add_argument("--labels", help="text file, one class name per line")
    ap.add_argument("--mean", help="R,G,B normalisation mean (default ImageNet's 0.485,0.456,0.406)")
    ap.add_argument("--std", help="R,G,B normalisation std (default ImageNet's 0.229,0.224,0.225)")
    ap.add_argument("--size", type=int, default=None, help="input side in pixels (default 224; vit_small: 32)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--script", action="store_true", help="torch.jit.script (default)")
    mode.add_argument("--trace", action="store_true", help="torch.jit.trace instead of torch.jit.script")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random init (--weights none)")
    ap.add_argument("--state-dict-out", help="also write the state_dict (for Python oracles)")
    ap.add_argument("--format", choices=["torchscript", "pt2"], default=None,
                    help="torchscript (default for .pt) or pt2: an AOTInductor package (default for .pt2)")
    ap.add_argument("--score-thresh", type=float, default=None,
                    help="detection only: the score below which detections are dropped (torchvision's default: 0.05)")
    ap.add_argument("--taps", default=None,
                    help="pt2 only: all (default) or a comma-separated list of module names whose calls become outputs")
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None,
                    help="pt2 only: the device the package is compiled for (default cpu; cuda needs a GPU here)")
    args = ap.parse_args(argv)
    if args.size is None:
        args.size = VIT_SMALL["image_size"] if args.arch == "vit_small" else 224

    mean = _triple(args.mean, "--mean", IMAGENET_MEAN, positive=False)
    std = _triple(args.std, "--std", IMAGENET_STD, positive=True)
    if not 8 <= args.size <= 8192:
        raise Failure(f"--size must be a side in pixels from 8 to 8192, not {args.size}", 2)
    if args.num_classes is not None and args.num_classes < 1:
        raise Failure(f"--num-classes must be at least 1, not {args.num_classes}", 2)
    labels = _read_labels(args.labels) if args.labels else None

    try:
        import torch
        import torchvision
    except ImportError as e:
        raise Failure(f"needs torch and torchvision in this Python ({sys.executable}): {e}. "
                      "On Debian: apt-get install python3-torch python3-torchvision")

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import structured_models
    if structured_models.is_structured(torchvision, args.arch):
        return _export_structured(torch, torchvision, structured_models, args, mean, std, labels)

    ctor = _constructor(torchvision, args.arch, args.size)
    torch.manual_seed(args.seed)

    categories = None
    state_dict = None
    num_classes = args.num_classes
    if args.weights == "none":
        source, trained = f"random init (torch.manual_seed({args.seed}))", False
    elif args.weights == "imagenet":
        if num_classes not in (None, 1000):
            raise Failure(f"--weights imagenet has 1000 classes, not --num-classes {num_classes}; "
                          "give your fine-tuned weights as --weights FILE.pth", 2)
        try:
            w = torchvision.models.get_model_weights(args.arch).DEFAULT
            state_dict = w.get_state_dict(progress=False)
        except Exception as e:  # no network, unknown weights, ...
            raise Failure(f"could not get ImageNet weights for {args.arch} ({type(e).__name__}: {_first_line(e)}). "
                          "This needs internet access to download torchvision's weights; offline, use "
                          "--weights none (untrained) or --weights FILE.pth with weights you have.")
        categories = list(w.meta.get("categories") or []) or None
        source, trained = f"torchvision {w}", True
    else:
        state_dict, where = _load_weights(torch, args.weights)
        source, trained = where, True

    default_model = _build(ctor, args.arch, None)
    head = _classifier_name(torch, default_model)
    if state_dict is not None and head and f"{head}.weight" in state_dict:
        stored = int(state_dict[f"{head}.weight"].shape[0])
        if num_classes is None:
            num_classes = stored
        elif num_classes != stored:
            raise Failure(f"--num-classes {num_classes} does not match --weights {args.weights}: its classifier "
                          f"{head}.weight has {stored} outputs; drop --num-classes or pass --num-classes {stored}", 2)
    if num_classes is None:
        num_classes = len(labels) if labels else 1000
    model = default_model if num_classes == _outputs(torch, default_model, head) else _build(ctor, args.arch, num_classes)
    if args.weights == "none":
        _init_deterministic(torch, model, args.seed)
    else:
        _load_into(model, state_dict, args)
    model.eval()

    if labels is not None:
        if len(labels) != num_classes:
            raise Failure(f"--labels {args.labels} has {len(labels)} names but the model has {num_classes} classes; "
                          "give one name per line, in class-index order", 2)
        categories = labels
    elif categories is None and num_classes == 1000:
        categories = _imagenet_categories(torchvision)
    elif categories is None:
        print(f"export-model: note: no --labels, so featscope will name the {num_classes} classes "
              f"'class 0' to 'class {num_classes - 1}'; pass --labels FILE (one name per line) to name them",
              file=sys.stderr)

    fmt = args.format or ("pt2" if args.out.endswith(".pt2") else "torchscript")
    if fmt != "pt2" and args.taps is not None:
        raise Failure("--taps applies only to --format pt2 (TorchScript files can capture any layer)", 2)
    if fmt != "pt2" and args.device is not None:
        raise Failure("--device applies only to --format pt2 (a TorchScript file loads on any device: "
                      "loadModel(file, { device }) or the CLI's --device)", 2)
    if fmt == "pt2":
        if getattr(args, "trace", False):
            raise Failure("--trace applies only to TorchScript; --format pt2 uses torch.export", 2)
        meta = {
            "format": "featscope-model/1",
            "architecture": args.arch,
            "export": "aoti",
            "weights": {"source": source, "trained": trained},
            "input": {"size": [args.size, args.size], "mean": mean, "std": std, "layout": "NCHW", "range": "RGB in [0,1], then normalised"},
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        }
        if categories is not None:
            meta["classes"] = categories
        import pt2_export
        device = args.device or "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise Failure(f"--device cuda: this Python's torch {torch.__version__} sees no CUDA GPU "
                          f"(torch.cuda.is_available() is False{'; it is a CPU-only build' if torch.version.cuda is None else ''}). "
                          "A CUDA package is compiled on a machine with a GPU and a CUDA torch; "
                          "here, export for the CPU (--device cpu, the default)", 2)
        meta["device"] = device
        pt2_export.export_pt2(model, args.out, meta, args.taps or "all", args.size, _fail, device=device)
        if args.state_dict_out:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, args.state_dict_out)
        return

    example = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    scripted = _to_torchscript(torch, model, args, example)
    _check_same(torch, model, scripted, example, args)

    meta = {
        "format": "featscope-model/1",
        "architecture": args.arch,
        "export": "trace" if args.trace else "script",
        "weights": {"source": source, "trained": trained},
        "input": {"size": [args.size, args.size], "mean": mean, "std": std, "layout": "NCHW",
                  "range": "RGB in [0,1], then normalised"},
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }
    if categories is not None:
        meta["classes"] = categories
    tokens = _token_layout(torch, model, args.arch, args.size)
    if tokens is not None:
        meta["tokens"] = tokens
    _write_torchscript(torch, scripted, meta, args)
    if args.state_dict_out:
        torch.save(model.state_dict(), args.state_dict_out)
    print(f"export-model: wrote {os.path.abspath(args.out)} ({args.arch}, {meta['export']}, {num_classes} classes, weights: {source}"
          f"{'' if trained else ', UNTRAINED'})")


def _export_structured(torch, torchvision, sm, args, mean, std, labels):
    """A segmentation or detection model (scripts/structured_models.py): untrained, scripted."""
    if args.weights != "none":
        raise Failure(f"--arch {args.arch}: only --weights none (an untrained, seeded init) is supported for "
                      "segmentation and detection models", 2)
    if args.format == "pt2" or args.out.endswith(".pt2") or args.trace:
        raise Failure(f"--arch {args.arch}: segmentation and detection models are exported with torch.jit.script only "
                      "(no --trace, no --format pt2)", 2)
    torch.manual_seed(args.seed)
    model, kwargs, task, categories, keypoints = sm.build(torch, torchvision, args.arch, args.num_classes,
                                                          args.size, args.score_thresh, _fail)
    _init_deterministic(torch, model, args.seed)
    model.eval()
    if labels is not None:
        if categories is not None and len(labels) != len(categories):
            raise Failure(f"--labels {args.labels} has {len(labels)} names but the model has {len(categories)} classes; "
                          "give one name per line, in class-index order", 2)
        categories = labels
    try:
        scripted = torch.jit.script(model)
    except Exception as e:
        raise Failure(f"torch.jit.script cannot compile {args.arch} ({type(e).__name__}: {_first_line(e)})")
    example = sm.example_input(torch, args.size)
    with torch.no_grad():
        diff = sm.max_diff(torch, sm.eager_forward(model, task, example), sm.scripted_forward(scripted, task, example))
    if not diff <= 1e-3:
        raise Failure(f"the scripted {args.arch} differs from the Python model by {diff:.3g}")
    source = f"random init (torch.manual_seed({args.seed}))"
    meta = {
        "format": "featscope-model/1",
        "architecture": args.arch,
        "task": task,
        "build": kwargs,
        "export": "script",
        "weights": {"source": source, "trained": False},
        # Detection models normalise their input themselves: featscope feeds RGB in [0, 1].
        "input": {"size": [args.size, args.size],
                  "mean": [0.0, 0.0, 0.0] if task == "detection" else mean,
                  "std": [1.0, 1.0, 1.0] if task == "detection" else std,
                  "layout": "NCHW",
                  "range": "RGB in [0,1]" if task == "detection" else "RGB in [0,1], then normalised"},
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }
    if categories is not None:
        meta["classes"] = categories
    if keypoints is not None:
        meta["keypoints"] = keypoints
    _write_torchscript(torch, scripted, meta, args)
    if args.state_dict_out:
        torch.save(model.state_dict(), args.state_dict_out)
    print(f"export-model: wrote {os.path.abspath(args.out)} ({args.arch}, {task}, script, "
          f"{len(categories or [])} classes, weights: {source}, UNTRAINED)")


def _write_torchscript(torch, scripted, meta, args):
    out = os.path.abspath(args.out)
    if os.path.isdir(out):
        raise Failure(f"{args.out} is a folder; give the .pt file to write, e.g. {os.path.join(args.out, args.arch + '.pt')}", 2)
    try:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        # Write to a temp name and rename so a failed export never leaves a half-written model.
        fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".pt", dir=os.path.dirname(out))
    except OSError as e:
        raise Failure(f"cannot write {args.out}: {e.strerror}; choose a folder you can write to")
    os.close(fd)
    try:
        torch.jit.save(scripted, tmp, _extra_files={"featscope.json": json.dumps(meta)})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the model file normal permissions
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _triple(text, option, default, positive):
    if text is None:
        return list(default)
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or any(v != v or v in (float("inf"), float("-inf")) for v in values) or (positive and min(values) <= 0):
        kind = "positive numbers" if positive else "numbers"
        raise Failure(f"{option} takes three {kind} for R,G,B, e.g. {','.join(map(str, default))}, not {text!r}", 2)
    return values


def _read_labels(path):
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\r\n").strip() for line in f]
    except FileNotFoundError:
        raise Failure(f"--labels {path}: no such file; give a text file with one class name per line", 2)
    except (OSError, UnicodeDecodeError) as e:
        raise Failure(f"--labels {path}: cannot read it ({e}); give a UTF-8 text file with one class name per line", 2)
    while lines and not lines[-1]:
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line]
    if not lines:
        raise Failure(f"--labels {path} is empty; give one class name per line", 2)
    if blank:
        raise Failure(f"--labels {path}: line {blank[0]} is blank; give one class name per line, in class-index order", 2)
    return lines


# A small VisionTransformer for tests: 4 x 4 patches of 8 px, 2 encoder layers of 2 heads, width 64.
VIT_SMALL = dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128)


def _constructor(torchvision, arch, size=224):
    if arch == "vit_small":
        from torchvision.models.vision_transformer import VisionTransformer

        def vit_small(weights=None, **kwargs):
            return VisionTransformer(**{**VIT_SMALL, "image_size": size}, **kwargs)
        return vit_small
    if arch.startswith("vit_") and size != 224:
        ctor = getattr(torchvision.models, arch, None)
        if ctor is not None:
            return lambda weights=None, **kw: ctor(weights=weights, image_size=size, **kw)
    names = sorted(torchvision.models.list_models(module=torchvision.models)) if hasattr(torchvision.models, "list_models") \
        else sorted(n for n in dir(torchvision.models) if n[:1].islower() and callable(getattr(torchvision.models, n)))
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else f"one of {', '.join(names[:12])}, ... ({len(names)} in all)"
        raise Failure(f"unknown --arch {arch!r}: not a torchvision classification model; {hint}", 2)
    return getattr(torchvision.models, arch)


def _build(ctor, arch, num_classes):
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if arch in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)
    try:
        return ctor(weights=None, **kwargs)
    except TypeError:  # torchvision < 0.13
        return ctor(pretrained=False, **kwargs)


def _classifier_name(torch, model):
    """The last nn.Linear (or 1x1 Conv2d head, as in SqueezeNet): its output size is the class count."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) or (isinstance(m, torch.nn.Conv2d) and name.startswith("classifier")):
            last = name
    return last


def _outputs(torch, model, head):
    if head is None:
        return 1000
    m = dict(model.named_modules())[head]
    return m.out_features if isinstance(m, torch.nn.Linear) else m.out_channels


def _load_weights(torch, path):
    """A state_dict from FILE: plain, in a checkpoint dict, or a whole pickled module."""
    if not os.path.isfile(path):
        raise Failure(f"--weights {path!r}: no such file (expected none, imagenet or a .pth with a state_dict or checkpoint)", 2)
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:
        raise Failure(f"--weights {path}: torch.load cannot read it ({type(e).__name__}: {_first_line(e)}); "
                      "save the weights with torch.save(model.state_dict(), FILE)")
    base = os.path.basename(path)
    where = f"state_dict {base}"
    if isinstance(obj, torch.nn.Module):
        obj, where = obj.state_dict(), f"pickled module {base}"
    elif isinstance(obj, dict) and not _is_state_dict(torch, obj):
        key = next((k for k in CHECKPOINT_KEYS if k in obj), None)
        if key is None:
            keys = ", ".join(map(str, list(obj)[:8]))
            raise Failure(f"--weights {path} is a checkpoint dict with keys {keys} but none of "
                          f"{', '.join(CHECKPOINT_KEYS)} holds the weights; re-save it with "
                          "torch.save({'model': model.state_dict()}, FILE)", 2)
        extra = f", epoch {obj['epoch']}" if isinstance(obj.get("epoch"), int) else ""
        obj = obj[key]
        if isinstance(obj, torch.nn.Module):
            obj = obj.state_dict()
        where = f"checkpoint {base} ['{key}']{extra}"
    if not isinstance(obj, dict) or not _is_state_dict(torch, obj) or not obj:
        raise Failure(f"--weights {path} holds no state_dict (found {type(obj).__name__}); "
                      "save the weights with torch.save(model.state_dict(), FILE)", 2)
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
        where += ", DataParallel 'module.' prefix stripped"
    return obj, where


def _is_state_dict(torch, d):
    return all(isinstance(k, str) for k in d) and all(isinstance(v, torch.Tensor) for v in d.values())


def _load_into(model, state_dict, args):
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {list(state_dict[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
             if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} parameters missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} not in the model (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} of another shape (e.g. {'; '.join(wrong[:2])})")
        raise Failure(f"--weights {args.weights} does not fit --arch {args.arch}: {', '.join(parts)}; "
                      "pass the --arch the weights were trained with", 2)
    model.load_state_dict(state_dict)


def _to_torchscript(torch, model, args, example):
    try:
        if args.trace:
            with torch.no_grad():
                return torch.jit.trace(model, example)
        return torch.jit.script(model)
    except Exception as e:
        if args.trace:
            raise Failure(f"torch.jit.trace failed for {args.arch} ({type(e).__name__}: {_first_line(e)}); try --script")
        raise Failure(f"torch.jit.script cannot compile {args.arch} ({type(e).__name__}: {_first_line(e)}); try --trace")


def _check_same(torch, model, scripted, example, args):
    """The TorchScript module must compute what the eager model does."""
    with torch.no_grad():
        want, got = model(example), scripted(example)
    if isinstance(want, torch.Tensor) and isinstance(got, torch.Tensor):
        diff = (want - got).abs().max().item()
        if diff > 1e-3 * max(1.0, want.abs().max().item()):
            raise Failure(f"the {'traced' if args.trace else 'scripted'} {args.arch} differs from the Python model by "
                          f"{diff:.3g}; try {'--script' if args.trace else '--trace'}")


def _init_deterministic(torch, model, seed):
    """torchvision's init is seeded by torch.manual_seed; also give BatchNorm non-trivial statistics so
    that captures of bn layers differ from their inputs (an identity BN would hide bugs in tests)."""
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        # torchvision's ViT starts its head at zero (all logits 0, no gradient reaches any layer):
        # an untrained export gets a small random head instead, so that Grad-CAM has something to show.
        if isinstance(m, torch.nn.Linear) and not m.weight.any():
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)


def _token_layout(torch, model, arch, size):
    """How a transformer's token outputs map onto the image, for featscope's maps (docs/api.md):
    ViT: [B, 1 + N, D] with a class token first, then the patch tokens row by row on the patch grid;
    Swin: channel-last [B, H, W, C] maps on the grids of its stages (patch grid, then halved)."""
    from torchvision.models.vision_transformer import VisionTransformer
    if isinstance(model, VisionTransformer):
        g = size // model.patch_size
        return {"layout": "NLD", "classTokens": 1, "patchSize": model.patch_size, "grids": [[g, g]],
                "attention": "MultiheadAttention"}
    try:
        from torchvision.models.swin_transformer import SwinTransformer
    except ImportError:
        return None
    if isinstance(model, SwinTransformer):
        patch = model.features[0][0].stride[0]
        g = size // patch
        grids = []
        while g >= 1 and len(grids) < 4:
            grids.append([g, g])
            g //= 2
        return {"layout": "NHWC", "classTokens": 0, "patchSize": patch, "grids": grids}
    return None


def _imagenet_categories(torchvision):
    try:
        from torchvision.models import ResNet18_Weights
        cats = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
        if len(cats) == 1000:
            return list(cats)
    except Exception:
        pass
    return [f"class {i}" for i in range(1000)]


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Failure as f:
        if os.environ.get("FEATSCOPE_DEBUG"):
            raise
        print(f"export-model: {f}", file=sys.stderr)
        sys.exit(f.code)
    except KeyboardInterrupt:
        print("export-model: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # anything unforeseen: still one line
        if os.environ.get("FEATSCOPE_DEBUG"):
            raise
        print(f"export-model: unexpected {type(e).__name__}: {_first_line(e)} "
              "(set FEATSCOPE_DEBUG=1 for the traceback, and report it)", file=sys.stderr)
        sys.exit(1)
