"""The eager torchvision twin of a featscope TorchScript file, shared by the Python oracles."""
import json
import os
import sys

import numpy as np
import torch
import torchvision


def load_twin(model_path):
    """(model, metadata): torchvision's eager model of the architecture named in the file's
    featscope.json, loaded with the file's state_dict, in eval mode; and that metadata."""
    if model_path.endswith(".pt2"):
        # An AOTInductor package: featscope.json is in its metadata; its weights are compiled
        # constants, so the test exports the state_dict beside it (export-model.py --state-dict-out).
        import zipfile
        with zipfile.ZipFile(model_path) as z:
            name = next(n for n in z.namelist() if n.endswith("_metadata.json"))
            meta = json.loads(json.loads(z.read(name))["featscope.json"])
        state = torch.load(model_path + ".pth", map_location="cpu")
    else:
        files = {"featscope.json": ""}
        scripted = torch.jit.load(model_path, map_location="cpu", _extra_files=files)
        meta = json.loads(files["featscope.json"] or "{}")
        state = scripted.state_dict()
    arch = meta.get("architecture", "resnet18")
    if meta.get("task") in ("segmentation", "detection"):
        # scripts/structured_models.py's models, rebuilt with the constructor arguments the file names.
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
        import structured_models
        model = structured_models.rebuild(torchvision, arch, meta["task"], meta.get("build", {}))
    elif arch.startswith("featscope-test:"):
        # The test models of make_test_models.py (their weights come from the file below).
        import make_test_models
        model = getattr(make_test_models, arch.split(":", 1)[1])()
    elif arch == "vit_small" or (arch.startswith("vit_") and meta.get("input", {}).get("size", [224])[0] != 224):
        # export-model.py's small VisionTransformer (or a ViT at another image size).
        from torchvision.models.vision_transformer import VisionTransformer
        size = meta["input"]["size"][0]
        if arch == "vit_small":
            model = VisionTransformer(image_size=size, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64,
                                      mlp_dim=128, num_classes=state["heads.head.weight"].shape[0])
        else:
            model = getattr(torchvision.models, arch)(image_size=size)
    else:
        model = getattr(torchvision.models, arch)()
    model.load_state_dict(state)
    return model.eval(), meta


def read_input(input_path, shape):
    """Raw little-endian float32 written by the JS test, as a tensor of `shape` ([N, C, H, W])."""
    return torch.from_numpy(np.fromfile(input_path, dtype="<f4").reshape(shape))


def target_classes(logits, classes):
    """featscope's rule: the given classes (one for all images, or one each), else each argmax."""
    cls = torch.tensor([int(c) for c in classes]) if classes else logits.argmax(1)
    if cls.numel() == 1 and logits.shape[0] > 1:
        cls = cls.expand(logits.shape[0])
    return cls
