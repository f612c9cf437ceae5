#!/usr/bin/env python3
"""The Python side of `npm run bench`: the blog's approach on the same model file and the same cases.

  python_peer.py MODEL.pt --photo IMAGE [--input X.f32] [--batch B] [--runs N] [--device auto|cpu|cuda] [--serve]

Based on ../shared/device/python_anchor.py, with one difference that matters for a fair ratio: the
eager torchvision twin gets the state_dict of the SAME TorchScript file featscope loads, and the
scripted floor is torch.jit.load of that file. bench/run.js starts this script after its own cases
and, with --serve, asks it for blocks of timed samples of each case in turn with its own
(`CASE N WARM` on stdin, `PEER_TIMES {...}` back). Without --serve it runs every case once and
prints one `PEER_JSON {...}` line (medians in ms after warm-up), for use on its own.
"""
import argparse
import os
import io
import json
import statistics
import sys
import time
import warnings

LAYERS = ["layer1.0.conv1", "layer2", "layer3", "layer4"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--photo", required=True, help="the image file of the photo -> PNG case")
    ap.add_argument("--input", help="raw float32 [1,3,224,224] batch-1 input written by run.js (same bytes both sides)")
    ap.add_argument("--batch", type=int, default=0, help="batch size of the batch x layer1 case (default 128 on CUDA, 8 on CPU)")
    ap.add_argument("--runs", type=int, default=50, help="timed runs of the batch-1 cases (batch and photo cases use fewer)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--folder", help="a folder of photos for the folder_png case (the blog's loop over a folder)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (run.js passes featscope's count)")
    ap.add_argument("--serve", action="store_true", help="for run.js: read `CASE N WARM` lines, answer `PEER_TIMES {...}`")
    args = ap.parse_args()

    warnings.filterwarnings("ignore")  # TorchScript deprecation warnings on PyTorch >= 2.11
    import numpy as np
    import torch
    import torchvision

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(args.device)
    res = {"torch": torch.__version__, "torchvision": torchvision.__version__, "device": str(dev),
           "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
           "threads": torch.get_num_threads(), "python": sys.version.split()[0]}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    n1 = args.runs
    warm1 = max(2, n1 // 5)

    # The same file featscope loads: scripted floor, and its weights in the eager twin the blog hooks.
    scripted = torch.jit.load(args.model, map_location=dev).eval()
    model = torchvision.models.resnet18(weights=None)
    model.load_state_dict(scripted.state_dict(), strict=True)  # raises if the file is not a ResNet-18
    model = model.to(dev).eval()

    if args.input:
        x1 = torch.from_numpy(np.fromfile(args.input, dtype=np.float32).reshape(1, 3, 224, 224)).to(dev)
    else:
        torch.manual_seed(0)
        x1 = torch.randn(1, 3, 224, 224, device=dev)
    batch = args.batch or (128 if dev.type == "cuda" else 8)
    g = torch.Generator().manual_seed(1)
    xb = torch.randn(batch, 3, 224, 224, generator=g).to(dev)
    res["batch"] = batch
    modules = dict(model.named_modules())

    cases = {}  # name -> (fn, warm-up runs); each fn is one timed sample
    im = torch.inference_mode

    def scripted_forward():
        with im():
            scripted(x1)
    cases["scripted_forward"] = (scripted_forward, warm1)

    def eager_forward():
        with im():
            model(x1)
    cases["eager_forward"] = (eager_forward, warm1)

    # Batch 1 x four layers, each copied to host memory as numpy (the blog's .cpu()).
    feats = []
    four_hooks = [modules[n].register_forward_hook(lambda m, i, o: feats.append(o)) for n in LAYERS]

    def four():
        feats.clear()
        with im():
            model(x1)
            return [f.detach().cpu().numpy() for f in feats]
    cases["b1_four_layers"] = (four, warm1)
    # A checksum so run.js can tell both sides captured the same thing (TF32 on CUDA: ~1e-3).
    res["b1_four_layers_sums"] = [float(a.astype(np.float64).sum()) for a in four()]

    # Batch 1 x every leaf module (each call of a shared module is one capture, as in featscope).
    allf = []
    leaves = [n for n, m in model.named_modules() if n and len(list(m.children())) == 0]

    def all_leaves():
        allf.clear()
        with im():
            model(x1)
            return [f.detach().cpu().numpy() for f in allf]
    cases["b1_all_leaves"] = (all_leaves, warm1)
    res["n_leaf_modules"] = len(leaves)

    # Batch B x layer1 to host, and the scripted forward of that batch.
    fb = []

    def batch_layer1():
        fb.clear()
        with im():
            model(xb)
            return fb[0].cpu().numpy()
    cases["batch_layer1"] = (batch_layer1, 2)

    # The same, stopped at layer1 as a Python user can: the hook raises once it has the output,
    # so the layers after it do not run (the peer of featscope's capture(), which stops there too).
    class StopForward(Exception):
        pass

    def stop_at_layer1(_m, _i, o):
        fb.append(o)
        raise StopForward

    def batch_layer1_stop():
        fb.clear()
        with im():
            try:
                model(xb)
            except StopForward:
                pass
            return fb[0].cpu().numpy()
    cases["batch_layer1_stop"] = (batch_layer1_stop, 2)

    def batch_forward():
        with im():
            scripted(xb)
    cases["batch_forward"] = (batch_forward, 2)

    # A Python user's images start in host memory too: the batch forward with the copy to the GPU
    # inside each sample, from pageable memory (.cuda()) and from pinned memory (pin_memory() once,
    # then .cuda(non_blocking=True)), the honest peers of featscope's forward from a JS array.
    if dev.type == "cuda":
        xb_host = xb.cpu()
        xb_pinned = xb_host.pin_memory()

        def batch_forward_pageable():
            with im():
                scripted(xb_host.cuda(dev))
        cases["batch_forward_pageable"] = (batch_forward_pageable, 2)

        def batch_forward_pinned():
            with im():
                scripted(xb_pinned.cuda(dev, non_blocking=True))
        cases["batch_forward_pinned"] = (batch_forward_pinned, 2)
    else:
        res["host_to_gpu_note"] = ("the host-to-GPU cases (batch_forward_pageable, batch_forward_pinned) "
                                   "need a GPU; skipped on this CPU-only machine")
        print("python_peer: note: " + res["host_to_gpu_note"], file=sys.stderr)

    # Hooks live only while their case runs, as in the blog (one set of hooks per experiment).
    hook_sets = {
        "b1_four_layers": lambda: [modules[n].register_forward_hook(lambda m, i, o: feats.append(o)) for n in LAYERS],
        "b1_all_leaves": lambda: [modules[n].register_forward_hook(lambda m, i, o: allf.append(o)) for n in leaves],
        "batch_layer1": lambda: [model.layer1.register_forward_hook(lambda m, i, o: fb.append(o))],
        "batch_layer1_stop": lambda: [model.layer1.register_forward_hook(stop_at_layer1)],
        "photo_png": lambda: [modules["layer1.0.conv1"].register_forward_hook(lambda m, i, o: f1.append(o))],
        "folder_png": lambda: [modules["layer1.0.conv1"].register_forward_hook(lambda m, i, o: f1.append(o))],
    }
    for h in four_hooks:
        h.remove()
    hs = hook_sets["b1_all_leaves"]()
    res["b1_all_leaves_captures"] = len(all_leaves())
    for h in hs:
        h.remove()

    # One photo end to end, as the blog does it: PIL + transforms + hook + matplotlib 4x4 grid PNG.
    f1 = []
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from PIL import Image
        from torchvision import transforms
        with open(args.photo, "rb") as f:
            photo = f.read()
        tf = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                                 transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

        def blog_grid(img, dest):
            # The blog's picture: the image through the transforms and the hooked model, then a
            # matplotlib 4x4 grid of the first 16 channels saved as PNG to `dest` (file or buffer).
            f1.clear()
            t = tf(img).unsqueeze(0).to(dev)
            with torch.inference_mode():
                model(t)
            fm = f1[0]
            fig = plt.figure(figsize=(12, 12))
            for i in range(16):
                plt.subplot(4, 4, i + 1)
                plt.imshow(fm[0, i].detach().cpu().numpy(), cmap="viridis")
                plt.title(f"Channel {i}", fontsize=10)
                plt.axis("off")
            plt.tight_layout()
            fig.savefig(dest, format="png")
            plt.close(fig)

        def photo_png():
            out = io.BytesIO()
            blog_grid(Image.open(io.BytesIO(photo)).convert("RGB"), out)
            return out.getvalue()
        cases["photo_png"] = (photo_png, 2)

        if args.folder:
            import tempfile
            names = sorted(n for n in os.listdir(args.folder) if not n.startswith("."))
            out_dir = tempfile.mkdtemp(prefix="featscope-bench-blog-")
            import atexit
            import shutil
            atexit.register(shutil.rmtree, out_dir, True)

            def folder_png():
                # The blog's loop in one process: each photo through PIL, the transforms, the hooked
                # model and a matplotlib 4x4 grid written as a PNG file.
                for name in names:
                    blog_grid(Image.open(os.path.join(args.folder, name)).convert("RGB"),
                              os.path.join(out_dir, os.path.splitext(name)[0] + ".png"))
            cases["folder_png"] = (folder_png, 0)
    except Exception as e:  # matplotlib missing: report it, keep the other cases
        res["photo_png_error"] = repr(e)

    def run_case(name, n, warm):
        fn, _ = cases[name]
        hs = hook_sets.get(name, lambda: [])()
        try:
            for _ in range(warm):
                fn()
            sync()
            ts = []
            cpu = []  # process CPU time (all threads): less sensitive to other processes on a shared machine
            for _ in range(n):
                c = time.process_time()
                t = time.perf_counter()
                fn()
                sync()
                ts.append((time.perf_counter() - t) * 1e3)
                cpu.append((time.process_time() - c) * 1e3)
            run_case.cpu = cpu
            return ts
        finally:
            for h in hs:
                h.remove()

    if args.serve:
        # run.js alternates blocks of featscope and Python samples, so drift on a shared machine hits both.
        res["cases"] = sorted(cases)
        print("PEER_READY " + json.dumps(res), flush=True)
        for line in sys.stdin:
            parts = line.split()
            if not parts or parts[0] == "quit":
                break
            name, n, warm = parts[0], int(parts[1]), int(parts[2])
            try:
                out = {"case": name, "ms": run_case(name, n, warm)}
                out["cpu_ms"] = run_case.cpu
            except Exception as e:
                out = {"case": name, "error": repr(e)}
            print("PEER_TIMES " + json.dumps(out), flush=True)
        return

    few = max(3, n1 // 5)
    for name in cases:
        n = n1 if name in ("scripted_forward", "eager_forward", "b1_four_layers", "b1_all_leaves") else few
        res[name + "_ms"] = round(statistics.median(run_case(name, n, cases[name][1])), 3)
    print("PEER_JSON " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
