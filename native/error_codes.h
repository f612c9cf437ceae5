// Every `code` a FeatscopeError can carry, the native side's copy of lib/error-codes.ts (the
// TypeScript union). test/unit/error-codes.test.ts holds the two lists, the codes the sources
// throw and docs/api.md's table against one another. makeJsError() refuses codes not listed here.
#pragma once
#include <cstring>
#include <string>

namespace featscope {

// clang-format off
inline constexpr const char* kErrorCodes[] = {
    // BEGIN ERROR CODES
    "BACKWARD_FAILED",
    "CAPTURE_NOT_FOUND",
    "CUDA_DEVICE_NOT_FOUND",
    "CUDA_OOM",
    "CUDA_UNAVAILABLE",
    "DUPLICATE_LAYER",
    "FFMPEG_MISSING",
    "FORMAT_UNSUPPORTED",
    "FORWARD_FAILED",
    "GRADCAM_FAILED",
    "IMAGE_DECODE",
    "IMAGE_NOT_FOUND",
    "IMAGE_TOO_LARGE",
    "INTERNAL",
    "INVALID_ARGUMENT",
    "INVALID_INPUT",
    "LAYER_NOT_CALLED",
    "LAYER_NOT_EXPORTED",
    "LAYER_OUTPUT_NOT_TENSOR",
    "MERGE_INVALID",
    "MERGE_MISMATCH",
    "MODEL_DISPOSED",
    "MODEL_FROZEN",
    "MODEL_INVALID",
    "MODEL_NOT_FOUND",
    "MODEL_OUTPUT_NOT_LOGITS",
    "NATIVE_LOAD_FAILED",
    "NOTEBOOK_UNAVAILABLE",
    "NOT_A_CLASSIFIER",
    "NOT_A_TRANSFORMER",
    "NOT_FEATURE_MAPS",
    "NOT_SUPPORTED_PT2",
    "NO_INPUTS",
    "NO_RGB_CONV",
    "OUT_OF_MEMORY",
    "PARAMETERS_FAILED",
    "SHAPE_MISMATCH",
    "UNKNOWN_LAYER",
    "UNKNOWN_OPTION",
    "UNSUPPORTED_GRAPH",
    "VIDEO_DECODE_FAILED",
    "ZERO_GRADIENT",
    // END ERROR CODES
};
// clang-format on

inline bool isErrorCode(const std::string& code) {
  for (const char* c : kErrorCodes)
    if (code == c) return true;
  return false;
}

}  // namespace featscope
