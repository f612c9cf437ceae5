// Hands libtorch tensors to JavaScript as Float32Arrays without copying: an external ArrayBuffer
// over the tensor's storage owns a reference to that storage until V8 collects it.
#pragma once
#include <napi.h>
#include <torch/script.h>

namespace featscope {

// Makes `t` (float32, contiguous, on the CPU) a Float32Array. Tensors of one call that share a
// storage share one ArrayBuffer (V8 refuses two external buffers over the same memory).
class TensorExporter {
 public:
  explicit TensorExporter(Napi::Env env) : env_(env) {}
  Napi::Float32Array toFloat32Array(const at::Tensor& t);

 private:
  Napi::Env env_;
  std::vector<std::pair<const void*, Napi::ArrayBuffer>> seen_;
};

// Prepares a tensor for export on a worker thread: float32, contiguous, in host memory. CUDA
// tensors are copied once into pinned memory (call `syncDevice` before reading the result).
at::Tensor toHostFloat(const at::Tensor& t, bool* usedDevice);

// Shape as a JS array of numbers.
Napi::Array shapeToJs(Napi::Env env, at::IntArrayRef sizes);

// Registers env teardown handling (finalizers must not touch V8 accounting after it).
void InitTensorBridge(Napi::Env env);

}  // namespace featscope
