#include "errors.h"

#include <c10/util/Exception.h>

#include <cctype>

#include "env_data.h"
#include "error_codes.h"

namespace featscope {

namespace {
std::string firstLines(const std::string& in) {
  // TorchScript interpreter errors carry a serialized traceback; the cause is the last
  // "SomethingError: ..." paragraph.
  std::string s = in;
  if (s.find("The following operation failed in the TorchScript interpreter") != std::string::npos) {
    size_t best = std::string::npos;
    for (const char* tag : {"\nRuntimeError: ", "\nValueError: ", "\nTypeError: ", "\nIndexError: ", "\nAssertionError: ",
                            "\ntorch.OutOfMemoryError: ", "\ntorch.cuda.OutOfMemoryError: ", "\nOutOfMemoryError: "}) {
      size_t p = s.rfind(tag);
      if (p != std::string::npos && (best == std::string::npos || p > best)) best = p;
    }
    if (best != std::string::npos) s = s.substr(s.find(": ", best) + 2);
  }
  // c10 messages end with C++ frames in debug builds; keep the message proper.
  auto pos = s.find("\nException raised from");
  std::string out = pos == std::string::npos ? s : s.substr(0, pos);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}
}  // namespace

bool isCudaOutOfMemoryMessage(const std::string& msg) {
  // 1.13: "CUDA out of memory. Tried to allocate ..."; 2.x: c10::OutOfMemoryError with the same
  // text, "CUDA error: out of memory" from a kernel launch or cuBLAS/cuDNN workspaces, and
  // "out of memory" wrapped by the TorchScript interpreter (lower-case "cuda" in some paths).
  std::string lower = msg;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower.find("out of memory") == std::string::npos) return false;
  return lower.find("cuda") != std::string::npos || lower.find("cublas_status_alloc_failed") != std::string::npos ||
         lower.find("cudnn_status_alloc_failed") != std::string::npos;
}

namespace {
ErrorInfo cudaOom(const std::string& prefix, const std::string& msg) {
  return {"CUDA_OOM", prefix +
                          "CUDA out of memory. Use a smaller batch, capture fewer layers or reduce them on the GPU "
                          "(channels / maxSize options), or free GPU memory used by other processes. The model stays usable. "
                          "libtorch said: " +
                          msg};
}
}  // namespace

ErrorInfo describeException(std::exception_ptr ep, const char* fallbackCode, const std::string& context) {
  std::string prefix = context.empty() ? "" : context + ": ";
  try {
    std::rethrow_exception(ep);
  } catch (const FsError& e) {
    return {e.code, e.what()};
  } catch (const c10::OutOfMemoryError& e) {
    // 2.x throws its own type (a c10::Error); on a CUDA libtorch it is the caching allocator's.
    std::string msg = firstLines(e.what_without_backtrace());
    if (isCudaOutOfMemoryMessage(msg)) return cudaOom(prefix, msg);
    return {"OUT_OF_MEMORY", prefix + msg};
  } catch (const c10::Error& e) {
    std::string msg = firstLines(e.what_without_backtrace());
    if (isCudaOutOfMemoryMessage(msg)) return cudaOom(prefix, msg);
    return {fallbackCode, prefix + msg};
  } catch (const std::bad_alloc&) {
    return {"OUT_OF_MEMORY", prefix + "out of host memory"};
  } catch (const std::exception& e) {
    // The TorchScript interpreter rethrows a CUDA OOM from inside a scripted call as a plain
    // std::runtime_error carrying the message on some 2.x versions.
    std::string msg = firstLines(e.what());
    if (isCudaOutOfMemoryMessage(msg)) return cudaOom(prefix, msg);
    return {fallbackCode, prefix + msg};
  } catch (...) {
    return {fallbackCode, prefix + "unknown native error"};
  }
}

Napi::Error makeJsError(Napi::Env env, const std::string& codeIn, const std::string& message) {
  // The set of codes is closed (native/error_codes.h): an unlisted one is a bug, reported as such.
  const bool listed = isErrorCode(codeIn);
  const std::string code = listed ? codeIn : "INTERNAL";
  const std::string text = listed ? message : "unlisted error code " + codeIn + " (a featscope bug; please report it): " + message;
  return makeListedJsError(env, code, text);
}

Napi::Error makeListedJsError(Napi::Env env, const std::string& code, const std::string& message) {
  EnvData* data = envData(env);
  if (data != nullptr && !data->errorClass.IsEmpty()) {
    Napi::Object err = data->errorClass.New({Napi::String::New(env, code), Napi::String::New(env, message)});
    return Napi::Error(env, err);
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

Napi::Value ClassifyErrorForTest(const Napi::CallbackInfo& info) {
  // How describeException maps a libtorch exception of the given kind and message, so the CUDA
  // out-of-memory mapping can be tested without a GPU.
  Napi::Env env = info.Env();
  const std::string kind = info[0].ToString();
  const std::string msg = info[1].ToString();
  std::exception_ptr ep;
  try {
    if (kind == "OutOfMemoryError")
      throw c10::OutOfMemoryError({__func__, __FILE__, __LINE__}, msg);
    else if (kind == "Error")
      throw c10::Error({__func__, __FILE__, __LINE__}, msg);
    else
      throw std::runtime_error(msg);
  } catch (...) {
    ep = std::current_exception();
  }
  ErrorInfo e = describeException(ep, "FORWARD_FAILED", "");
  Napi::Object o = Napi::Object::New(env);
  o.Set("code", e.code);
  o.Set("message", e.message);
  return o;
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass expects a class");
  EnvData* data = envData(info.Env());
  if (data == nullptr) throw Napi::Error::New(info.Env(), "featscope addon not initialised in this environment");
  data->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace featscope
