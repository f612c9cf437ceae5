// State that belongs to one Node.js environment (the main thread, or one worker_thread). Each
// environment that loads the addon gets its own copy, kept as the addon's instance data, so that
// no environment reads or frees another's JS handles (a process-wide constructor or error class
// crashed the process as soon as a worker thread loaded featscope beside the main thread).
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

namespace featscope {

struct EnvData {
  Napi::FunctionReference modelCtor;   // NativeModel, this environment's class
  Napi::FunctionReference errorClass;  // FeatscopeError, handed over by lib/native.ts
  // Set when the environment starts tearing down; feature-array finalizers that run after it
  // must not touch V8's accounting. Shared with each finalizer, which may outlive EnvData.
  std::shared_ptr<std::atomic<bool>> closing = std::make_shared<std::atomic<bool>>(false);
};

// This environment's data (created by the addon's Init; never null after it).
inline EnvData* envData(Napi::Env env) { return env.GetInstanceData<EnvData>(); }

}  // namespace featscope
