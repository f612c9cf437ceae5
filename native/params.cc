// withParameters(model, names, arrays): a copy of a loaded TorchScript model with some parameters
// or buffers replaced. The module is deep-copied (its own storage for every tensor), the given
// tensors are copied into the copy's slots, and the copy becomes a new NativeModel with its own
// graph cache; the loaded model is not touched. Used by the randomisation sanity check (MPRT).
#include <napi.h>
#include <torch/script.h>

#include <cstring>
#include <map>

#include "env_data.h"
#include "errors.h"
#include "model.h"
#include "workers.h"

namespace featscope {

namespace {

class WithParametersWorker : public FsWorker {
 public:
  WithParametersWorker(Napi::Env env, std::shared_ptr<ModelState> st, std::map<std::string, at::Tensor> values)
      : FsWorker(env, "featscope.withParameters", "PARAMETERS_FAILED"), st_(std::move(st)), values_(std::move(values)) {}

 protected:
  void Run() override {
    auto copy = std::make_shared<ModelState>();
    copy->module = st_->module.deepcopy();
    copy->module.eval();
    copy->device = st_->device;
    copy->path = st_->path;
    copy->metadata = st_->metadata;
    copy->layers = st_->layers;
    copy->layerNames = st_->layerNames;
    copy->exactPrecision = st_->exactPrecision;
    std::map<std::string, at::Tensor> slots;
    for (const auto& p : copy->module.named_parameters(true)) slots.emplace(p.name, p.value);
    for (const auto& b : copy->module.named_buffers(true))
      if (b.value.is_floating_point()) slots.emplace(b.name, b.value);
    // Check every name and size before writing any.
    for (const auto& [name, t] : values_) {
      auto it = slots.find(name);
      if (it == slots.end())
        throw FsError("INVALID_ARGUMENT", "model " + st_->path + " has no floating-point parameter or buffer named " + name +
                                              "; model.parameters() lists their names");
      if (it->second.numel() != t.numel())
        throw FsError("SHAPE_MISMATCH", "parameter " + name + " of model " + st_->path + " holds " + std::to_string(it->second.numel()) +
                                            " values, but " + std::to_string(t.numel()) +
                                            " were given; give one value per element, in row-major order");
    }
    {
      torch::NoGradGuard noGrad;
      for (const auto& [name, t] : values_) {
        at::Tensor slot = slots.at(name);
        slot.copy_(t.view(slot.sizes()));
      }
    }
    for (const auto& p : copy->module.named_parameters(true)) copy->storages.insert(p.value.storage().data());
    for (const auto& b : copy->module.named_buffers(true)) copy->storages.insert(b.value.storage().data());
    copy_ = copy;
  }
  Napi::Value Result() override { return ModelWrap::NewInstance(Env(), copy_); }

 private:
  std::shared_ptr<ModelState> st_;
  std::map<std::string, at::Tensor> values_;
  std::shared_ptr<ModelState> copy_;
};

}  // namespace

Napi::Value WithParameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(envData(env)->modelCtor.Value()))
    throw makeJsError(env, "INVALID_ARGUMENT", "withParameters(model, names, arrays): model must be a loaded TorchScript model");
  if (!info[1].IsArray() || !info[2].IsArray())
    throw makeJsError(env, "INVALID_ARGUMENT", "withParameters(model, names: string[], arrays: Float32Array[])");
  auto st = ModelWrap::Unwrap(info[0].As<Napi::Object>())->liveState(env);
  Napi::Array names = info[1].As<Napi::Array>();
  Napi::Array arrays = info[2].As<Napi::Array>();
  if (names.Length() != arrays.Length())
    throw makeJsError(env, "INVALID_ARGUMENT", "withParameters: one array per parameter name is needed");
  std::map<std::string, at::Tensor> values;
  for (uint32_t i = 0; i < names.Length(); ++i) {
    if (!names.Get(i).IsString()) throw makeJsError(env, "INVALID_ARGUMENT", "withParameters: parameter names must be strings");
    std::string name = names.Get(i).As<Napi::String>();
    Napi::Value v = arrays.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw makeJsError(env, "INVALID_ARGUMENT", "withParameters: the values of " + name + " must be a Float32Array");
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    // Copied now, on the main thread: JavaScript may change or free the array while the worker runs.
    at::Tensor t = at::empty({static_cast<int64_t>(a.ElementLength())}, at::TensorOptions().dtype(at::kFloat));
    if (a.ElementLength() > 0) std::memcpy(t.data_ptr<float>(), a.Data(), a.ElementLength() * sizeof(float));
    values[name] = t;
  }
  auto* w = new WithParametersWorker(env, st, std::move(values));
  auto p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace featscope
