// Grad-CAM (Selvaraju et al. 2017) through the hooked graph: the worker and the argument handling
// of model.gradcam (ModelWrap::GradCam, declared in model.h). Three targets: a classifier's class
// logit, a segmentation model's class logit summed over the pixels predicted as that class, and a
// detection model's score of one of its detections (the top one by default).
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#include "args.h"
#include "backward.h"
#include "capture_ops.h"
#include "errors.h"
#include "model.h"
#include "structured.h"
#include "tensor_bridge.h"
#include "token_layout.h"
#include "workers.h"

namespace featscope {

namespace {

// What the score is. Classifier: sum_i logits[i, c_i] of a [N, K] output. Segmentation: the
// output dict's entry `output` ([N, K, H, W] logits); score = sum_i sum_{p : argmax_k out[i,k,p] = c_i}
// out[i, c_i, p], the mask computed from the same forward.
// Detection: the scripted model's per-image detections ({boxes, labels, scores}, sorted by score as
// torchvision's NMS leaves them); score = sum_i scores_i[box], the box-th highest detection of
// each image.
struct GradCamTarget {
  bool segmentation = false;
  bool detection = false;
  int64_t box = 0;
  std::string output = "out";
};

struct ImageDetections {
  at::Tensor boxes, labels, scores;
};

bool isDetectionDict(const c10::IValue& v) {
  if (!v.isGenericDict()) return false;
  auto d = v.toGenericDict();
  for (const char* k : {"boxes", "labels", "scores"})
    if (!d.contains(k) || !d.at(k).isTensor()) return false;
  return true;
}

// The per-image detections in a detection model's output: a list of {boxes, labels, scores} dicts,
// at any depth (torchvision's scripted (losses, detections) tuple, or the list alone).
std::optional<std::vector<ImageDetections>> detectionsIn(const c10::IValue& v, int depth = 0) {
  if (depth > 8) return std::nullopt;
  if (v.isList()) {
    auto list = v.toListRef();
    bool all = !list.empty();
    for (const auto& e : list) all = all && isDetectionDict(e);
    if (all) {
      std::vector<ImageDetections> out;
      for (const auto& e : list) {
        auto d = e.toGenericDict();
        out.push_back({d.at("boxes").toTensor(), d.at("labels").toTensor(), d.at("scores").toTensor()});
      }
      return out;
    }
    for (const auto& e : list)
      if (auto d = detectionsIn(e, depth + 1)) return d;
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements())
      if (auto d = detectionsIn(e, depth + 1)) return d;
  }
  return std::nullopt;
}

// The [N, K, H, W] logits of a segmentation output: the dict entry `key`.
at::Tensor segmentationLogits(const c10::IValue& out, const std::string& key) {
  if (out.isGenericDict()) {
    auto dict = out.toGenericDict();
    std::string keys;
    for (const auto& e : dict) {
      const bool match = e.key().isString() && e.key().toStringRef() == key;
      if (match && e.value().isTensor() && e.value().toTensor().dim() == 4) return e.value().toTensor();
      if (match)
        throw FsError("MODEL_OUTPUT_NOT_LOGITS",
                      "a segmentation target needs the output entry '" + key + "' to be [N, classes, H, W] logits; it is " +
                          (e.value().isTensor() ? std::to_string(e.value().toTensor().dim()) + "-D" : e.value().tagKind()));
      keys += (keys.empty() ? "" : ", ") + (e.key().isString() ? e.key().toStringRef() : e.key().tagKind());
    }
    throw FsError("MODEL_OUTPUT_NOT_LOGITS", "a segmentation target needs an output entry '" + key + "'; this model's output dict has " +
                                                 (keys.empty() ? std::string("no entries") : keys) + " (pick one with target.output)");
  }
  throw FsError("MODEL_OUTPUT_NOT_LOGITS",
                "a segmentation target needs a model whose output is a dict with '" + key +
                    "' logits [N, classes, H, W]; this one returns " +
                    (out.isTensor() ? std::to_string(out.toTensor().dim()) + "-D tensor" : out.tagKind()) +
                    (out.isTensor() && out.toTensor().dim() == 2 ? " (a classifier: leave out the target)" : ""));
}

}  // namespace

// Grad-CAM: gradients of the class score with respect to one layer's output, through the hooked
// graph with autograd on. cam = ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of dScore/dA_k.
class GradCamWorker : public FsWorker {
 public:
  // `part`: the full name `layer:key` of one tensor of a module that returns a tuple, list or dict
  // (structured.h), or empty.
  GradCamWorker(Napi::Env env, std::shared_ptr<ModelState> st, JsInput input, std::string layer, std::string part,
                std::vector<int64_t> classes, TokenLayout tokens, GradCamTarget target)
      : FsWorker(env, "featscope.gradcam", "GRADCAM_FAILED"),
        st_(std::move(st)),
        in_(std::move(input)),
        layer_(std::move(layer)),
        part_(std::move(part)),
        classes_(std::move(classes)),
        tokens_(std::move(tokens)),
        target_(std::move(target)) {}

 protected:
  void Run() override {
    auto hf = st_->hooked({layer_}, /*guardInPlace=*/false);
    const auto calledOnce = [&](size_t calls) {
      if (calls > 1)
        throw FsError("INVALID_ARGUMENT", "Grad-CAM needs a layer called once per forward; " + layer_ + " is called " +
                                              std::to_string(calls) + " times (pick one of its calls' inner modules)");
    };
    if (!hf->slots[0].looped) calledOnce(hf->slots.size());
    torch::AutoGradMode grad(true);
    PrecisionScope precision(*st_);
    torch::jit::Stack stack{st_->module._ivalue()};
    pushForwardInputs(stack, *hf->fn->graph(), in_.forGrad(*st_));
    hf->fn->run(stack);
    auto tuple = stack.back().toTuple();
    std::vector<ImageDetections> dets;
    at::Tensor logits;
    if (target_.detection) {
      auto found = detectionsIn(tuple->elements()[0]);
      if (!found)
        throw FsError("MODEL_OUTPUT_NOT_LOGITS",
                      "a detection target needs a detection model whose output holds a list of {boxes, labels, scores} per image "
                      "(torchvision's detection models, exported by scripts/export-model.py); this one returns " +
                          std::string(tuple->elements()[0].tagKind()));
      dets = std::move(*found);
    } else {
      logits = target_.segmentation ? segmentationLogits(tuple->elements()[0], target_.output) : checkLogits(tuple->elements()[0]);
    }
    auto captured = unpackCaptures(*hf, tuple->elements());
    if (hf->slots[0].structured) captured = onePart(std::move(captured));
    calledOnce(captured.size());
    if (captured.empty())
      throw FsError(
          "LAYER_NOT_CALLED",
          "Grad-CAM: " + layer_ + " was not called in this forward (it sits in an `if` branch not taken, or a loop that ran no iteration)");
    at::Tensor A = captured[0].tensor;
    std::string kind;
    const bool tokens = tokensToMaps(A, tokens_, &kind).defined() && !kind.empty();
    if (A.dim() != 4 && !tokens)
      throw FsError("INVALID_ARGUMENT",
                    "Grad-CAM needs a layer with a [N, C, H, W] output; " + layer_ + " gives " + std::to_string(A.dim()) + "-D");
    const int64_t n = target_.detection ? static_cast<int64_t>(dets.size()) : logits.size(0);
    at::Tensor cls, score, probs;
    if (target_.detection) {
      score = detectionScore(dets, &cls, &probs);
    } else if (target_.segmentation) {
      score = segmentationScore(logits, &cls, &probs);
    } else {
      cls = resolveClasses(logits, classes_);
      score = logits.gather(1, cls.view({n, 1})).sum();
      probs = at::softmax(logits.detach(), 1).gather(1, cls.view({n, 1})).view({n});
    }
    if (target_.detection && !score.requires_grad()) throw FsError("INVALID_ARGUMENT", noGradientPath());
    at::Tensor g = torch::autograd::grad({score}, {A}, /*grad_outputs=*/{}, /*retain_graph=*/c10::nullopt,
                                         /*create_graph=*/false, /*allow_unused=*/target_.detection)[0];
    if (!g.defined()) throw FsError("INVALID_ARGUMENT", noGradientPath());
    if (tokens) {  // a transformer's tokens as maps: the class token dropped (token_layout.h)
      A = tokensToMaps(A, tokens_, &kind);
      g = tokensToMaps(g, tokens_, &kind);
    }
    at::Tensor alpha = g.mean({2, 3}, /*keepdim=*/true);
    at::Tensor cam = at::relu((alpha * A).sum(1)).detach();
    bool used = false;
    cam_ = toHostFloat(cam, &used);
    classes_out_ = toHostFloat(cls.to(at::kFloat), &used);
    probs_ = toHostFloat(probs, &used);
    if (pixels_.defined()) pixels_ = toHostFloat(pixels_, &used);
    if (boxes_.defined()) boxes_ = toHostFloat(boxes_, &used);
    if (used) torch::cuda::synchronize(st_->device.index());
  }

  // Segmentation: each image's class (given, else the class predicted on the most pixels, the
  // lowest index on a tie), its mask (argmax over classes == c, no gradient through it), the
  // score summed over the masks, the class's mean softmax probability over its mask (0 when
  // empty) and the mask's pixel count.
  at::Tensor segmentationScore(const at::Tensor& logits, at::Tensor* cls, at::Tensor* probs) {
    const int64_t n = logits.size(0), k = logits.size(1);
    at::Tensor predicted = logits.detach().argmax(1);  // [N, H, W]
    if (classes_.empty()) {
      at::Tensor counts = at::zeros({n, k}, logits.options().dtype(at::kLong));
      counts.scatter_add_(1, predicted.reshape({n, -1}), at::ones_like(predicted.reshape({n, -1})));
      *cls = counts.argmax(1);
    } else {
      *cls = resolveClasses(logits, classes_);
    }
    at::Tensor mask = predicted.eq(cls->view({n, 1, 1}));  // [N, H, W]
    at::Tensor index = cls->view({n, 1, 1, 1}).expand({n, 1, logits.size(2), logits.size(3)});
    at::Tensor picked = logits.gather(1, index).squeeze(1);  // [N, H, W]
    at::Tensor maskF = mask.to(logits.scalar_type());
    at::Tensor count = maskF.sum({1, 2});
    at::Tensor p = at::softmax(logits.detach(), 1).gather(1, index).squeeze(1);
    *probs = (p * maskF).sum({1, 2}) / count.clamp_min(1);
    pixels_ = count;
    return (picked * maskF).sum();
  }
  // Detection: each image's box-th detection (sorted by score: 0 is the top one); the score is the
  // sum of their scores, `cls` their labels, `probs` their scores, boxes_ their boxes.
  at::Tensor detectionScore(const std::vector<ImageDetections>& dets, at::Tensor* cls, at::Tensor* probs) {
    std::vector<at::Tensor> scores, labels, boxes;
    for (size_t i = 0; i < dets.size(); ++i) {
      const auto& d = dets[i];
      const int64_t count = d.scores.dim() == 1 ? d.scores.size(0) : 0;
      if (target_.box >= count)
        throw FsError("INVALID_ARGUMENT", "Grad-CAM detection target: image " + std::to_string(i) + " has " + std::to_string(count) +
                                              " detection(s), so box " + std::to_string(target_.box) +
                                              " (0: the top-scoring one) does not exist; the model keeps detections above its "
                                              "score threshold (export-model.py --score-thresh 0 keeps them all)");
      if (d.labels.dim() != 1 || d.labels.size(0) != count || d.boxes.dim() != 2 || d.boxes.size(0) != count || d.boxes.size(1) != 4)
        throw FsError("MODEL_OUTPUT_NOT_LOGITS", "a detection target needs boxes [D, 4], labels [D] and scores [D] per image; image " +
                                                     std::to_string(i) + " has other shapes");
      scores.push_back(d.scores.select(0, target_.box));
      labels.push_back(d.labels.select(0, target_.box));
      boxes.push_back(d.boxes.select(0, target_.box).detach());
    }
    at::Tensor s = at::stack(scores);
    *cls = at::stack(labels).to(at::kLong);
    *probs = s.detach();
    boxes_ = at::stack(boxes).to(at::kFloat);
    return s.sum();
  }
  std::string noGradientPath() const {
    return "Grad-CAM: the detection scores do not depend on " + layer_ +
           " through differentiable operations (featscope's own torchvision::roi_align, used by Faster, Mask and Keypoint "
           "R-CNN, has no backward); for these models use EigenCAM, which needs no gradients (featscope predict --eigencam)";
  }
  // A structured module's captures (one per tensor it returns): Grad-CAM takes such a module only
  // when it returns one tensor. A part by name (`pair:1`) is refused: a part the module computes
  // reaches the capture apart from the value the rest of the graph uses, so its gradient would be
  // missing (seen on a tuple (x, 2x): "not used in the graph").
  std::vector<Captured> onePart(std::vector<Captured> parts) const {
    std::string names;
    for (const auto& c : parts) names += (names.empty() ? "" : ", ") + c.slot.name;
    if (!part_.empty())
      throw FsError("INVALID_ARGUMENT", "Grad-CAM takes a module, not one part of its output (" + part_ + "; " + layer_ + " returns " +
                                            names + "): name the inner module that computes it (featscope layers)");
    if (parts.size() > 1)
      throw FsError("INVALID_ARGUMENT", "Grad-CAM needs a layer with one tensor output; " + layer_ + " returns " +
                                            std::to_string(parts.size()) + " (" + names +
                                            "): name the inner module that computes the one you want (featscope layers)");
    return parts;
  }
  Napi::Value Result() override {
    Napi::Env env = Env();
    TensorExporter ex(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("shape", shapeToJs(env, cam_.sizes()));
    o.Set("data", ex.toFloat32Array(cam_));
    o.Set("classes", ex.toFloat32Array(classes_out_));
    o.Set("probabilities", ex.toFloat32Array(probs_));
    if (pixels_.defined()) o.Set("maskPixels", ex.toFloat32Array(pixels_));
    if (boxes_.defined()) o.Set("boxes", ex.toFloat32Array(boxes_));
    return o;
  }

 private:
  std::shared_ptr<ModelState> st_;
  JsInput in_;
  std::string layer_;
  std::string part_;
  std::vector<int64_t> classes_;
  TokenLayout tokens_;
  GradCamTarget target_;
  at::Tensor cam_, classes_out_, probs_, pixels_, boxes_;  // pixels_: segmentation only; boxes_: detection only
};

Napi::Value ModelWrap::GradCam(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = live(env);
  JsInput input = JsInput::read(info, st->device);
  std::string layer = argString(env, info[2], "layer");
  std::string part;  // `module:key`: one tensor of a module's tuple, list or dict output
  if (!st->layerNames.count(layer) && layer.find(':') != std::string::npos) {
    part = layer;
    layer = layer.substr(0, layer.find(':'));
  }
  if (!st->layerNames.count(layer)) throw makeJsError(env, "UNKNOWN_LAYER", "unknown layer " + (part.empty() ? layer : part));
  std::vector<int64_t> classes = optIntList(env, info[3], "classes");
  // info[5]: the target, absent for a classifier's class logit; { kind: 'segmentation', output } or
  // { kind: 'detection', box }.
  GradCamTarget target;
  if (info[5].IsObject()) {
    Napi::Object t = info[5].As<Napi::Object>();
    const std::optional<std::string> kind = optString(t.Get("kind"));
    if (!kind || (*kind != "segmentation" && *kind != "class" && *kind != "detection"))
      throw makeJsError(env, "INVALID_ARGUMENT", "gradcam target.kind must be 'class', 'segmentation' or 'detection'");
    target.segmentation = *kind == "segmentation";
    target.detection = *kind == "detection";
    if (auto output = optString(t.Get("output"))) target.output = *output;
    if (target.detection) {
      if (!classes.empty())
        throw makeJsError(env, "INVALID_ARGUMENT",
                          "a detection target picks a detection (target.box: 0 for the top-scoring one), not a class: leave out classes");
      if (auto box = optInt(t.Get("box"))) {
        if (*box < 0 || *box > 100000)
          throw makeJsError(env, "INVALID_ARGUMENT", "gradcam target.box must be an integer from 0 (the top-scoring detection)");
        target.box = *box;
      }
    }
  }
  auto* w = new GradCamWorker(env, st, std::move(input), std::move(layer), std::move(part), std::move(classes), readTokenLayout(info[4]),
                              std::move(target));
  auto p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace featscope
