// The JS Model object: a loaded TorchScript module, its hooked forwards (cached per set of
// layers), and the workers that run forwards off the event loop.
#pragma once
#include <napi.h>
#include <torch/script.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_set>

#include "cuda_graphs.h"
#include "graph_hooks.h"

namespace featscope {

struct ModelState {
  torch::jit::Module module;
  c10::Device device{c10::kCPU};
  std::string path;
  std::string metadata;  // featscope.json extra file ("" when absent)
  std::vector<LayerInfo> layers;
  std::set<std::string> layerNames;
  std::unordered_set<const void*> storages;  // data of its parameters and buffers (never handed to JS)
  bool exactPrecision = false;

  std::mutex cacheMutex;
  std::map<std::string, std::shared_ptr<HookedForward>> cache;  // key: sorted names + mode
  std::deque<std::string> cacheOrder;                           // oldest first, for eviction
  static constexpr size_t kCacheSize = 32;
  // CUDA graphs of hooked forwards (native/cuda_graphs.h). Declared after `module`, so that the
  // graphs, which read its parameters in place, go first.
  CudaGraphs cudaGraphs;

  // optimize: also freeze and optimise the graph (forwards only; see optimizeHookedForward).
  std::shared_ptr<HookedForward> hooked(const std::set<std::string>& names, bool guardInPlace, bool optimize = false,
                                        bool capturesOnly = false);
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<ModelState> state);
  explicit ModelWrap(const Napi::CallbackInfo& info);
  // The loaded state (throws MODEL_DISPOSED after dispose()), for withParameters (native/params.cc).
  std::shared_ptr<ModelState> liveState(Napi::Env env) { return live(env); }

 private:
  std::shared_ptr<ModelState> state_;
  std::shared_ptr<ModelState> live(Napi::Env env);

  Napi::Value Layers(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value GradCam(const Napi::CallbackInfo& info);
  Napi::Value Backward(const Napi::CallbackInfo& info);
  Napi::Value Parameters(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
};

// Holds libtorch's process-wide TF32 switches at the model's precision policy for one run (a
// forward, Grad-CAM or backward) on CUDA; does nothing on the CPU. Runs with the same policy
// share the switches; a run with the other policy waits until those in flight finish, and new
// runs queue behind it, so neither policy starves.
class PrecisionScope {
 public:
  explicit PrecisionScope(const ModelState& st);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  bool cuda_;
  bool exact_;
};

// A Float32Array (or Uint8Array of pixels) input, copied at the call (on the main thread, before
// the worker starts) into memory of featscope's own: JavaScript can detach, transfer, shrink or
// free the caller's buffer while the forward runs, so the worker never reads it. The copy goes
// straight into memory reused across calls (native/staging.h): a pooled host block on the CPU, a
// pinned block on CUDA. read() validates (data, shape) from info[0], info[1] and throws JS errors;
// a Uint8Array needs info[normArg] = { mean, std } (one value per channel) and is normalised on
// the model's device.
struct JsInput {
  at::Tensor host;  // float32 or uint8, contiguous, owned by featscope
  std::vector<int64_t> shape;
  std::vector<float> mean, stdev;  // uint8 input only
  static JsInput read(const Napi::CallbackInfo& info, c10::Device device = c10::Device(c10::kCPU), int normArg = -1);
  // For a forward: the copy (on the CPU) or a copy of it on the model's device, as float32.
  at::Tensor forForward(const ModelState& st) const;
  // For gradients: the input on the model's device, requiring grad (parameters may have been
  // saved without requires_grad).
  at::Tensor forGrad(const ModelState& st) const;
};

// Layer names from a JS array, each checked against the model (throws JS errors).
std::set<std::string> readLayerNames(Napi::Env env, const ModelState& st, Napi::Value v);

// 'auto', 'cpu', 'cuda' or 'cuda:N' as a device (throws FsError: INVALID_ARGUMENT, CUDA_UNAVAILABLE,
// CUDA_DEVICE_NOT_FOUND); 'auto' is cuda:0 where libtorch sees a GPU, else the CPU.
c10::Device parseDevice(const std::string& spec);
// withParameters(model, names, arrays) -> Promise<Model>: a copy with those parameters replaced
// (native/params.cc).
Napi::Value WithParameters(const Napi::CallbackInfo& info);

// load(path, device, precision) -> Promise<Model>
Napi::Value LoadModel(const Napi::CallbackInfo& info);

// setNumThreads(n) / getNumThreads(): libtorch's intra-op threads (at::set_num_threads), for the
// forwards that run on worker threads (each worker run takes the current count). n is validated
// in JS (lib/threads.ts).
Napi::Value SetNumThreads(const Napi::CallbackInfo& info);
Napi::Value GetNumThreads(const Napi::CallbackInfo& info);

}  // namespace featscope
