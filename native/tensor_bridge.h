// Hands libtorch tensors to JavaScript as Float32Arrays without copying: an external ArrayBuffer
// over the tensor's storage owns a reference to that storage until V8 collects it.
#pragma once
#include <napi.h>
#include <torch/script.h>

#include <unordered_set>

namespace featscope {

struct ExportedStorage;

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
  // A JS function that frees, at once, every storage this exporter handed over, detaching their
  // ArrayBuffers first (the arrays read as length 0 afterwards; never a dangling pointer). Storages
  // already collected are skipped. Call once, after the last toFloat32Array.
  Napi::Function releaseFunction();

 private:
  struct Exported {
    Napi::Reference<Napi::ArrayBuffer> buffer;  // weak
    std::shared_ptr<ExportedStorage> storage;
  };
  std::vector<Exported> exported_;
  bool ownedElsewhere(const at::Tensor& t) const;
  Napi::Env env_;
  std::vector<std::pair<const void*, Napi::ArrayBuffer>> seen_;
  const std::unordered_set<const void*>* modelStorages_;
  const char* inputBegin_;
  size_t inputBytes_;
};

// Storages handed to JS and not yet freed (collected or released): bytes and count.
struct ExportStats {
  uint64_t bytes;
  uint64_t buffers;
};
ExportStats exportStats();

// Counters of exported storages (zero-copy vs copied), for tests of the no-copy path.
Napi::Value ExportCounters(const Napi::CallbackInfo& info);

// Prepares a tensor for export on a worker thread: float32, contiguous, in host memory. CUDA
// tensors are copied once into pinned memory (synchronise the device before reading the result);
// `pooled`: the pinned block comes from featscope's block pool (the forward's captures, handed to
// JS; the run must synchronise before the tensor is freed, on failure too: see DeviceSyncGuard).
at::Tensor toHostFloat(const at::Tensor& t, bool* usedDevice, bool pooled = false);

// Synchronises the device when the scope is left by an exception after a device copy was queued:
// pooled blocks must not return to the pool while a copy into them is in flight.
struct DeviceSyncGuard {
  const bool* used;
  c10::DeviceIndex device;
  ~DeviceSyncGuard();
};

// Shape as a JS array of numbers.
Napi::Array shapeToJs(Napi::Env env, at::IntArrayRef sizes);

// Registers env teardown handling (finalizers must not touch V8 accounting after it).
void InitTensorBridge(Napi::Env env);

}  // namespace featscope
