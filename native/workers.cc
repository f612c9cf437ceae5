#include "workers.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace featscope {

namespace {
std::mutex activeMutex;
std::condition_variable activeDone;
int activeCount = 0;
}  // namespace

void FsWorker::Execute() {
  {
    std::lock_guard<std::mutex> lock(activeMutex);
    ++activeCount;
  }
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
  {
    std::lock_guard<std::mutex> lock(activeMutex);
    --activeCount;
  }
  activeDone.notify_all();
}

void FsWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
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

// Called when the Node environment shuts down (process exit with forwards still running): wait
// for them so that no worker thread is inside libtorch while its statics are destroyed.
static void waitForWorkers(void*) {
  std::unique_lock<std::mutex> lock(activeMutex);
  activeDone.wait_for(lock, std::chrono::seconds(60), [] { return activeCount == 0; });
}

void InitWorkers(Napi::Env env) { napi_add_env_cleanup_hook(env, waitForWorkers, nullptr); }

}  // namespace featscope
