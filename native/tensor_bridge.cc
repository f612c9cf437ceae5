#include "tensor_bridge.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <unordered_set>

#include "env_data.h"

namespace featscope {

namespace {
std::mutex liveMutex;
std::unordered_set<const void*> liveStorages;  // storages currently externalised to V8
std::atomic<uint64_t> zeroCopyCount{0}, copiedCount{0};

struct Holder {
  c10::Storage storage;
  size_t bytes;
  std::shared_ptr<std::atomic<bool>> envClosing;  // the owning environment's teardown flag
};

void finalize(Napi::Env env, void* data, Holder* h) {
  {
    std::lock_guard<std::mutex> lock(liveMutex);
    liveStorages.erase(data);
  }
  if (!h->envClosing->load()) Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(h->bytes));
  delete h;
}
}  // namespace

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

at::Tensor toHostFloat(const at::Tensor& t, bool* usedDevice) {
  if (t.is_cuda()) {
    *usedDevice = true;
    // One device-to-host copy, into pinned memory (libtorch's caching host allocator reuses the
    // blocks), on the current stream; the caller synchronises once for all captures.
    at::Tensor host = at::empty(t.sizes(), t.options().device(at::kCPU).dtype(at::kFloat).pinned_memory(true));
    host.copy_(t, /*non_blocking=*/true);
    return host;
  }
  return t.to(at::kFloat).contiguous();
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
    auto* h = new Holder{t.storage(), t.storage().nbytes(), envData(env_)->closing};
    void* data = const_cast<void*>(base);
    if (h->bytes == 0) {
      delete h;
      ab = Napi::ArrayBuffer::New(env_, 0);
    } else {
      ab = Napi::ArrayBuffer::New(env_, data, h->bytes, finalize, h);
      {
        std::lock_guard<std::mutex> lock(liveMutex);
        liveStorages.insert(base);
      }
      Napi::MemoryManagement::AdjustExternalMemory(env_, static_cast<int64_t>(h->bytes));
    }
    seen_.emplace_back(base, ab);
  }
  return Napi::Float32Array::New(env_, t.numel(), ab, t.storage_offset() * sizeof(float));
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
