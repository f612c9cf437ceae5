// Grad-CAM (Selvaraju et al. 2017) through the hooked graph: the worker and the argument handling
// of model.gradcam (ModelWrap::GradCam, declared in model.h).
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#include "backward.h"
#include "capture_ops.h"
#include "errors.h"
#include "model.h"
#include "structured.h"
#include "tensor_bridge.h"
#include "token_layout.h"
#include "workers.h"

namespace featscope {

// Grad-CAM: gradients of the class score with respect to one layer's output, through the hooked
// graph with autograd on. cam = ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of dScore/dA_k.
class GradCamWorker : public FsWorker {
 public:
  GradCamWorker(Napi::Env env, std::shared_ptr<ModelState> st, JsInput input, std::string layer, std::vector<int64_t> classes,
                TokenLayout tokens)
      : FsWorker(env, "featscope.gradcam", "GRADCAM_FAILED"),
        st_(std::move(st)),
        in_(std::move(input)),
        layer_(std::move(layer)),
        classes_(std::move(classes)),
        tokens_(std::move(tokens)) {}

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
    at::Tensor logits = checkLogits(tuple->elements()[0]);
    auto captured = unpackCaptures(*hf, tuple->elements());
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
    const int64_t n = logits.size(0);
    at::Tensor cls = resolveClasses(logits, classes_);
    at::Tensor score = logits.gather(1, cls.view({n, 1})).sum();
    at::Tensor g = torch::autograd::grad({score}, {A})[0];
    if (tokens) {  // a transformer's tokens as maps: the class token dropped (token_layout.h)
      A = tokensToMaps(A, tokens_, &kind);
      g = tokensToMaps(g, tokens_, &kind);
    }
    at::Tensor alpha = g.mean({2, 3}, /*keepdim=*/true);
    at::Tensor cam = at::relu((alpha * A).sum(1)).detach();
    bool used = false;
    cam_ = toHostFloat(cam, &used);
    classes_out_ = toHostFloat(cls.to(at::kFloat), &used);
    probs_ = toHostFloat(at::softmax(logits.detach(), 1).gather(1, cls.view({n, 1})).view({n}), &used);
    if (used) torch::cuda::synchronize(st_->device.index());
  }
  Napi::Value Result() override {
    Napi::Env env = Env();
    TensorExporter ex(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("shape", shapeToJs(env, cam_.sizes()));
    o.Set("data", ex.toFloat32Array(cam_));
    o.Set("classes", ex.toFloat32Array(classes_out_));
    o.Set("probabilities", ex.toFloat32Array(probs_));
    return o;
  }

 private:
  std::shared_ptr<ModelState> st_;
  JsInput in_;
  std::string layer_;
  std::vector<int64_t> classes_;
  TokenLayout tokens_;
  at::Tensor cam_, classes_out_, probs_;
};

Napi::Value ModelWrap::GradCam(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = live(env);
  JsInput input = JsInput::read(info, st->device);
  std::string layer = info[2].As<Napi::String>();
  if (!st->layerNames.count(layer)) throw makeJsError(env, "UNKNOWN_LAYER", "unknown layer " + layer);
  std::vector<int64_t> classes;
  if (info[3].IsArray()) {
    Napi::Array a = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) classes.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  }
  auto* w = new GradCamWorker(env, st, std::move(input), std::move(layer), std::move(classes), readTokenLayout(info[4]));
  auto p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace featscope
