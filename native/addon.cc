// featscope's native addon: exports load(), the NativeModel class, CUDA queries and versions.
// The raw surface is typed once in lib/native.ts; the public API wraps it.
#include <napi.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>
#include <ATen/Parallel.h>

#include "env_data.h"
#include "error_codes.h"
#include "errors.h"
#include "jit_settings.h"
#include "model.h"
#include "pt2_model.h"
#include "staging.h"
#include "tensor_bridge.h"
#include "workers.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <cstdlib>

namespace featscope {

// Feature maps are large, short-lived blocks freed whenever V8 collects their arrays. glibc
// serves such blocks with fresh mmap()s and gives them back on free, so every forward pays page
// faults on megabytes of new memory (measured: capturing all 52 leaves of ResNet-18 on the CPU
// cost +18 ms over a plain forward, +8 ms with the blocks kept in the heap; RSS over 1,000
// captures stays flat either way). Keep them in the
// heap, unless the user tuned malloc or sets FEATSCOPE_MALLOC_TUNING=0.
static void tuneMalloc() {
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD)
  static bool done = false;
  if (done) return;
  done = true;
  const char* opt = std::getenv("FEATSCOPE_MALLOC_TUNING");
  if ((opt && std::string(opt) == "0") || std::getenv("GLIBC_TUNABLES") || std::getenv("MALLOC_MMAP_THRESHOLD_") ||
      std::getenv("MALLOC_TRIM_THRESHOLD_"))
    return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
#endif
}

static Napi::Value CudaAvailable(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), torch::cuda::is_available()); }

static Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), torch::cuda::is_available() ? static_cast<double>(torch::cuda::device_count()) : 0.0);
}

static Napi::Value Versions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("libtorch", TORCH_VERSION);
  o.Set("cxx11Abi", static_cast<bool>(_GLIBCXX_USE_CXX11_ABI));
  o.Set("threads", at::get_num_threads());
  o.Set("parallel", at::get_parallel_info());
  o.Set("jitCpuFusion", jitCpuFusion());
  return o;
}

// The closed list of error codes (native/error_codes.h), for the test that holds it against
// lib/error-codes.ts.
static Napi::Value ErrorCodes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t n = sizeof(kErrorCodes) / sizeof(kErrorCodes[0]);
  Napi::Array a = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) a.Set(static_cast<uint32_t>(i), Napi::String::New(env, kErrorCodes[i]));
  return a;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tuneMalloc();
  configureJit();
  // One EnvData per environment (main thread, each worker thread), freed with it.
  env.SetInstanceData(new EnvData());
  InitTensorBridge(env);
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
  exports.Set("load", Napi::Function::New(env, LoadModel));
  exports.Set("NativeModel", ModelWrap::Init(env));
  exports.Set("withParameters", Napi::Function::New(env, WithParameters));
  exports.Set("loadPt2", Napi::Function::New(env, LoadPt2Model));
  exports.Set("pt2Supported", Napi::Boolean::New(env, InitPt2(env, exports)));
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("versions", Napi::Function::New(env, Versions));
  exports.Set("exportCounters", Napi::Function::New(env, ExportCounters));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
  exports.Set("_classifyError", Napi::Function::New(env, ClassifyErrorForTest));
  exports.Set("errorCodes", Napi::Function::New(env, ErrorCodes));
  exports.Set("armExitWatchdog", Napi::Function::New(env, ArmExitWatchdog));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  return exports;
}

}  // namespace featscope

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return featscope::Init(env, exports); }

NODE_API_MODULE(featscope, InitAddon)
