"""featscope's .pt2 export: an AOTInductor package whose extra outputs are module calls ("taps").

Forward hooks are not exported (pytorch#167329), so the hooks run at export time instead: a
non-strict torch.export traces the model in Python with a forward hook on every tapped module,
and the hooks append (a clone of) each call's output to the wrapper's outputs. The compiled
package returns (model output, tap 0, tap 1, ...); the tap names and featscope's usual metadata
go into the package's metadata (aot_inductor.metadata, read in C++ by
AOTIModelPackageLoader::get_metadata()): "featscope.json" (as in TorchScript files, plus "taps",
"tapsFlag" and "modules"), and "featscope.taps", "featscope.modules", "featscope.taps_flag",
"featscope.input" as plain text for the native loader.
"""
import json
import os
import tempfile

import torch


def plan_taps(model, example, taps):
    """[(name, layer, call, type)] in hook-firing order for the module calls returning a tensor.
    `taps` is "all" or a list of module names (each must exist). Also the list of all module names."""
    modules = dict(model.named_modules())
    del modules[""]
    if taps == "all":
        wanted = list(modules)
    else:
        wanted = [t.strip() for t in taps if t.strip()]
        for t in wanted:
            if t not in modules:
                raise KeyError(t)
    fired = []
    counts = {}

    def make_hook(name):
        def hook(mod, _inp, out):
            k = counts.get(name, 0)
            counts[name] = k + 1
            if isinstance(out, torch.Tensor):
                fired.append({"name": name if k == 0 else f"{name}#{k}", "layer": name, "call": k,
                              "type": type(mod).__name__})
        return hook

    handles = [modules[n].register_forward_hook(make_hook(n)) for n in wanted]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return fired, list(modules)


class Tapped(torch.nn.Module):
    """model(x) -> (output, *tapped outputs), the taps recorded by forward hooks."""

    def __init__(self, model, layers):
        super().__init__()
        self.model = model
        self._buf = []
        mods = dict(model.named_modules())
        for n in dict.fromkeys(layers):
            mods[n].register_forward_hook(self._hook)

    def _hook(self, _mod, _inp, out):
        if isinstance(out, torch.Tensor):
            # A copy, as a careful Python hook takes: a later in-place op (ResNet's `out += identity`
            # after bn2) must not change the tap.
            self._buf.append(out.clone())

    def forward(self, x):
        self._buf = []
        out = self.model(x)
        taps = self._buf
        self._buf = []
        return (out, *taps)


def export_pt2(model, out_path, meta, taps, size, fail, device="cpu"):
    try:
        import importlib
        ok = hasattr(torch, "export") and hasattr(importlib.import_module("torch._inductor"), "aoti_compile_and_package")
    except ImportError:
        ok = False
    if not ok:
        fail(f"--format pt2 needs torch 2.6 or newer (torch.export and AOTInductor packages); this Python has torch "
             f"{torch.__version__}. Use a newer torch (Debian trixie's python3-torch, or pip), or export TorchScript (OUT.pt)", 2)
    # The package is compiled for the device the model and example input are on (AOTInductor).
    model = model.to(device)
    example = torch.zeros(2, 3, size, size, device=device)
    try:
        tap_list = "all" if taps == "all" else taps.split(",")
        planned, modules = plan_taps(model, example, tap_list)
    except KeyError as e:
        fail(f"--taps: no module named {e.args[0]!r} in {meta['architecture']}; use module names as in "
             "named_modules() (layer1, layer4.1.conv2, ...) or --taps all", 2)
    if not planned:
        fail("--taps: none of those modules returns a tensor; nothing to capture", 2)
    meta = dict(meta)
    meta["taps"] = planned
    meta["tapsFlag"] = taps
    meta["modules"] = modules
    wrapper = Tapped(model, [t["layer"] for t in planned]).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        ep = torch.export.export(wrapper, (example,), dynamic_shapes={"x": {0: batch}}, strict=False)
    n_out = len(ep.graph_signature.user_outputs)
    if n_out != 1 + len(planned):
        fail(f"internal: the exported graph has {n_out} outputs, expected {1 + len(planned)}", 3)
    out = os.path.abspath(out_path)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".pt2", dir=os.path.dirname(out))
    os.close(fd)
    try:
        torch._inductor.aoti_compile_and_package(
            ep, package_path=tmp, inductor_configs={"aot_inductor.metadata": {
                "featscope.json": json.dumps(meta),
                # The same facts in a form C++ reads without a JSON parser: one tap a line
                # (name, layer, call, type; tab-separated), module names, the input's [C, H, W].
                "featscope.taps": "\n".join(f"{t['name']}\t{t['layer']}\t{t['call']}\t{t['type']}" for t in planned),
                "featscope.modules": "\n".join(modules),
                "featscope.taps_flag": taps,
                "featscope.input": f"3,{size},{size}",
                "featscope.device": device,
            }})
        umask = os.umask(0); os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"export-model: wrote {out} ({meta['architecture']}, AOTInductor package, {len(planned)} taps, "
          f"{device}, weights: {meta['weights']['source']}{'' if meta['weights']['trained'] else ', UNTRAINED'})")
