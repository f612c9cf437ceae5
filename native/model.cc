#include "model.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/serialization/import.h>

#include <cmath>
#include <condition_variable>
#include <cstring>

#include "args.h"
#include "capture_ops.h"
#include "env_data.h"
#include "errors.h"
#include "freeze.h"
#include "staging.h"
#include "structured.h"
#include "tensor_bridge.h"
#include "workers.h"

namespace featscope {

// ---------------------------------------------------------------------------------------------
// ModelState

std::shared_ptr<HookedForward> ModelState::hooked(const std::set<std::string>& names, bool guardInPlace, bool optimize, bool capturesOnly) {
  std::string key = optimize ? "o|" : guardInPlace ? "f|" : "g|";
  if (capturesOnly) key += "c|";
  for (const auto& n : names) key += n + "\n";
  std::lock_guard<std::mutex> lock(cacheMutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto hf = std::make_shared<HookedForward>(buildHookedForward(module, names, guardInPlace || optimize, capturesOnly));
  if (optimize) optimizeHookedForward(module, names, *hf);
  cache.emplace(key, hf);
  cacheOrder.push_back(key);
  // Each entry holds an optimised graph; a program that walks through many layer sets keeps the
  // most recent ones. Running forwards hold their own reference to an evicted entry.
  if (cacheOrder.size() > kCacheSize) {
    cache.erase(cacheOrder.front());
    cacheOrder.pop_front();
  }
  return hf;
}

// ---------------------------------------------------------------------------------------------
// Loading

c10::Device parseDevice(const std::string& spec) {
  if (spec == "cpu") return c10::Device(c10::kCPU);
  const bool cuda = torch::cuda::is_available();
  const int count = cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (spec == "auto") return cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (spec.size() > 5) {
      try {
        size_t used = 0;
        index = std::stoi(spec.substr(5), &used);
        if (used != spec.size() - 5 || index < 0) throw std::invalid_argument(spec);
      } catch (const std::exception&) {
        throw FsError("INVALID_ARGUMENT", "device " + spec + " is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'");
      }
    }
    if (!cuda)
      throw FsError("CUDA_UNAVAILABLE", "device " + spec +
                                            " asked for, but this libtorch sees no CUDA device (CPU-only build or no GPU/driver); "
                                            "use device 'cpu' or 'auto', or build featscope against a CUDA libtorch");
    if (index >= count)
      throw FsError("CUDA_DEVICE_NOT_FOUND", "device " + spec + " does not exist: this machine has " + std::to_string(count) +
                                                 " CUDA device(s), cuda:0 to cuda:" + std::to_string(count - 1));
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw FsError("INVALID_ARGUMENT", "device " + spec + " is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'");
}

class LoadWorker : public FsWorker {
 public:
  LoadWorker(Napi::Env env, std::string path, std::string device, bool exact)
      : FsWorker(env, "featscope.load", "MODEL_INVALID"), path_(std::move(path)), deviceSpec_(std::move(device)), exact_(exact) {}

 protected:
  void Run() override {
    auto st = std::make_shared<ModelState>();
    st->device = parseDevice(deviceSpec_);
    st->path = path_;
    st->exactPrecision = exact_;
    torch::jit::ExtraFilesMap extra{{"featscope.json", ""}};
    ensureTorchvisionOps();  // scripted detection models call torchvision::nms (structured.h)
    try {
      st->module = torch::jit::load(path_, st->device, extra);
    } catch (const c10::Error& e) {
      std::string msg = e.what_without_backtrace();
      std::string hint =
          "it is not a TorchScript file (export one with torch.jit.script or torch.jit.trace, then torch.jit.save; "
          "scripts/export-model.py does this)";
      if (msg.find("constants.pkl") != std::string::npos || msg.find("code/") != std::string::npos ||
          msg.find("data.pkl") != std::string::npos)
        hint =
            "it looks like a checkpoint saved with torch.save (a state_dict or pickled model), not TorchScript; "
            "export TorchScript from it with scripts/export-model.py --arch ARCH --weights FILE.pth (add --num-classes N "
            "and --labels FILE for a fine-tuned head; docs/cli.md, section Your own fine-tuned model)";
      else if (msg.find("central directory") != std::string::npos || msg.find("zip archive") != std::string::npos)
        hint = "it is not a TorchScript archive, or the file is truncated or corrupt; export it again (scripts/export-model.py)";
      auto nl = msg.find('\n');
      throw FsError("MODEL_INVALID", "cannot load model " + path_ + ": " + hint + " [libtorch: " + msg.substr(0, nl) + "]");
    }
    st->module.eval();
    st->metadata = extra["featscope.json"];
    if (!st->module.find_method("forward")) throw FsError("MODEL_INVALID", "model " + path_ + " has no forward method");
    st->layers = listLayers(st->module);
    for (const auto& l : st->layers) st->layerNames.insert(l.name);
    for (const auto& p : st->module.named_parameters(true)) st->storages.insert(p.value.storage().data());
    for (const auto& b : st->module.named_buffers(true)) st->storages.insert(b.value.storage().data());
    state_ = st;
  }
  Napi::Value Result() override { return ModelWrap::NewInstance(Env(), state_); }

 private:
  std::string path_, deviceSpec_;
  bool exact_;
  std::shared_ptr<ModelState> state_;
};

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsString())
    throw makeJsError(env, "INVALID_ARGUMENT", "load(path: string, device: string, precision?: string)");
  const bool exact = optString(info[2]) == "exact";
  auto* w = new LoadWorker(env, info[0].As<Napi::String>(), info[1].As<Napi::String>(), exact);
  auto p = w->Promise();
  w->Queue();
  return p;
}

// ---------------------------------------------------------------------------------------------
// Forward with captures

namespace {

struct CaptureOut {
  CaptureSlot slot;
  ReducedCapture r;
};

}  // namespace

namespace {
std::mutex precisionMutex;
std::condition_variable precisionChanged;
int precisionRunning = 0;  // CUDA runs in flight, all under precisionExact
bool precisionExact = false;
int precisionWaiting[2] = {0, 0};  // runs waiting, by policy (index: exact)
}  // namespace

PrecisionScope::PrecisionScope(const ModelState& st) : cuda_(st.device.is_cuda()), exact_(st.exactPrecision) {
  if (!cuda_) return;
  std::unique_lock<std::mutex> lock(precisionMutex);
  ++precisionWaiting[exact_];
  precisionChanged.wait(lock, [&] { return precisionRunning == 0 || (precisionExact == exact_ && precisionWaiting[!exact_] == 0); });
  --precisionWaiting[exact_];
  if (precisionRunning == 0) {
    // TF32 is a process-wide switch in libtorch: set it while no other run is in flight.
    at::globalContext().setAllowTF32CuDNN(!exact_);
    at::globalContext().setAllowTF32CuBLAS(!exact_);
    precisionExact = exact_;
  }
  ++precisionRunning;
}

PrecisionScope::~PrecisionScope() {
  if (!cuda_) return;
  std::lock_guard<std::mutex> lock(precisionMutex);
  if (--precisionRunning == 0) precisionChanged.notify_all();
}

class ForwardWorker : public FsWorker {
 public:
  ForwardWorker(Napi::Env env, std::shared_ptr<ModelState> st, JsInput input, std::set<std::string> names, ReduceSpec reduce, bool optimize,
                bool capturesOnly, bool cudaGraphs)
      : FsWorker(env, "featscope.forward", "FORWARD_FAILED"),
        st_(std::move(st)),
        in_(std::move(input)),
        names_(std::move(names)),
        reduce_(std::move(reduce)),
        optimize_(optimize),
        capturesOnly_(capturesOnly),
        cudaGraphs_(cudaGraphs) {}

 protected:
  void Run() override {
    c10::InferenceMode guard;
    auto hf = st_->hooked(names_, true, optimize_, capturesOnly_);
    optimized_ = hf->optimized != nullptr;
    fallback_ = hf->fallback;
    PrecisionScope precision(*st_);
    at::Tensor x = in_.forForward(*st_);
    const auto el = st_->cudaGraphs.run(hf, st_->module, x, cudaGraphs_, &graphNote_);  // eager, or a CUDA graph replay
    bool usedDevice = false;
    DeviceSyncGuard syncOnFailure{&usedDevice, st_->device.index()};
    // CUDA: the output and every capture go device-to-host into one pooled pinned arena, on the
    // current stream, with one synchronisation. CPU: libtorch's storages are handed to JS as they
    // are (no copy), unless FEATSCOPE_ARENA_ON_CPU=1 (tests of the arena path).
    const bool arena = st_->device.is_cuda() || arenaOnCpu();
    if (el[0].isTensor()) {
      output_ = arena ? el[0].toTensor().to(at::kFloat) : toHostFloat(el[0].toTensor(), &usedDevice);
    } else {
      outputType_ = el[0].tagKind();
      outputValue_ = toHostValue(el[0], &usedDevice);  // a dict, a tuple of lists of dicts, ... (structured.h)
    }
    for (auto& c : unpackCaptures(*hf, el)) captures_.push_back({c.slot, reduceCapture(c.tensor, reduce_, &usedDevice, arena)});
    if (arena) {
      std::vector<at::Tensor*> all{&output_};
      for (auto& c : captures_)
        for (at::Tensor* t : {&c.r.tensor, &c.r.statsMax, &c.r.statsMean}) all.push_back(t);
      // Set first: a failure part-way must still synchronise before the arena can be reused.
      if (st_->device.is_cuda()) usedDevice = true;
      copyToArena(all, st_->device.is_cuda());
    }
    if (usedDevice) torch::cuda::synchronize(st_->device.index());
  }

  Napi::Value Result() override {
    Napi::Env env = Env();
    // The input is featscope's own copy: an output or capture that is the input itself may be
    // handed to JS without another copy, since the caller's array is not involved.
    TensorExporter ex(env, &st_->storages);
    Napi::Object res = Napi::Object::New(env);
    if (output_.defined()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("shape", shapeToJs(env, output_.sizes()));
      o.Set("data", ex.toFloat32Array(output_));
      res.Set("output", o);
    } else {
      res.Set("output", env.Null());
      res.Set("outputType", outputType_);
      if (outputValue_.kind != HostValue::kNone) res.Set("outputValue", hostValueToJs(env, ex, outputValue_));
    }
    Napi::Array caps = Napi::Array::New(env, captures_.size());
    for (size_t i = 0; i < captures_.size(); ++i) {
      const auto& c = captures_[i];
      caps.Set(i, captureToJs(env, ex, c.slot.name, c.slot.layer, c.slot.call, c.r));
    }
    res.Set("captures", caps);
    // release(): frees the output and captures now (lib/model.ts: result.release, Symbol.dispose).
    res.Set("release", ex.releaseFunction());
    res.Set("optimized", optimized_);
    if (!fallback_.empty()) res.Set("fallback", fallback_);
    res.Set("cudaGraph", graphNote_.replayed);
    if (!graphNote_.fallback.empty()) res.Set("cudaGraphFallback", graphNote_.fallback);
    return res;
  }

 private:
  std::shared_ptr<ModelState> st_;
  JsInput in_;
  std::set<std::string> names_;
  ReduceSpec reduce_;
  bool optimize_;
  bool capturesOnly_;
  bool cudaGraphs_;
  GraphNote graphNote_;
  bool optimized_ = false;
  std::string fallback_;
  at::Tensor output_;
  std::string outputType_;
  HostValue outputValue_;
  std::vector<CaptureOut> captures_;
};

// ---------------------------------------------------------------------------------------------
// The JS class

Napi::Function ModelWrap::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeModel",
                                 {InstanceMethod("layers", &ModelWrap::Layers), InstanceMethod("info", &ModelWrap::Info),
                                  InstanceMethod("forward", &ModelWrap::Forward), InstanceMethod("gradcam", &ModelWrap::GradCam),
                                  InstanceMethod("backward", &ModelWrap::Backward), InstanceMethod("parameters", &ModelWrap::Parameters),
                                  InstanceMethod("dispose", &ModelWrap::Dispose)});
  envData(env)->modelCtor = Napi::Persistent(f);
  return f;
}

Napi::Object ModelWrap::NewInstance(Napi::Env env, std::shared_ptr<ModelState> state) {
  Napi::Object o = envData(env)->modelCtor.New({Napi::External<std::shared_ptr<ModelState>>::New(env, &state)});
  return o;
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw makeJsError(info.Env(), "INVALID_ARGUMENT", "NativeModel is created by load(), not with new");
  state_ = *info[0].As<Napi::External<std::shared_ptr<ModelState>>>().Data();
}

std::shared_ptr<ModelState> ModelWrap::live(Napi::Env env) {
  if (!state_) throw makeJsError(env, "MODEL_DISPOSED", "this model was disposed; load it again with loadModel()");
  return state_;
}

Napi::Value ModelWrap::Layers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = live(env);
  Napi::Array a = Napi::Array::New(env, st->layers.size());
  for (size_t i = 0; i < st->layers.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", st->layers[i].name);
    o.Set("type", st->layers[i].type);
    o.Set("calls", st->layers[i].calls);
    if (st->layers[i].inLoop) o.Set("inLoop", true);
    a.Set(i, o);
  }
  return a;
}

Napi::Value ModelWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = live(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("path", st->path);
  o.Set("device", st->device.str());
  o.Set("type", moduleTypeName(st->module));
  o.Set("metadata", st->metadata);
  o.Set("precision", st->exactPrecision ? "exact" : "fast");
  {
    std::lock_guard<std::mutex> lock(st->cacheMutex);
    o.Set("cachedGraphs", static_cast<double>(st->cache.size()));
  }
  return o;
}

static std::vector<float> readTriple(Napi::Env env, Napi::Object o, const char* key, int64_t channels) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray() || v.As<Napi::Array>().Length() != static_cast<uint32_t>(channels))
    throw makeJsError(env, "INVALID_INPUT",
                      std::string("uint8 input needs ") + key + ": one number per channel (" + std::to_string(channels) + ")");
  std::vector<float> out;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const double d = optNumber(a.Get(i)).value_or(std::nan(""));
    if (!std::isfinite(d) || (std::string(key) == "std" && d <= 0))
      throw makeJsError(env, "INVALID_INPUT",
                        std::string("uint8 input: ") + key + "[" + std::to_string(i) + "] must be a finite number" +
                            (std::string(key) == "std" ? " above 0" : ""));
    out.push_back(static_cast<float>(d));
  }
  return out;
}

JsInput JsInput::read(const Napi::CallbackInfo& info, c10::Device device, int normArg) {
  Napi::Env env = info.Env();
  std::vector<int64_t> shape = argIntList(env, info[1], "shape");
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] <= 0) throw makeJsError(env, "INVALID_INPUT", "input shape has a dimension <= 0");
    if (n > (int64_t{1} << 53) / shape[i])
      throw makeJsError(env, "INVALID_INPUT", "input shape holds more than 2^53 values; no Float32Array is that long");
    n *= shape[i];
  }
  const bool isTyped = info[0].IsTypedArray();
  const napi_typedarray_type type = isTyped ? info[0].As<Napi::TypedArray>().TypedArrayType() : napi_float32_array;
  const bool pixels = isTyped && type == napi_uint8_array && normArg >= 0;
  if (!isTyped || (type != napi_float32_array && !pixels))
    throw makeJsError(env, "INVALID_INPUT",
                      normArg >= 0 ? "input data must be a Float32Array or a Uint8Array of pixels" : "input data must be a Float32Array");
  Napi::TypedArray data = info[0].As<Napi::TypedArray>();
  if (static_cast<int64_t>(data.ElementLength()) != n)
    throw makeJsError(env, "INVALID_INPUT",
                      "input data has " + std::to_string(data.ElementLength()) + " values but its shape needs " + std::to_string(n));
  JsInput in;
  if (pixels) {
    if (shape.size() < 2) throw makeJsError(env, "INVALID_INPUT", "uint8 input needs a shape [N, C, ...]");
    if (!info[normArg].IsObject()) throw makeJsError(env, "INVALID_INPUT", "uint8 input needs { mean, std }, one value per channel");
    Napi::Object norm = info[normArg].As<Napi::Object>();
    in.mean = readTriple(env, norm, "mean", shape[1]);
    in.stdev = readTriple(env, norm, "std", shape[1]);
  }
  // Copy now: the worker thread must not read memory JS can take away while it runs (a transfer
  // plus GC, or a resizable buffer shrunk mid-forward). ElementLength() was read just above, in
  // this same synchronous call, so the copy stays inside the buffer.
  const void* src = static_cast<const char*>(data.ArrayBuffer().Data()) + data.ByteOffset();
  try {
    in.host = stageHostCopy(src, shape, pixels ? at::kByte : at::kFloat, device);
  } catch (...) {
    ErrorInfo e = describeException(std::current_exception(), "INVALID_INPUT", "copying the input");
    throw makeJsError(env, e.code, e.message);
  }
  in.shape = std::move(shape);
  return in;
}

at::Tensor JsInput::forForward(const ModelState& st) const {
  // A graph that writes to its input writes to featscope's copy, never to the caller's array.
  return toDeviceInput(host, st.device, mean, stdev);
}

at::Tensor JsInput::forGrad(const ModelState& st) const {
  // The copy belongs to this one run, so on the CPU it can be the autograd leaf itself.
  at::Tensor t = toDeviceInput(host, st.device, mean, stdev);
  return t.requires_grad_(true);
}

std::set<std::string> readLayerNames(Napi::Env env, const ModelState& st, Napi::Value v) {
  std::set<std::string> names;
  for (auto& n : optStringList(env, v, "layers")) {
    if (!st.layerNames.count(n)) throw makeJsError(env, "UNKNOWN_LAYER", "unknown layer " + n);
    names.insert(n);
  }
  return names;
}

Napi::Value ModelWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = live(env);
  // info[6]: { mean, std } for a Uint8Array of pixels.
  JsInput input = JsInput::read(info, st->device, 6);
  std::set<std::string> names = readLayerNames(env, *st, info[2]);
  ReduceSpec reduce = readReduceSpec(env, info[3]);
  const bool optimize = optBool(info[4]).value_or(false);
  // Captures only (Model.capture): the layers after the last capture are not run.
  const bool capturesOnly = optBool(info[5]).value_or(false);
  // info[7]: CUDA graphs (native/cuda_graphs.h), on unless turned off (lib/model.ts: the call's or loadModel's cudaGraphs).
  const bool cudaGraphs = optBool(info[7]).value_or(true);
  auto* w = new ForwardWorker(env, st, std::move(input), std::move(names), std::move(reduce), optimize, capturesOnly, cudaGraphs);
  auto p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw makeJsError(env, "INVALID_ARGUMENT", "setNumThreads(n: positive integer)");
  const int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw makeJsError(env, "INVALID_ARGUMENT", "setNumThreads(n): n must be at least 1, got " + std::to_string(n));
  at::set_num_threads(n);
  return env.Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

// Running forwards hold their own reference to the state: they finish, and the module is freed
// when the last of them is done.
Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

}  // namespace featscope
