// Errors that cross into JavaScript. Every native failure becomes a FeatscopeError (the JS class,
// handed over at start-up) with a stable `code`; no C++ exception escapes an N-API call.
#pragma once
#include <napi.h>
#include <stdexcept>
#include <string>

namespace featscope {

// A failure with a featscope code, thrown inside native code and turned into a JS error at the edge.
struct FsError : std::runtime_error {
  std::string code;
  FsError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

// Code and message for any exception (FsError, c10::Error, std::exception), without backtraces.
struct ErrorInfo {
  std::string code;
  std::string message;
};
ErrorInfo describeException(std::exception_ptr ep, const char* fallbackCode, const std::string& context);

// True for libtorch's CUDA out-of-memory messages, all versions (mapped to CUDA_OOM).
bool isCudaOutOfMemoryMessage(const std::string& msg);

// Builds a JS FeatscopeError (or a plain Error before the class is registered). `code` must be
// one of native/error_codes.h; any other becomes INTERNAL, naming the unlisted code.
Napi::Error makeJsError(Napi::Env env, const std::string& code, const std::string& message);
Napi::Error makeListedJsError(Napi::Env env, const std::string& code, const std::string& message);

// _classifyError(kind: 'OutOfMemoryError' | 'Error' | 'runtime_error', message) -> { code, message }:
// describeException's mapping, for tests.
Napi::Value ClassifyErrorForTest(const Napi::CallbackInfo& info);

// Registers the JS error class for the calling environment (called once from lib/native.ts).
Napi::Value SetErrorClass(const Napi::CallbackInfo& info);

}  // namespace featscope
