#include "capture_ops.h"

#include <cmath>

#include "args.h"
#include "errors.h"
#include "tensor_bridge.h"

namespace featscope {

ReducedCapture reduceCapture(const at::Tensor& in, const ReduceSpec& spec, bool* usedDevice, bool deferHost) {
  const auto toHost = [&](const at::Tensor& t) { return deferHost ? t.to(at::kFloat) : toHostFloat(t, usedDevice, /*pooled=*/true); };
  ReducedCapture r;
  at::Tensor x = tokensToMaps(in, spec.tokens, &r.layout);
  if (!r.layout.empty()) r.sourceShape = in.sizes().vec();
  const bool any = spec.stats || spec.topK > 0 || !spec.channels.empty() || spec.maxSize > 0;
  if (any && x.dim() < 2)
    throw FsError("INVALID_ARGUMENT",
                  "channel options need a capture with a channel dimension; this one has shape of rank " + std::to_string(x.dim()));
  if (any) x = x.to(at::kFloat);
  at::Tensor flat;  // [N, C, S]
  if (any) flat = x.dim() == 2 ? x.unsqueeze(-1) : x.flatten(2);
  if (spec.stats) {
    auto mx = flat.max(2);
    r.statsMax = toHost(std::get<0>(mx));
    r.statsMean = toHost(flat.mean(2));
    r.statsArgmax = std::get<1>(mx).to(at::kInt).to(at::kCPU);
  }
  const int64_t C = x.dim() >= 2 ? x.size(1) : 0;
  at::Tensor idx;  // [N, k] long
  if (!spec.channels.empty()) {
    for (auto c : spec.channels)
      if (c < 0 || c >= C)
        throw FsError("INVALID_ARGUMENT",
                      "channel " + std::to_string(c) + " does not exist: the capture has channels 0.." + std::to_string(C - 1));
    at::Tensor sel = torch::tensor(spec.channels, at::TensorOptions().dtype(at::kLong)).to(x.device());
    x = x.index_select(1, sel);
    idx = sel.unsqueeze(0).expand({x.size(0), static_cast<int64_t>(spec.channels.size())});
  } else if (spec.topK > 0) {
    const int64_t k = std::min<int64_t>(spec.topK, C);
    at::Tensor score = spec.topByMean ? flat.mean(2) : std::get<0>(flat.max(2));
    idx = std::get<1>(score.topk(k, 1, /*largest=*/true, /*sorted=*/true));
    std::vector<int64_t> view{x.size(0), k};
    for (int64_t d = 2; d < x.dim(); ++d) view.push_back(1);
    std::vector<int64_t> full{x.size(0), k};
    for (int64_t d = 2; d < x.dim(); ++d) full.push_back(x.size(d));
    x = x.gather(1, idx.view(view).expand(full));
  }
  if (idx.defined()) r.channels = idx.to(at::kInt).to(at::kCPU).contiguous();
  if (spec.maxSize > 0 && x.dim() == 4 && std::max(x.size(2), x.size(3)) > spec.maxSize) {
    const double s = static_cast<double>(spec.maxSize) / static_cast<double>(std::max(x.size(2), x.size(3)));
    int64_t h = std::max<int64_t>(1, std::lround(x.size(2) * s)), w = std::max<int64_t>(1, std::lround(x.size(3) * s));
    x = at::adaptive_avg_pool2d(x, {h, w});
  }
  r.tensor = toHost(x);
  return r;
}

ReduceSpec readReduceSpec(Napi::Env env, Napi::Value v) {
  ReduceSpec s;
  if (!v.IsObject()) return s;
  Napi::Object o = v.As<Napi::Object>();
  s.channels = optIntList(env, o.Get("channels"), "channels");
  s.topK = optInt(o.Get("top")).value_or(s.topK);
  if (auto by = optString(o.Get("by"))) s.topByMean = *by == "mean";
  s.maxSize = optInt(o.Get("maxSize")).value_or(s.maxSize);
  if (o.Has("stats")) s.stats = o.Get("stats").ToBoolean();
  if (o.Has("tokens")) s.tokens = readTokenLayout(o.Get("tokens"));
  return s;
}

Napi::Int32Array int32ToJs(Napi::Env env, const at::Tensor& t) {
  at::Tensor c = t.to(at::kInt).contiguous();
  Napi::Int32Array a = Napi::Int32Array::New(env, c.numel());
  std::memcpy(a.Data(), c.data_ptr<int32_t>(), c.numel() * sizeof(int32_t));
  return a;
}

Napi::Object captureToJs(Napi::Env env, TensorExporter& ex, const std::string& name, const std::string& layer, int call,
                         const ReducedCapture& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name);
  o.Set("layer", layer);
  o.Set("call", call);
  o.Set("shape", shapeToJs(env, r.tensor.sizes()));
  o.Set("data", ex.toFloat32Array(r.tensor));
  if (r.channels.defined()) o.Set("channels", int32ToJs(env, r.channels));
  if (!r.layout.empty()) {
    o.Set("layout", r.layout);
    o.Set("sourceShape", shapeToJs(env, c10::IntArrayRef(r.sourceShape)));
  }
  if (r.statsMax.defined()) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("max", ex.toFloat32Array(r.statsMax));
    s.Set("mean", ex.toFloat32Array(r.statsMean));
    s.Set("argmax", int32ToJs(env, r.statsArgmax));
    s.Set("shape", shapeToJs(env, r.statsMax.sizes()));
    o.Set("stats", s);
  }
  return o;
}

}  // namespace featscope
