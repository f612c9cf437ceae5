#include "workers.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "args.h"

namespace featscope {

namespace {
// Runs inside libtorch right now, in every environment of the process. Trivially destructible,
// so that the exit watchdog may read it while exit() destroys the process's statics.
std::atomic<int> activeCount{0};
}  // namespace

void FsWorker::Execute() {
  activeCount.fetch_add(1);
  try {
    // at::set_num_threads runs on the JS thread, while OpenMP keeps a thread count per thread and
    // ATen applies its own count to a thread once (lazily): re-apply the count set last
    // (setNumThreads, FEATSCOPE_THREADS) on this pool thread before each run. Cheap.
    at::init_num_threads();
    Run();
  } catch (...) {
    ErrorInfo e = describeException(std::current_exception(), fallbackCode_, context_);
    code_ = e.code;
    message_ = e.message;
  }
  activeCount.fetch_sub(1);
}

void FsWorker::OnWorkComplete(Napi::Env env, napi_status status) {
  // Node runs this callback during an environment's teardown too (worker.terminate(), a worker's
  // process.exit): JS cannot run then, so opening a handle scope or settling the promise throws.
  // Nothing may escape into Node (that aborts the whole process): the result is dropped, since no
  // one is left to receive it.
  if (status != napi_cancelled) {
    try {
      Napi::HandleScope scope(env);
      OnOK();
    } catch (...) {
    }
  }
  Destroy();
}

void FsWorker::OnOK() {
  Napi::Env env = Env();
  if (!code_.empty()) {
    deferred_.Reject(makeJsError(env, code_, message_).Value());
    return;
  }
  try {
    deferred_.Resolve(Result());
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (...) {
    ErrorInfo e = describeException(std::current_exception(), fallbackCode_, context_);
    deferred_.Reject(makeJsError(env, e.code, e.message).Value());
  }
}

void FsWorker::OnError(const Napi::Error& e) { deferred_.Reject(e.Value()); }

int ActiveNativeRuns() { return activeCount.load(); }

// armExitWatchdog(code, ms): called by lib/native.ts from the main thread's 'exit' event. Node's
// exit joins libuv's thread pool, so a forward that never ends (a slow model, a huge batch) would
// hold the process forever. When runs are still inside libtorch, a detached thread waits `ms` and
// then ends the process with `code` without running static destructors (_exit): no thread is left
// inside a libtorch being torn down, and the process ends in bounded time.
Napi::Value ArmExitWatchdog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int code = static_cast<int>(optInt(info[0]).value_or(1));
  double ms = optNumber(info[1]).value_or(10000);
  if (!(ms >= 0)) ms = 0;
  if (activeCount.load() == 0) return Napi::Boolean::New(env, false);
  std::thread([code, ms] {
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(ms)));
    int busy = activeCount.load();
    if (busy == 0) return;
    std::string msg = "featscope: " + std::to_string(busy) + " native run(s) still busy " + std::to_string(static_cast<int64_t>(ms)) +
                      " ms after exit was asked for; ending the process without waiting for them (FEATSCOPE_EXIT_TIMEOUT_MS)\n";
    ssize_t ignored = ::write(2, msg.data(), msg.size());
    (void)ignored;
    _exit(code);
  }).detach();
  return Napi::Boolean::New(env, true);
}

}  // namespace featscope
