"""Segmentation and detection models for export-model.py (torchvision.models.segmentation / .detection).

Their forwards return structured values: segmentation models a dict {"out": [N, K, H, W] logits,
"aux": ... when built with an auxiliary head}; detection models, scripted, a tuple
(losses, detections), detections a list of {"boxes": [D, 4] (x1, y1, x2, y2 in input pixels),
"labels": [D] (int64), "scores": [D]} per image. Detection models take a List[Tensor] of images
in [0, 1] and normalise and resize them themselves (GeneralizedRCNNTransform), so their metadata
has mean 0, std 1; featscope passes a batch as that list.

Untrained models are built offline: weights=None and weights_backbone=None (nothing downloads);
the category names are torchvision's constants (COCO's 91 for detection, Pascal VOC's 21 for
segmentation, 'no person'/'person' for Keypoint R-CNN, with COCO's 17 keypoint names), read from
the weights enums' meta, which needs no download. Mask R-CNN adds "masks" ([D, 1, H, W]
probabilities in input pixels) to each image's detections; Keypoint R-CNN adds "keypoints"
([D, K, 3]: x, y, visibility) and "keypoints_scores" ([D, K]).

The constructor's keyword arguments go into featscope.json ("build") so that the Python oracles
rebuild the same eager model (test/support/twin.py).
"""


def is_structured(torchvision, arch):
    return task_of(torchvision, arch) is not None


def task_of(torchvision, arch):
    seg = getattr(torchvision.models, "segmentation", None)
    det = getattr(torchvision.models, "detection", None)
    if seg is not None and arch in _names(torchvision, seg):
        return "segmentation"
    if det is not None and arch in _names(torchvision, det):
        return "detection"
    return None


def _names(torchvision, module):
    if hasattr(torchvision.models, "list_models"):
        return set(torchvision.models.list_models(module=module))
    return {n for n in dir(module) if n[:1].islower() and callable(getattr(module, n)) and "_" in n}


def build(torch, torchvision, arch, num_classes, size, score_thresh, fail):
    """(model, build kwargs, task, categories, keypoint names or None): the untrained eager model in eval mode."""
    task = task_of(torchvision, arch)
    module = torchvision.models.segmentation if task == "segmentation" else torchvision.models.detection
    kwargs = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if task == "detection":
        # The model resizes its input so that the short side is min_size (at most max_size):
        # --size keeps what featscope feeds it, instead of torchvision's 800 (320 for the _320 ones).
        kwargs.update(min_size=size, max_size=size)
        if score_thresh is not None:
            kwargs[_score_key(arch)] = score_thresh
    model = rebuild(torchvision, arch, task, kwargs)
    n = _class_count(torch, model, task)
    categories = _categories(torchvision, task, n, arch)
    return model.eval(), kwargs, task, categories, _keypoint_names(torchvision, model)


def rebuild(torchvision, arch, task, kwargs):
    """The eager model of `arch` with `kwargs` and no weights (also the oracles' twin)."""
    module = torchvision.models.segmentation if task == "segmentation" else torchvision.models.detection
    return getattr(module, arch)(weights=None, weights_backbone=None, **kwargs)


def _score_key(arch):
    # Faster R-CNN: box_score_thresh; RetinaNet, FCOS, SSD: score_thresh.
    return "box_score_thresh" if "rcnn" in arch else "score_thresh"


def _class_count(torch, model, task):
    if task == "segmentation":
        last = None
        for m in model.classifier.modules():
            if isinstance(m, torch.nn.Conv2d):
                last = m
        return last.out_channels if last is not None else None
    head = getattr(getattr(model, "roi_heads", None), "box_predictor", None)
    if head is not None:
        return head.cls_score.out_features
    return getattr(getattr(getattr(model, "head", None), "classification_head", None), "num_classes", None)


def _categories(torchvision, task, n, arch=""):
    try:
        if task == "segmentation":
            cats = torchvision.models.segmentation.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1.meta["categories"]
        elif arch.startswith("keypointrcnn"):
            cats = torchvision.models.detection.KeypointRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
        else:
            cats = torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    except Exception:
        cats = None
    if cats is not None and n == len(cats):
        return list(cats)
    return [f"class {i}" for i in range(n)] if n else None


def _keypoint_names(torchvision, model):
    """COCO's person keypoint names for a Keypoint R-CNN predicting that many keypoints, else None."""
    predictor = getattr(getattr(model, "roi_heads", None), "keypoint_predictor", None)
    if predictor is None:
        return None
    k = predictor.kps_score_lowres.out_channels
    try:
        names = torchvision.models.detection.KeypointRCNN_ResNet50_FPN_Weights.COCO_V1.meta["keypoint_names"]
    except Exception:
        names = None
    return list(names) if names is not None and len(names) == k else [f"keypoint {i}" for i in range(k)]


def example_input(torch, size):
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))


def eager_forward(model, task, x):
    """What the TorchScript module computes, from the eager model (the scripted detection model returns
    (losses, detections); the eager one, in eval mode, the detections only)."""
    if task == "detection":
        return ({}, model(list(x.unbind(0))))
    return model(x)


def scripted_forward(scripted, task, x):
    return scripted(list(x.unbind(0))) if task == "detection" else scripted(x)


def max_diff(torch, a, b):
    """Largest absolute difference between two structured values; inf when their structure differs."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape:
            return float("inf")
        return 0.0 if a.numel() == 0 else (a.double() - b.double()).abs().max().item()
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return float("inf")
        return max([max_diff(torch, a[k], b[k]) for k in a] + [0.0])
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return float("inf")
        return max([max_diff(torch, x, y) for x, y in zip(a, b)] + [0.0])
    return 0.0 if a == b else float("inf")
