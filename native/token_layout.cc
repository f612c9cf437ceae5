#include "token_layout.h"

#include "args.h"

namespace featscope {

TokenLayout readTokenLayout(Napi::Value v) {
  TokenLayout t;
  if (!v.IsObject()) return t;
  Napi::Object o = v.As<Napi::Object>();
  t.layout = optString(o.Get("layout")).value_or(t.layout);
  t.classTokens = optInt(o.Get("classTokens")).value_or(t.classTokens);
  if (o.Get("grids").IsArray()) {
    // A grid that is not [h, w] is skipped (lib/model.ts hands over only well-formed ones).
    Napi::Array a = o.Get("grids").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      if (!a.Get(i).IsArray()) continue;
      Napi::Array g = a.Get(i).As<Napi::Array>();
      auto h = optInt(g.Get(0u)), w = optInt(g.Get(1u));
      if (g.Length() != 2 || !h || !w) continue;
      t.grids.emplace_back(*h, *w);
    }
  }
  return t;
}

at::Tensor tokensToMaps(const at::Tensor& x, const TokenLayout& t, std::string* kind) {
  kind->clear();
  const auto isGrid = [&](int64_t h, int64_t w) {
    for (const auto& g : t.grids)
      if (g.first == h && g.second == w) return true;
    return false;
  };
  if (t.layout == "NLD" && x.dim() == 3) {
    for (const auto& [gh, gw] : t.grids) {
      if (x.size(1) != t.classTokens + gh * gw) continue;
      *kind = "tokens";
      // Patch tokens are in row-major order on the patch grid (torchvision's conv_proj, flattened).
      return x.narrow(1, t.classTokens, gh * gw).transpose(1, 2).reshape({x.size(0), x.size(2), gh, gw});
    }
  }
  // Channel-last: [N, H, W, C] on one of the grids, and not also readable as NCHW on one.
  if (t.layout == "NHWC" && x.dim() == 4 && isGrid(x.size(1), x.size(2)) && !isGrid(x.size(2), x.size(3))) {
    *kind = "channels-last";
    return x.permute({0, 3, 1, 2}).contiguous();
  }
  return x;
}

}  // namespace featscope
