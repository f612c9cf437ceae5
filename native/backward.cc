#include "backward.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#include "args.h"
#include "capture_ops.h"
#include "errors.h"
#include "structured.h"
#include "model.h"
#include "tensor_bridge.h"
#include "token_layout.h"
#include "workers.h"

namespace featscope {

at::Tensor resolveClasses(const at::Tensor& logits, const std::vector<int64_t>& classes) {
  const int64_t n = logits.size(0);
  if (classes.empty()) return logits.argmax(1);
  if (static_cast<int64_t>(classes.size()) != n && classes.size() != 1)
    throw FsError("INVALID_ARGUMENT",
                  "give one target class or one per image (" + std::to_string(n) + "), not " + std::to_string(classes.size()));
  std::vector<int64_t> c(n, classes[0]);
  if (static_cast<int64_t>(classes.size()) == n) c = classes;
  for (auto v : c)
    if (v < 0 || v >= logits.size(1))
      throw FsError("INVALID_ARGUMENT", "class " + std::to_string(v) + " is out of range 0.." + std::to_string(logits.size(1) - 1));
  return torch::tensor(c, at::TensorOptions().dtype(at::kLong)).to(logits.device());
}

at::Tensor checkLogits(const c10::IValue& out) {
  if (!out.isTensor() || out.toTensor().dim() != 2)
    throw FsError("MODEL_OUTPUT_NOT_LOGITS", "gradients need a model whose output is [N, classes] logits; this one returns " +
                                                 (out.isTensor() ? std::to_string(out.toTensor().dim()) + "-D tensor" : out.tagKind()));
  return out.toTensor();
}

namespace {

struct BackwardSpec {
  std::vector<int64_t> classes;
  bool crossEntropy = false;  // loss: cross-entropy (attacks) or the class score (Grad-CAM, flow)
  bool inputGrad = false;
  bool paramGrads = false;
  // Instead of a class score: the mean activation of one layer (one channel, or all when -1),
  // summed over the batch (feature visualisation). The model need not be a classifier then.
  std::string objectiveLayer;
  std::vector<int64_t> objectiveChannels;  // empty: all channels; one: for every image; N: one per image
  // A transformer's token outputs become [N, C, H, W] maps (class token dropped) before norms and
  // the objective, as forward captures are (token_layout.h).
  TokenLayout tokens;
};

struct LayerGrad {
  CaptureSlot slot;
  std::vector<int64_t> shape;
  double actNorm, gradNorm, gradMeanAbs;
  std::string layout;                // "tokens" / "channels-last" when shown as maps, else ""
  std::vector<int64_t> sourceShape;  // the module's own output shape, with a layout
};

struct ParamGrad {
  std::string name;
  std::vector<int64_t> shape;
  double norm, gradNorm;
};

}  // namespace

class BackwardWorker : public FsWorker {
 public:
  BackwardWorker(Napi::Env env, std::shared_ptr<ModelState> st, JsInput input, std::set<std::string> layers, BackwardSpec spec)
      : FsWorker(env, "featscope.backward", "BACKWARD_FAILED"),
        st_(std::move(st)),
        in_(std::move(input)),
        layers_(std::move(layers)),
        spec_(std::move(spec)) {}

 protected:
  void Run() override {
    auto hf = st_->hooked(layers_, /*guardInPlace=*/false);
    torch::AutoGradMode grad(true);
    PrecisionScope precision(*st_);
    at::Tensor x = in_.forGrad(*st_);
    torch::jit::Stack stack{st_->module._ivalue()};
    pushForwardInputs(stack, *hf->fn->graph(), x);
    hf->fn->run(stack);
    auto tuple = stack.back().toTuple();
    const auto& el = tuple->elements();
    // Not called: not a tensor (a structured module's capture: not its 1-tuple), a branch not taken.
    for (size_t i = 0; i < hf->slots.size(); ++i)
      if (!hf->slots[i].looped && !(hf->slots[i].structured ? el[i + 1].isTuple() : el[i + 1].isTensor()))
        throw FsError(
            "LAYER_NOT_CALLED",
            hf->slots[i].name + " was not called in this forward (it sits in an `if` branch not taken); leave it out of `layers`");
    const auto captured = unpackCaptures(*hf, el);
    at::Tensor logits, cls, loss;
    if (spec_.objectiveLayer.empty()) {
      logits = checkLogits(el[0]);
      cls = resolveClasses(logits, spec_.classes);
      loss = spec_.crossEntropy ? at::cross_entropy_loss(logits, cls, {}, at::Reduction::Sum) : logits.gather(1, cls.view({-1, 1})).sum();
    } else {
      loss = objectiveLoss(captured);
      logits = el[0].isTensor() ? el[0].toTensor() : at::empty({0});
      cls = at::empty({0});
    }
    std::vector<at::Tensor> wrt{x};
    for (const auto& c : captured) wrt.push_back(c.tensor);
    std::vector<std::pair<std::string, at::Tensor>> params;
    if (spec_.paramGrads)
      for (const auto& p : st_->module.named_parameters(true))
        if (p.value.requires_grad()) {
          params.emplace_back(p.name, p.value);
          wrt.push_back(p.value);
        }
    auto grads = torch::autograd::grad({loss}, wrt, {}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    bool used = false;
    if (spec_.inputGrad) inputGrad_ = toHostFloat(grads[0], &used);
    for (size_t i = 0; i < captured.size(); ++i) {
      at::Tensor a = wrt[i + 1].detach(), g = grads[i + 1];
      std::string layout;
      const auto source = a.sizes().vec();
      a = tokensToMaps(a, spec_.tokens, &layout);
      if (g.defined() && !layout.empty()) g = tokensToMaps(g, spec_.tokens, &layout);
      layers_out_.push_back({captured[i].slot, a.sizes().vec(), a.norm().item<double>(), g.defined() ? g.norm().item<double>() : 0.0,
                             g.defined() ? g.abs().mean().item<double>() : 0.0, layout, layout.empty() ? std::vector<int64_t>{} : source});
    }
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor g = grads[1 + captured.size() + i];
      params_out_.push_back({params[i].first, params[i].second.sizes().vec(), params[i].second.detach().norm().item<double>(),
                             g.defined() ? g.norm().item<double>() : 0.0});
    }
    logits_ = toHostFloat(logits.detach(), &used);
    if (objective_.defined()) objective_ = toHostFloat(objective_.detach(), &used);
    classes_ = toHostFloat(cls.to(at::kFloat), &used);
    loss_ = loss.item<double>();
    if (used) torch::cuda::synchronize(st_->device.index());
  }

  // The mean of the objective layer's output (one channel or all) per image, summed over the batch.
  // The objective layer may be a part (`backbone:out`); a module with one part is that part.
  at::Tensor objectiveLoss(const std::vector<Captured>& captured) {
    const Captured* hit = nullptr;
    int calls = 0;
    std::string parts;
    for (const auto& c : captured)
      if (c.slot.name == spec_.objectiveLayer || c.slot.layer == spec_.objectiveLayer) {
        hit = &c;
        ++calls;
        if (c.slot.structured) parts += (parts.empty() ? "" : ", ") + c.slot.name;
      }
    if (calls > 1 && !parts.empty())
      throw FsError("INVALID_ARGUMENT", "objective layer " + spec_.objectiveLayer + " returns " + std::to_string(calls) + " tensors (" +
                                            parts + "); name one part");
    const auto colon = spec_.objectiveLayer.find(':');
    if (calls == 0 && colon != std::string::npos) {
      const std::string module = spec_.objectiveLayer.substr(0, colon);
      for (const auto& c : captured)
        if (c.slot.layer == module && c.slot.structured) parts += (parts.empty() ? "" : ", ") + c.slot.name;
      if (!parts.empty())
        throw FsError("CAPTURE_NOT_FOUND", spec_.objectiveLayer + " is not a part of " + module + "'s output; its parts: " + parts);
    }
    if (calls != 1)
      throw FsError(
          calls == 0 ? "LAYER_NOT_CALLED" : "INVALID_ARGUMENT",
          "objective layer " + spec_.objectiveLayer +
              (calls == 0 ? " was not called in this forward"
                          : " is called " + std::to_string(calls) + " times; pick a layer called once (or one of its inner modules)"));
    std::string layout;
    at::Tensor a = tokensToMaps(hit->tensor, spec_.tokens, &layout);  // channels: a token layer's D
    if (a.dim() < 2)
      throw FsError("INVALID_ARGUMENT", "objective layer " + spec_.objectiveLayer + " has no channel dimension (shape of rank " +
                                            std::to_string(a.dim()) + ")");
    const auto& chs = spec_.objectiveChannels;
    const int64_t n = a.size(0);
    if (chs.empty()) {
      objective_ = a.reshape({n, -1}).mean(1);
      return objective_.sum();
    }
    if (chs.size() != 1 && static_cast<int64_t>(chs.size()) != n)
      throw FsError("INVALID_ARGUMENT",
                    "give one objective channel or one per image (" + std::to_string(n) + "), not " + std::to_string(chs.size()));
    for (auto ch : chs)
      if (ch < 0 || ch >= a.size(1))
        throw FsError("INVALID_ARGUMENT", "channel " + std::to_string(ch) + " does not exist: " + spec_.objectiveLayer +
                                              " has channels 0.." + std::to_string(a.size(1) - 1));
    // Image i's own channel: gather along the channel dimension.
    at::Tensor idx =
        torch::tensor(chs.size() == 1 ? std::vector<int64_t>(n, chs[0]) : chs, at::TensorOptions().dtype(at::kLong)).to(a.device());
    std::vector<int64_t> view(a.dim(), 1);
    view[0] = n;
    std::vector<int64_t> full = a.sizes().vec();
    full[1] = 1;
    at::Tensor picked = a.gather(1, idx.view(view).expand(full));
    objective_ = picked.reshape({n, -1}).mean(1);
    return objective_.sum();
  }

  Napi::Value Result() override {
    Napi::Env env = Env();
    TensorExporter ex(env);
    Napi::Object o = Napi::Object::New(env);
    Napi::Object out = Napi::Object::New(env);
    out.Set("shape", shapeToJs(env, logits_.sizes()));
    out.Set("data", ex.toFloat32Array(logits_));
    o.Set("output", out);
    o.Set("classes", ex.toFloat32Array(classes_));
    o.Set("loss", loss_);
    if (inputGrad_.defined()) o.Set("inputGrad", ex.toFloat32Array(inputGrad_));
    if (objective_.defined()) o.Set("objective", ex.toFloat32Array(objective_));
    Napi::Array ls = Napi::Array::New(env, layers_out_.size());
    for (size_t i = 0; i < layers_out_.size(); ++i) {
      const auto& l = layers_out_[i];
      Napi::Object e = Napi::Object::New(env);
      e.Set("name", l.slot.name);
      e.Set("layer", l.slot.layer);
      e.Set("call", l.slot.call);
      e.Set("shape", shapeToJs(env, l.shape));
      e.Set("activationNorm", l.actNorm);
      e.Set("gradNorm", l.gradNorm);
      e.Set("gradMeanAbs", l.gradMeanAbs);
      if (!l.layout.empty()) {
        e.Set("layout", l.layout);
        e.Set("sourceShape", shapeToJs(env, l.sourceShape));
      }
      ls.Set(i, e);
    }
    o.Set("layers", ls);
    Napi::Array ps = Napi::Array::New(env, params_out_.size());
    for (size_t i = 0; i < params_out_.size(); ++i) {
      Napi::Object e = Napi::Object::New(env);
      e.Set("name", params_out_[i].name);
      e.Set("shape", shapeToJs(env, params_out_[i].shape));
      e.Set("norm", params_out_[i].norm);
      e.Set("gradNorm", params_out_[i].gradNorm);
      ps.Set(i, e);
    }
    o.Set("parameters", ps);
    return o;
  }

 private:
  std::shared_ptr<ModelState> st_;
  JsInput in_;
  std::set<std::string> layers_;
  BackwardSpec spec_;
  at::Tensor logits_, classes_, inputGrad_, objective_;  // objective_: per image, with an objective
  double loss_ = 0;
  std::vector<LayerGrad> layers_out_;
  std::vector<ParamGrad> params_out_;
};

Napi::Value ModelWrap::Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = live(env);
  JsInput input = JsInput::read(info, st->device);
  std::set<std::string> names = readLayerNames(env, *st, info[2]);
  BackwardSpec spec;
  if (info[3].IsObject()) {
    Napi::Object o = info[3].As<Napi::Object>();
    spec.classes = optIntList(env, o.Get("classes"), "classes");
    spec.crossEntropy = optString(o.Get("loss")) == "cross-entropy";
    spec.inputGrad = o.Get("inputGrad").ToBoolean();
    spec.paramGrads = o.Get("parameterGrads").ToBoolean();
    if (auto layer = optString(o.Get("objectiveLayer"))) {
      spec.objectiveLayer = *layer;
      if (!names.count(spec.objectiveLayer.substr(0, spec.objectiveLayer.find(':'))))
        throw makeJsError(env, "INVALID_ARGUMENT", "the objective layer must be among the layers");
      spec.objectiveChannels = optIntList(env, o.Get("objectiveChannels"), "objectiveChannels");
    }
    spec.tokens = readTokenLayout(o.Get("tokens"));
  }
  auto* w = new BackwardWorker(env, st, std::move(input), std::move(names), std::move(spec));
  auto p = w->Promise();
  w->Queue();
  return p;
}

// Copies of the parameters and buffers (a copy: JS must not be able to change the model's weights).
Napi::Value ModelWrap::Parameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = live(env);
  TensorExporter ex(env);
  std::vector<std::pair<std::string, at::Tensor>> all;
  for (const auto& p : st->module.named_parameters(true)) all.emplace_back(p.name, p.value);
  for (const auto& b : st->module.named_buffers(true))
    if (b.value.is_floating_point()) all.emplace_back(b.name, b.value);
  Napi::Array a = Napi::Array::New(env, all.size());
  try {
    for (size_t i = 0; i < all.size(); ++i) {
      at::Tensor t = all[i].second.detach().to(at::kCPU, at::kFloat, false, /*copy=*/true).contiguous();
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", all[i].first);
      o.Set("kind", i < static_cast<size_t>(st->module.named_parameters(true).size()) ? "parameter" : "buffer");
      o.Set("shape", shapeToJs(env, t.sizes()));
      o.Set("data", ex.toFloat32Array(t));
      a.Set(i, o);
    }
  } catch (const c10::Error& e) {
    throw makeJsError(env, "PARAMETERS_FAILED", e.what_without_backtrace());
  }
  return a;
}

}  // namespace featscope
