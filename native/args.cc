#include "args.h"

#include "errors.h"

namespace featscope {

namespace {

std::string typeName(Napi::Value v) {
  switch (v.Type()) {
    case napi_undefined:
      return "undefined";
    case napi_null:
      return "null";
    case napi_boolean:
      return "a boolean";
    case napi_number:
      return "a number";
    case napi_string:
      return "a string";
    case napi_symbol:
      return "a symbol";
    case napi_function:
      return "a function";
    case napi_bigint:
      return "a bigint";
    default:
      return v.IsArray() ? "an array" : "an object";
  }
}

Napi::Error wrongType(Napi::Env env, const std::string& what, const char* expected, Napi::Value got) {
  return makeJsError(env, "INVALID_ARGUMENT", what + " must be " + expected + ", got " + typeName(got));
}

}  // namespace

int64_t argInt(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsNumber()) throw wrongType(env, what, "a number", v);
  return v.As<Napi::Number>().Int64Value();
}

std::string argString(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsString()) throw wrongType(env, what, "a string", v);
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> argIntList(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsArray()) throw makeJsError(env, "INVALID_ARGUMENT", what + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(argInt(env, a.Get(i), what + "[" + std::to_string(i) + "]"));
  return out;
}

std::vector<std::string> argStringList(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsArray()) throw makeJsError(env, "INVALID_ARGUMENT", what + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(argString(env, a.Get(i), what + "[" + std::to_string(i) + "]"));
  return out;
}

std::optional<int64_t> optInt(Napi::Value v) {
  if (!v.IsNumber()) return std::nullopt;
  return v.As<Napi::Number>().Int64Value();
}

std::optional<double> optNumber(Napi::Value v) {
  if (!v.IsNumber()) return std::nullopt;
  return v.As<Napi::Number>().DoubleValue();
}

std::optional<std::string> optString(Napi::Value v) {
  if (!v.IsString()) return std::nullopt;
  return v.As<Napi::String>().Utf8Value();
}

std::optional<bool> optBool(Napi::Value v) {
  if (!v.IsBoolean()) return std::nullopt;
  return v.As<Napi::Boolean>().Value();
}

std::vector<int64_t> optIntList(Napi::Env env, Napi::Value v, const std::string& what) {
  return v.IsArray() ? argIntList(env, v, what) : std::vector<int64_t>{};
}

std::vector<std::string> optStringList(Napi::Env env, Napi::Value v, const std::string& what) {
  return v.IsArray() ? argStringList(env, v, what) : std::vector<std::string>{};
}

}  // namespace featscope
