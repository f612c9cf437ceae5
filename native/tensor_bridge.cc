#include "tensor_bridge.h"

#include <torch/cuda.h>

#include <algorithm>
#include <exception>
#include <atomic>
#include <mutex>
#include <unordered_set>

#include "env_data.h"
#include "staging.h"

namespace featscope {

namespace {
std::mutex liveMutex;
std::unordered_set<const void*> liveStorages;  // storages currently externalised to V8
std::atomic<uint64_t> zeroCopyCount{0}, copiedCount{0};
std::atomic<uint64_t> exportedBytes{0}, exportedBuffers{0};  // storages JS holds now

}  // namespace

// One storage handed to JS. Freed once: by the ArrayBuffer's finalizer, or earlier by the result's
// release() (which detaches the buffer first, so JS can no longer reach the memory).
struct ExportedStorage {
  c10::Storage storage;
  const void* base;
  size_t bytes;
  std::shared_ptr<std::atomic<bool>> envClosing;  // the owning environment's teardown flag
  bool freed = false;

  void free(Napi::Env env) {
    if (freed) return;
    freed = true;
    {
      std::lock_guard<std::mutex> lock(liveMutex);
      liveStorages.erase(base);
    }
    exportedBytes -= bytes;
    --exportedBuffers;
    if (!envClosing->load()) Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(bytes));
    storage = c10::Storage();
  }
};

namespace {
void finalize(Napi::Env env, void*, std::shared_ptr<ExportedStorage>* h) {
  (*h)->free(env);
  delete h;
}
}  // namespace

ExportStats exportStats() { return {exportedBytes.load(), exportedBuffers.load()}; }

void InitTensorBridge(Napi::Env env) {
  // The hook owns its own reference to the flag (EnvData may be gone when it runs).
  auto* flag = new std::shared_ptr<std::atomic<bool>>(envData(env)->closing);
  napi_add_env_cleanup_hook(
      env,
      [](void* arg) {
        auto* f = static_cast<std::shared_ptr<std::atomic<bool>>*>(arg);
        (*f)->store(true);
        delete f;
      },
      flag);
}

at::Tensor toHostFloat(const at::Tensor& t, bool* usedDevice, bool pooled) {
  if (t.is_cuda()) {
    *usedDevice = true;
    // One device-to-host copy, into pinned memory, on the current stream; the caller synchronises
    // once for all captures. Pooled: a block from featscope's pool (returned when JS collects or
    // releases the array; pageable past FEATSCOPE_PINNED_POOL_MB), else libtorch's caching host
    // allocator.
    at::Tensor host = pooled ? pooledHostTensor(t.sizes(), at::kFloat, /*pinned=*/true)
                             : at::empty(t.sizes(), t.options().device(at::kCPU).dtype(at::kFloat).pinned_memory(true));
    host.copy_(t, /*non_blocking=*/true);
    return host;
  }
  return t.to(at::kFloat).contiguous();
}

DeviceSyncGuard::~DeviceSyncGuard() {
  if (*used && std::uncaught_exceptions() > 0) {
    try {
      torch::cuda::synchronize(device);
    } catch (...) {
      // The run fails with its own error; a device that cannot even synchronise has bigger trouble.
    }
  }
}

bool TensorExporter::ownedElsewhere(const at::Tensor& t) const {
  const char* data = static_cast<const char*>(t.storage().data());
  if (modelStorages_ && modelStorages_->count(data)) return true;
  return inputBegin_ && data < inputBegin_ + inputBytes_ && data + t.storage().nbytes() > inputBegin_;
}

Napi::Float32Array TensorExporter::toFloat32Array(const at::Tensor& in) {
  at::Tensor t = in;
  const void* base = t.storage().data();
  Napi::ArrayBuffer ab;
  for (auto& [ptr, buf] : seen_)
    if (ptr == base) ab = buf;
  if (ab.IsEmpty()) {
    bool alreadyLive;
    {
      std::lock_guard<std::mutex> lock(liveMutex);
      alreadyLive = liveStorages.count(base) > 0;
    }
    if (alreadyLive || ownedElsewhere(t) || t.storage().nbytes() == 0) {
      // Memory JS already holds from an earlier call, memory the model or the caller owns, or an
      // empty tensor: hand over a fresh copy instead.
      t = t.clone();
      base = t.storage().data();
      ++copiedCount;
    } else {
      ++zeroCopyCount;
    }
    const size_t bytes = t.storage().nbytes();
    void* data = const_cast<void*>(base);
    if (bytes == 0) {
      ab = Napi::ArrayBuffer::New(env_, 0);
    } else {
      auto h = std::make_shared<ExportedStorage>();
      h->storage = t.storage();
      h->base = base;
      h->bytes = bytes;
      h->envClosing = envData(env_)->closing;
      ab = Napi::ArrayBuffer::New(env_, data, bytes, finalize, new std::shared_ptr<ExportedStorage>(h));
      {
        std::lock_guard<std::mutex> lock(liveMutex);
        liveStorages.insert(base);
      }
      exportedBytes += bytes;
      ++exportedBuffers;
      Napi::MemoryManagement::AdjustExternalMemory(env_, static_cast<int64_t>(bytes));
      exported_.push_back({Napi::Weak(ab), h});
    }
    seen_.emplace_back(base, ab);
  }
  return Napi::Float32Array::New(env_, t.numel(), ab, t.storage_offset() * sizeof(float));
}

Napi::Function TensorExporter::releaseFunction() {
  // The function keeps weak references to the buffers: it frees nothing JS still reaches through
  // anything but the detached arrays, and does not keep collected buffers alive.
  auto items = std::make_shared<std::vector<Exported>>(std::move(exported_));
  exported_.clear();
  return Napi::Function::New(
      env_,
      [items](const Napi::CallbackInfo& info) -> Napi::Value {
        Napi::Env env = info.Env();
        for (auto& it : *items) {
          if (it.storage->freed) continue;  // collected already
          Napi::ArrayBuffer ab = it.buffer.Value();
          if (ab.IsEmpty()) continue;  // collected; its finalizer frees the storage
          // Detach first: only a detached buffer may lose its memory. A buffer that cannot be
          // detached keeps its memory until V8 collects it.
          if (napi_detach_arraybuffer(env, ab) != napi_ok) continue;
          it.storage->free(env);
        }
        items->clear();
        return env.Undefined();
      },
      "release");
}

Napi::Value ExportCounters(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("zeroCopy", static_cast<double>(zeroCopyCount.load()));
  o.Set("copied", static_cast<double>(copiedCount.load()));
  return o;
}

Napi::Array shapeToJs(Napi::Env env, at::IntArrayRef sizes) {
  Napi::Array a = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) a.Set(i, Napi::Number::New(env, static_cast<double>(sizes[i])));
  return a;
}

}  // namespace featscope
