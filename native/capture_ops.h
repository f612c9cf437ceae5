// Reductions applied to a capture on its device before the one copy to the host, so a grid of
// the top 16 channels of a 512-channel layer copies 16 maps, not 512.
#pragma once
#include <napi.h>
#include <torch/script.h>

#include <vector>

#include "token_layout.h"

namespace featscope {

struct ReduceSpec {
  std::vector<int64_t> channels;  // explicit channel list (empty: all)
  int64_t topK = 0;               // > 0: the k channels with the highest score, per image
  bool topByMean = false;         // score: spatial mean (else spatial max)
  int64_t maxSize = 0;            // > 0: area-downsample maps so that max(H, W) <= maxSize
  bool stats = false;             // per-channel max, mean and argmax over all channels
  TokenLayout tokens;             // transformer outputs become [N, C, H, W] maps first (token_layout.h)
};

struct ReducedCapture {
  at::Tensor tensor;                            // host float32
  at::Tensor channels;                          // host int32 [N, k] when channels were selected
  at::Tensor statsMax, statsMean, statsArgmax;  // host [N, C]
  std::string layout;                           // "tokens" / "channels-last" when reshaped into maps
  std::vector<int64_t> sourceShape;             // then: the module's own output shape
};

// `deferHost`: leave tensor, statsMax and statsMean on the device (float32) for one arena copy of
// the whole forward (copyToArena); channels and argmax still come to the host.
ReducedCapture reduceCapture(const at::Tensor& x, const ReduceSpec& spec, bool* usedDevice, bool deferHost = false);
ReduceSpec readReduceSpec(Napi::Env env, Napi::Value v);
Napi::Int32Array int32ToJs(Napi::Env env, const at::Tensor& t);

class TensorExporter;
// One capture as JS sees it: { name, layer, call, shape, data, channels?, stats? } (both backends).
Napi::Object captureToJs(Napi::Env env, TensorExporter& ex, const std::string& name, const std::string& layer, int call,
                         const ReducedCapture& r);

}  // namespace featscope
