// Hands libtorch tensors to JavaScript as Float32Arrays without copying: an external ArrayBuffer
// over the tensor's storage owns a reference to that storage until V8 collects it.
#pragma once
#include <napi.h>
#include <torch/script.h>

#include <unordered_set>

namespace featscope {

// Makes `t` (float32, contiguous, on the CPU) a Float32Array. Tensors of one call that share a
// storage share one ArrayBuffer (V8 refuses two external buffers over the same memory).
// Memory the model or the caller owns is copied, never handed over: a module that returns a
// parameter or its input must not let JavaScript write into the model's weights or alias the
// caller's input array.
class TensorExporter {
 public:
  // `modelStorages`: data pointers of the model's parameters and buffers; `input`: the caller's
  // input memory when the forward read it in place (CPU).
  TensorExporter(Napi::Env env, const std::unordered_set<const void*>* modelStorages = nullptr, const void* inputBegin = nullptr,
                 size_t inputBytes = 0)
      : env_(env), modelStorages_(modelStorages), inputBegin_(static_cast<const char*>(inputBegin)), inputBytes_(inputBytes) {}
  Napi::Float32Array toFloat32Array(const at::Tensor& t);

 private:
  bool ownedElsewhere(const at::Tensor& t) const;
  Napi::Env env_;
  std::vector<std::pair<const void*, Napi::ArrayBuffer>> seen_;
  const std::unordered_set<const void*>* modelStorages_;
  const char* inputBegin_;
  size_t inputBytes_;
};

// Counters of exported storages (zero-copy vs copied), for tests of the no-copy path.
Napi::Value ExportCounters(const Napi::CallbackInfo& info);

// Prepares a tensor for export on a worker thread: float32, contiguous, in host memory. CUDA
// tensors are copied once into pinned memory (call `syncDevice` before reading the result).
at::Tensor toHostFloat(const at::Tensor& t, bool* usedDevice);

// Shape as a JS array of numbers.
Napi::Array shapeToJs(Napi::Env env, at::IntArrayRef sizes);

// Registers env teardown handling (finalizers must not touch V8 accounting after it).
void InitTensorBridge(Napi::Env env);

}  // namespace featscope
