#include "structured.h"

#include "errors.h"
#include "tensor_bridge.h"

namespace featscope {

namespace {

bool containsTensor(const c10::TypePtr& type) {
  if (type->isSubtypeOf(*c10::TensorType::get())) return true;
  if (type->kind() == c10::TypeKind::NoneType) return false;
  for (const auto& t : type->containedTypes())
    if (containsTensor(t)) return true;
  return false;
}

std::string keyText(const c10::IValue& k) {
  if (k.isString()) return k.toStringRef();
  if (k.isInt()) return std::to_string(k.toInt());
  if (k.isBool()) return k.toBool() ? "true" : "false";
  if (k.isDouble()) return std::to_string(k.toDouble());
  return k.tagKind();
}

// TorchScript passes an Optional[Tensor] that is None as an undefined tensor in places (nn.MultiheadAttention's
// weights with need_weights=False): it is None here too, not a part.
bool isNoneLike(const c10::IValue& v) { return v.isNone() || (v.isTensor() && !v.toTensor().defined()); }

// Deeper nesting than any model output needs; a class whose attribute holds an object of its own
// type could otherwise recurse without end.
constexpr int kMaxPartDepth = 32;

void flatten(const CaptureSlot& slot, const std::string& name, const c10::IValue& v, std::vector<Captured>& out, int depth = 0) {
  if (isNoneLike(v)) return;
  if (depth > kMaxPartDepth)
    throw FsError("LAYER_OUTPUT_NOT_TENSOR", "cannot capture " + slot.name + ": its output nests deeper than " +
                                                 std::to_string(kMaxPartDepth) + " levels (at " + name +
                                                 "); capture one of its submodules instead");
  if (v.isTensor()) {
    CaptureSlot part = slot;
    part.name = name;
    out.push_back({part, v.toTensor()});
  } else if (v.isTuple()) {
    const auto& el = v.toTupleRef().elements();
    for (size_t i = 0; i < el.size(); ++i) flatten(slot, name + ":" + std::to_string(i), el[i], out, depth + 1);
  } else if (v.isList()) {
    auto list = v.toListRef();
    for (size_t i = 0; i < list.size(); ++i) flatten(slot, name + ":" + std::to_string(i), list[i], out, depth + 1);
  } else if (v.isGenericDict()) {
    for (const auto& e : v.toGenericDict()) flatten(slot, name + ":" + keyText(e.key()), e.value(), out, depth + 1);
  } else if (v.isObject() && !v.toObjectRef().type()->is_module()) {
    // A TorchScript class instance (torchvision's ImageList): its attributes by name, in declaration
    // order, as a Python hook sees them (`transform:0:tensors`).
    const auto& obj = v.toObjectRef();
    const auto type = obj.type();
    for (size_t i = 0; i < type->numAttributes(); ++i)
      flatten(slot, name + ":" + type->getAttributeName(i), obj.getSlot(i), out, depth + 1);
  }
}

// Python's names (torch.float32, torch.int64, ...), without the prefix.
std::string dtypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kLong:
      return "int64";
    case at::kInt:
      return "int32";
    case at::kShort:
      return "int16";
    case at::kChar:
      return "int8";
    case at::kByte:
      return "uint8";
    case at::kBool:
      return "bool";
    default:
      return c10::toString(t);
  }
}

}  // namespace

bool isStructuredOutput(const c10::TypePtr& type) {
  if (type->isSubtypeOf(*c10::TensorType::get())) return false;
  const auto k = type->kind();
  if (k != c10::TypeKind::TupleType && k != c10::TypeKind::ListType && k != c10::TypeKind::DictType && k != c10::TypeKind::OptionalType)
    return false;
  return containsTensor(type);
}

void appendStructuredParts(const CaptureSlot& slot, const c10::IValue& value, std::vector<Captured>& out) {
  flatten(slot, slot.name, value, out);
}

void pushForwardInputs(torch::jit::Stack& stack, const torch::jit::Graph& graph, const at::Tensor& x) {
  const auto& inputs = graph.inputs();
  if (inputs.size() < 2) throw FsError("INVALID_ARGUMENT", "the model's forward takes no input tensor");
  const auto& type = inputs[1]->type();
  if (type->isSubtypeOf(*c10::ListType::ofTensors())) {
    c10::List<at::Tensor> images;
    for (const auto& im : x.unbind(0)) images.push_back(im);
    stack.emplace_back(images);
  } else {
    stack.emplace_back(x);
  }
  for (size_t i = 2; i < inputs.size(); ++i) {
    if (inputs[i]->type()->kind() != c10::TypeKind::OptionalType)
      throw FsError("INVALID_ARGUMENT", "the model's forward takes " + std::to_string(inputs.size() - 1) +
                                            " inputs; featscope passes one image batch (further inputs must be Optional, "
                                            "and get None), but input " +
                                            std::to_string(i) + " (" + inputs[i]->debugName() + ") is " + inputs[i]->type()->repr_str());
    stack.emplace_back(c10::IValue());
  }
}

HostValue toHostValue(const c10::IValue& v, bool* usedDevice) {
  HostValue h;
  if (isNoneLike(v)) {
    h.kind = HostValue::kNone;
  } else if (v.isTensor()) {
    h.kind = HostValue::kTensor;
    const at::Tensor& t = v.toTensor();
    h.dtype = dtypeName(t.scalar_type());
    h.tensor = toHostFloat(t.detach(), usedDevice);
  } else if (v.isTuple() || v.isList()) {
    h.kind = HostValue::kList;
    if (v.isTuple()) {
      for (const auto& e : v.toTupleRef().elements()) h.items.emplace_back("", toHostValue(e, usedDevice));
    } else {
      for (const auto& e : v.toListRef()) h.items.emplace_back("", toHostValue(e, usedDevice));
    }
  } else if (v.isGenericDict()) {
    h.kind = HostValue::kDict;
    for (const auto& e : v.toGenericDict()) h.items.emplace_back(keyText(e.key()), toHostValue(e.value(), usedDevice));
  } else if (v.isBool()) {
    h.kind = HostValue::kBool;
    h.boolean = v.toBool();
  } else if (v.isInt() || v.isDouble()) {
    h.kind = HostValue::kNumber;
    h.number = v.isInt() ? static_cast<double>(v.toInt()) : v.toDouble();
  } else if (v.isString()) {
    h.kind = HostValue::kString;
    h.text = v.toStringRef();
  } else {
    throw FsError("FORWARD_FAILED", std::string("the model's output holds a ") + v.tagKind() +
                                        ", which featscope cannot hand to JavaScript (tensors, lists, tuples, dicts, "
                                        "numbers, booleans, strings and None can be)");
  }
  return h;
}

Napi::Value hostValueToJs(Napi::Env env, TensorExporter& ex, const HostValue& v) {
  switch (v.kind) {
    case HostValue::kTensor: {
      Napi::Object o = Napi::Object::New(env);
      o.Set("shape", shapeToJs(env, v.tensor.sizes()));
      o.Set("data", ex.toFloat32Array(v.tensor));
      o.Set("dtype", v.dtype);
      return o;
    }
    case HostValue::kList: {
      Napi::Array a = Napi::Array::New(env, v.items.size());
      for (size_t i = 0; i < v.items.size(); ++i) a.Set(static_cast<uint32_t>(i), hostValueToJs(env, ex, v.items[i].second));
      return a;
    }
    case HostValue::kDict: {
      Napi::Object o = Napi::Object::New(env);
      for (const auto& [k, item] : v.items) o.Set(k, hostValueToJs(env, ex, item));
      return o;
    }
    case HostValue::kBool:
      return Napi::Boolean::New(env, v.boolean);
    case HostValue::kNumber:
      return Napi::Number::New(env, v.number);
    case HostValue::kString:
      return Napi::String::New(env, v.text);
    default:
      return env.Null();
  }
}

}  // namespace featscope

#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <mutex>
#include <vector>

namespace featscope {

namespace {

at::Tensor nmsCpu(const at::Tensor& dets, const at::Tensor& scores, double iouThreshold) {
  TORCH_CHECK(dets.dim() == 2 && dets.size(1) == 4, "boxes should be a [N, 4] tensor, got ", dets.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == dets.size(0), "scores should be a [N] tensor matching the boxes");
  if (dets.numel() == 0) return at::empty({0}, dets.options().dtype(at::kLong));
  const at::Tensor b = dets.detach().to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor order = std::get<1>(scores.detach().to(at::kCPU).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const int64_t n = b.size(0);
  const double* p = b.data_ptr<double>();
  const int64_t* ord = order.data_ptr<int64_t>();
  std::vector<double> area(n);
  for (int64_t i = 0; i < n; ++i) area[i] = (p[4 * i + 2] - p[4 * i]) * (p[4 * i + 3] - p[4 * i + 1]);
  std::vector<char> suppressed(n, 0);
  std::vector<int64_t> keep;
  for (int64_t a = 0; a < n; ++a) {
    const int64_t i = ord[a];
    if (suppressed[i]) continue;
    keep.push_back(i);
    for (int64_t c = a + 1; c < n; ++c) {
      const int64_t j = ord[c];
      if (suppressed[j]) continue;
      const double w = std::max(0.0, std::min(p[4 * i + 2], p[4 * j + 2]) - std::max(p[4 * i], p[4 * j]));
      const double h = std::max(0.0, std::min(p[4 * i + 3], p[4 * j + 3]) - std::max(p[4 * i + 1], p[4 * j + 1]));
      const double inter = w * h;
      if (inter / (area[i] + area[j] - inter) > iouThreshold) suppressed[j] = 1;
    }
  }
  return at::tensor(keep, at::TensorOptions().dtype(at::kLong)).to(dets.device());
}

// torchvision's roi_align (Mask R-CNN's RoIAlign, as torchvision's CPU kernel computes it): for each
// box [batch index, x1, y1, x2, y2] (image coordinates, times spatial_scale for this level), a
// pooled_height x pooled_width grid of bins, each the mean of sampling_ratio^2 bilinear samples
// (adaptive, ceil(box size / bins), when sampling_ratio <= 0); `aligned` shifts by half a pixel.
// Forward only: a Grad-CAM through it would need its backward.
at::Tensor roiAlignCpu(const at::Tensor& input, const at::Tensor& rois, double spatialScale, int64_t pooledHeight, int64_t pooledWidth,
                       int64_t samplingRatio, bool aligned) {
  TORCH_CHECK(input.dim() == 4, "roi_align: input should be [N, C, H, W], got ", input.sizes());
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, "roi_align: rois should be [K, 5], got ", rois.sizes());
  TORCH_CHECK(pooledHeight > 0 && pooledWidth > 0, "roi_align: the output size should be positive");
  const at::Tensor in = input.detach().to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor boxes = rois.detach().to(at::kCPU, at::kFloat).contiguous();
  const int64_t K = boxes.size(0), N = in.size(0), C = in.size(1), H = in.size(2), W = in.size(3);
  at::Tensor out = at::zeros({K, C, pooledHeight, pooledWidth}, in.options());
  if (K == 0 || C == 0) return out.to(input.device(), input.scalar_type());
  TORCH_CHECK(H > 0 && W > 0, "roi_align: the feature map is empty (", H, " x ", W, ")");
  const float* x = in.data_ptr<float>();
  const float* r = boxes.data_ptr<float>();
  float* o = out.data_ptr<float>();
  struct Tap {
    int64_t p1, p2, p3, p4;
    float w1, w2, w3, w4;
  };
  std::vector<Tap> taps;
  for (int64_t k = 0; k < K; ++k) {
    const float* b = r + k * 5;
    const int64_t n = static_cast<int64_t>(b[0]);
    TORCH_CHECK(n >= 0 && n < N, "roi_align: box ", k, " names image ", n, " of a batch of ", N);
    const float offset = aligned ? 0.5f : 0.0f;
    const float sx = static_cast<float>(spatialScale);
    const float x1 = b[1] * sx - offset, y1 = b[2] * sx - offset, x2 = b[3] * sx - offset, y2 = b[4] * sx - offset;
    TORCH_CHECK(std::isfinite(x1) && std::isfinite(y1) && std::isfinite(x2) && std::isfinite(y2), "roi_align: box ", k,
                " has a coordinate that is not finite");
    float rw = x2 - x1, rh = y2 - y1;
    if (!aligned) {
      rw = std::max(rw, 1.0f);
      rh = std::max(rh, 1.0f);
    }
    const float binH = rh / static_cast<float>(pooledHeight), binW = rw / static_cast<float>(pooledWidth);
    // A reversed box (x2 < x1 with `aligned`) has a negative size: no samples, as in torchvision.
    const double adaptiveH = std::max(0.0, std::ceil(static_cast<double>(rh) / pooledHeight));
    const double adaptiveW = std::max(0.0, std::ceil(static_cast<double>(rw) / pooledWidth));
    // Samples per bin: a box far larger than the feature map would ask for billions.
    TORCH_CHECK(samplingRatio > 0 || (adaptiveH <= 4 * (H + 1) && adaptiveW <= 4 * (W + 1)), "roi_align: box ", k, " (", rw, " x ", rh,
                " feature pixels) is far larger than the ", W, " x ", H, " feature map");
    TORCH_CHECK(samplingRatio <= 1024, "roi_align: sampling_ratio ", samplingRatio, " is more than 1024");
    const int64_t gridH = samplingRatio > 0 ? samplingRatio : static_cast<int64_t>(adaptiveH);
    const int64_t gridW = samplingRatio > 0 ? samplingRatio : static_cast<int64_t>(adaptiveW);
    const float count = static_cast<float>(std::max<int64_t>(gridH * gridW, 1));
    // The bilinear taps of every sample of every bin, shared by all channels.
    taps.clear();
    for (int64_t ph = 0; ph < pooledHeight; ++ph)
      for (int64_t pw = 0; pw < pooledWidth; ++pw)
        for (int64_t iy = 0; iy < gridH; ++iy) {
          const float yy = y1 + ph * binH + (iy + 0.5f) * binH / static_cast<float>(gridH);
          for (int64_t ix = 0; ix < gridW; ++ix) {
            float xx = x1 + pw * binW + (ix + 0.5f) * binW / static_cast<float>(gridW);
            float y = yy;
            if (y < -1.0f || y > H || xx < -1.0f || xx > W) {
              taps.push_back({0, 0, 0, 0, 0.f, 0.f, 0.f, 0.f});
              continue;
            }
            if (y <= 0) y = 0;
            if (xx <= 0) xx = 0;
            int64_t yl = static_cast<int64_t>(y), xl = static_cast<int64_t>(xx), yh, xh;
            if (yl >= H - 1) {
              yh = yl = H - 1;
              y = static_cast<float>(yl);
            } else {
              yh = yl + 1;
            }
            if (xl >= W - 1) {
              xh = xl = W - 1;
              xx = static_cast<float>(xl);
            } else {
              xh = xl + 1;
            }
            const float ly = y - yl, lx = xx - xl, hy = 1.f - ly, hx = 1.f - lx;
            taps.push_back({yl * W + xl, yl * W + xh, yh * W + xl, yh * W + xh, hy * hx, hy * lx, ly * hx, ly * lx});
          }
        }
    const int64_t perBin = gridH * gridW;
    for (int64_t c = 0; c < C; ++c) {
      const float* plane = x + (n * C + c) * H * W;
      float* dst = o + (k * C + c) * pooledHeight * pooledWidth;
      for (int64_t bin = 0; bin < pooledHeight * pooledWidth; ++bin) {
        float v = 0;
        for (int64_t t = bin * perBin; t < (bin + 1) * perBin; ++t) {
          const Tap& p = taps[t];
          v += p.w1 * plane[p.p1] + p.w2 * plane[p.p2] + p.w3 * plane[p.p3] + p.w4 * plane[p.p4];
        }
        dst[bin] = v / count;
      }
    }
  }
  return out.to(input.device(), input.scalar_type());
}

}  // namespace

void ensureTorchvisionOps() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Each op only where torchvision's own library has not registered it. Kept for the life of the
    // process (unregistering at exit would race other static teardown).
    auto& dispatcher = c10::Dispatcher::singleton();
    if (!dispatcher.findSchema({"torchvision::nms", ""}).has_value()) {
      static auto* nms = new torch::RegisterOperators(
          torch::RegisterOperators().op("torchvision::nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
                                        torch::RegisterOperators::options().catchAllKernel<decltype(nmsCpu), &nmsCpu>()));
      (void)nms;
    }
    if (!dispatcher.findSchema({"torchvision::roi_align", ""}).has_value()) {
      static auto* roiAlign = new torch::RegisterOperators(torch::RegisterOperators().op(
          "torchvision::roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_height, int pooled_width, "
          "int sampling_ratio, bool aligned) -> Tensor",
          torch::RegisterOperators::options().catchAllKernel<decltype(roiAlignCpu), &roiAlignCpu>()));
      (void)roiAlign;
    }
  });
}

}  // namespace featscope
