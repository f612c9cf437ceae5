// Readers for the arguments JavaScript hands the addon (typed once in lib/native.ts). The checks
// and their coded errors live here: a required value of the wrong type is an INVALID_ARGUMENT
// error naming the argument and what it got; an option of the wrong type takes its default.
#pragma once
#include <napi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace featscope {

// Required values. Numbers are read as napi_get_value_int64 does (a fraction is cut toward zero,
// NaN and infinities are 0). `what` names the argument in the error ("shape", "classes").
int64_t argInt(Napi::Env env, Napi::Value v, const std::string& what);
std::string argString(Napi::Env env, Napi::Value v, const std::string& what);
// An array whose every element is read as above; the error names the element (`what[i]`). Not an
// array: "<what> must be an array of integers" (or "of strings").
std::vector<int64_t> argIntList(Napi::Env env, Napi::Value v, const std::string& what);
std::vector<std::string> argStringList(Napi::Env env, Napi::Value v, const std::string& what);

// Options: the value when `v` holds one of the type, else nothing (a missing option).
std::optional<int64_t> optInt(Napi::Value v);
std::optional<double> optNumber(Napi::Value v);
std::optional<std::string> optString(Napi::Value v);
std::optional<bool> optBool(Napi::Value v);
// An array is read as argIntList / argStringList (a bad element is an error); anything else is
// an empty list.
std::vector<int64_t> optIntList(Napi::Env env, Napi::Value v, const std::string& what);
std::vector<std::string> optStringList(Napi::Env env, Napi::Value v, const std::string& what);

}  // namespace featscope
