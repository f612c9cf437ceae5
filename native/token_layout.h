// Transformer outputs as feature maps: a ViT's tokens [N, 1 + gh*gw, D] (class token first) and
// Swin's channel-last maps [N, H, W, C] become [N, C, H, W], so that every renderer, reduction and
// Grad-CAM sees the NCHW maps it knows. The layout comes from the model's featscope.json `tokens`.
#pragma once
#include <napi.h>
#include <torch/script.h>

#include <string>
#include <utility>
#include <vector>

namespace featscope {

struct TokenLayout {
  std::string layout;                              // "NLD" (tokens), "NHWC" (channel-last maps), "" (none)
  int64_t classTokens = 0;                         // leading tokens that are not patches (NLD): dropped
  std::vector<std::pair<int64_t, int64_t>> grids;  // the patch grids (rows, columns) the model's outputs use
};

// `{ layout, classTokens, grids }` from JS (absent or not an object: no layout).
TokenLayout readTokenLayout(Napi::Value v);

// x as [N, C, H, W] when its shape is a token output of `t` (sets *kind to "tokens" or
// "channels-last"); otherwise x itself and *kind empty.
at::Tensor tokensToMaps(const at::Tensor& x, const TokenLayout& t, std::string* kind);

}  // namespace featscope
