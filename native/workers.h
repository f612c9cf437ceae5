// Base for featscope's async workers: runs Execute on the libuv pool, turns any exception into a
// FeatscopeError with a code, and survives its environment's teardown (worker threads).
#pragma once
#include <napi.h>

#include <string>

#include "errors.h"

namespace featscope {

class FsWorker : public Napi::AsyncWorker {
 public:
  explicit FsWorker(Napi::Env env, const char* name, const char* fallbackCode)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), fallbackCode_(fallbackCode) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() final;
  virtual void Run() = 0;            // worker thread: no N-API calls
  virtual Napi::Value Result() = 0;  // main thread
  void OnOK() final;
  void OnError(const Napi::Error& e) final;
  void OnWorkComplete(Napi::Env env, napi_status status) final;
  std::string context_;

 private:
  Napi::Promise::Deferred deferred_;
  const char* fallbackCode_;
  std::string code_;
  std::string message_;
};

// Native runs in progress, all environments together.
int ActiveNativeRuns();

// armExitWatchdog(code: number, ms: number) -> boolean (armed): bounds how long process exit
// waits for runs still inside libtorch.
Napi::Value ArmExitWatchdog(const Napi::CallbackInfo& info);

}  // namespace featscope
