#include "pt2_model.h"

#include <c10/core/DeviceGuard.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include "args.h"
#include "errors.h"
#include "workers.h"

#ifdef FEATSCOPE_HAVE_AOTI
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <map>
#include <set>
#include <sstream>

#include "capture_ops.h"
#include "model.h"
#include "tensor_bridge.h"
#endif

namespace featscope {

#ifndef FEATSCOPE_HAVE_AOTI

Napi::Value LoadPt2Model(const Napi::CallbackInfo& info) {
  std::string path = optString(info[0]).value_or("(no path)");
  auto d = Napi::Promise::Deferred::New(info.Env());
  d.Reject(makeJsError(info.Env(), "FORMAT_UNSUPPORTED",
                       "cannot load " + path +
                           ": AOTInductor packages (.pt2) need featscope built against libtorch 2.6 or newer "
                           "(it has torch::inductor::AOTIModelPackageLoader); this build uses libtorch " TORCH_VERSION
                           ". Rebuild against a newer libtorch (npm run build:native, README \"How libtorch is found\"), "
                           "or export TorchScript instead (scripts/export-model.py OUT.pt)")
               .Value());
  return d.Promise();
}

bool InitPt2(Napi::Env, Napi::Object) { return false; }

#else

namespace {

struct Tap {
  std::string name, layer, type;
  int call = 0;
};

struct Pt2State {
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  std::string path, metadata, tapsFlag;
  std::vector<Tap> taps;
  std::vector<std::string> layerOrder;    // tapped layers, first call order
  std::map<std::string, int> layerCalls;  // tapped layer -> calls
  std::map<std::string, std::string> layerType;
  std::set<std::string> modules;  // every module of the exported model
  std::vector<int64_t> inputChw;  // [C, H, W] fixed at export
  c10::Device device{c10::kCPU};  // the device the package was compiled for (export-model.py --device)
};

std::vector<std::string> splitLines(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

std::string getMeta(const std::unordered_map<std::string, std::string>& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  if (it == m.end())
    throw FsError("MODEL_INVALID", "AOTInductor package " + path + " has no featscope tap metadata (" + key +
                                       "); export it with scripts/export-model.py --format pt2 --taps all");
  return it->second;
}

class Pt2LoadWorker : public FsWorker {
 public:
  Pt2LoadWorker(Napi::Env env, std::string path, std::string device)
      : FsWorker(env, "featscope.loadPt2", "MODEL_INVALID"), path_(std::move(path)), deviceSpec_(std::move(device)) {}

 protected:
  void Run() override {
    auto st = std::make_shared<Pt2State>();
    st->path = path_;
    // 'cuda' / 'cuda:N' are checked first (CUDA_UNAVAILABLE, CUDA_DEVICE_NOT_FOUND); a CUDA package
    // is made on the current device, so the loader is built under a guard for that device.
    const bool askCpu = deviceSpec_ == "cpu", askAuto = deviceSpec_ == "auto";
    const c10::Device asked = askAuto ? c10::Device(c10::kCPU) : parseDevice(deviceSpec_);
    try {
      c10::OptionalDeviceGuard guard;
      if (asked.is_cuda()) guard.reset_device(asked);
      st->loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path_);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      auto nl = msg.find('\n');
      throw FsError("MODEL_INVALID", "cannot load AOTInductor package " + path_ +
                                         ": it is not an AOTInductor package made by this libtorch (" TORCH_VERSION
                                         "), it is truncated, or it was compiled for CUDA and this libtorch " +
                                         std::string(torch::cuda::is_available() ? "failed to load it" : "sees no CUDA device") +
                                         "; export it again with scripts/export-model.py --format pt2 [--device cpu|cuda] [libtorch: " +
                                         msg.substr(0, nl) + "]");
    }
    auto meta = st->loader->get_metadata();
    // The package's device: featscope's own key (export-model.py --device), else AOTInductor's.
    std::string compiled = "cpu";
    for (const char* key : {"featscope.device", "AOTI_DEVICE_KEY"}) {
      auto it = meta.find(key);
      if (it != meta.end() && !it->second.empty()) {
        compiled = it->second;
        break;
      }
    }
    if (compiled.rfind("cuda", 0) == 0) {
      if (askCpu)
        throw FsError("INVALID_ARGUMENT", "AOTInductor package " + path_ +
                                              " was compiled for CUDA (export-model.py --device cuda); load it with device 'cuda' or "
                                              "'auto', or export it again for the CPU (--device cpu)");
      st->device = askAuto ? parseDevice("cuda") : asked;
    } else if (compiled == "cpu") {
      if (asked.is_cuda())
        throw FsError("INVALID_ARGUMENT", "device " + deviceSpec_ + " for " + path_ +
                                              ": this AOTInductor package was compiled for the CPU, and a package runs only on the "
                                              "device it was compiled for; load it with device 'cpu' or 'auto', or export it again "
                                              "on a GPU machine with scripts/export-model.py --format pt2 --device cuda");
    } else {
      throw FsError("MODEL_INVALID", "AOTInductor package " + path_ + " was compiled for device " + compiled +
                                         "; featscope runs packages compiled for 'cpu' or 'cuda'");
    }
    st->metadata = getMeta(meta, "featscope.json", path_);
    st->tapsFlag = getMeta(meta, "featscope.taps_flag", path_);
    for (const auto& line : splitLines(getMeta(meta, "featscope.taps", path_), '\n')) {
      auto f = splitLines(line, '\t');
      if (f.size() != 4) throw FsError("MODEL_INVALID", "AOTInductor package " + path_ + ": malformed featscope.taps line " + line);
      Tap t{f[0], f[1], f[3], std::stoi(f[2])};
      if (!st->layerCalls.count(t.layer)) st->layerOrder.push_back(t.layer);
      st->layerCalls[t.layer]++;
      st->layerType[t.layer] = t.type;
      st->taps.push_back(std::move(t));
    }
    for (const auto& m : splitLines(getMeta(meta, "featscope.modules", path_), '\n')) st->modules.insert(m);
    for (const auto& d : splitLines(getMeta(meta, "featscope.input", path_), ',')) st->inputChw.push_back(std::stoll(d));
    state_ = st;
  }
  Napi::Value Result() override;

 private:
  std::string path_, deviceSpec_;
  std::shared_ptr<Pt2State> state_;
};

class Pt2Wrap : public Napi::ObjectWrap<Pt2Wrap> {
 public:
  static Napi::FunctionReference* ctor;
  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "NativePt2Model",
                                   {InstanceMethod("layers", &Pt2Wrap::Layers), InstanceMethod("info", &Pt2Wrap::Info),
                                    InstanceMethod("forward", &Pt2Wrap::Forward), InstanceMethod("gradcam", &Pt2Wrap::NoGrad),
                                    InstanceMethod("backward", &Pt2Wrap::NoGrad), InstanceMethod("parameters", &Pt2Wrap::NoParameters),
                                    InstanceMethod("explainLayer", &Pt2Wrap::ExplainLayer), InstanceMethod("dispose", &Pt2Wrap::Dispose)});
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    env.AddCleanupHook([] {
      delete ctor;
      ctor = nullptr;
    });
    return f;
  }
  explicit Pt2Wrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Pt2Wrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw makeJsError(info.Env(), "INVALID_ARGUMENT", "NativePt2Model is created by loadPt2(), not with new");
    st_ = *info[0].As<Napi::External<std::shared_ptr<Pt2State> > >().Data();
  }

 private:
  std::shared_ptr<Pt2State> st_;
  std::shared_ptr<Pt2State> live(Napi::Env env) {
    if (!st_) throw makeJsError(env, "MODEL_DISPOSED", "this model was disposed; load it again with loadModel()");
    return st_;
  }
  Napi::Value Layers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = live(env);
    Napi::Array a = Napi::Array::New(env, st->layerOrder.size());
    for (size_t i = 0; i < st->layerOrder.size(); ++i) {
      const auto& n = st->layerOrder[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", n);
      o.Set("type", st->layerType[n]);
      o.Set("calls", st->layerCalls[n]);
      a.Set(i, o);
    }
    return a;
  }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = live(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", st->path);
    o.Set("device", st->device.str());
    o.Set("type", "AOTInductor package");
    o.Set("metadata", st->metadata);
    o.Set("precision", "fast");
    o.Set("cachedGraphs", 0);
    o.Set("format", "pt2");
    o.Set("tapsFlag", st->tapsFlag);
    return o;
  }
  // null, or the message for a name that is a module of the model but was not exported as a tap.
  Napi::Value ExplainLayer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = live(env);
    std::string n = argString(env, info[0], "layer");
    if (st->layerCalls.count(n) || !st->modules.count(n)) return env.Null();
    return Napi::String::New(env, "layer " + n + " was not exported as a tap of " + st->path + " (exported with --taps " + st->tapsFlag +
                                      "); export it again with scripts/export-model.py --format pt2 --taps all, or add " + n +
                                      " to --taps");
  }
  Napi::Value NoGrad(const Napi::CallbackInfo& info) {
    throw makeJsError(
        info.Env(), "NOT_SUPPORTED_PT2",
        "gradients (Grad-CAM, backward, saliency, attacks) are not supported on AOTInductor packages (" + live(info.Env())->path +
            "): the compiled graph runs forward only. Use the TorchScript export of the model (scripts/export-model.py OUT.pt)");
  }
  Napi::Value NoParameters(const Napi::CallbackInfo& info) {
    throw makeJsError(
        info.Env(), "NOT_SUPPORTED_PT2",
        "parameters() is not supported on AOTInductor packages (" + live(info.Env())->path +
            "): their weights are compiled constants. Use the TorchScript export of the model (scripts/export-model.py OUT.pt)");
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    st_.reset();
    return info.Env().Undefined();
  }
  Napi::Value Forward(const Napi::CallbackInfo& info);
};
Napi::FunctionReference* Pt2Wrap::ctor = nullptr;

Napi::Value Pt2LoadWorker::Result() { return Pt2Wrap::ctor->New({Napi::External<std::shared_ptr<Pt2State> >::New(Env(), &state_)}); }

struct TapOut {
  const Tap* tap;
  ReducedCapture r;
};

class Pt2ForwardWorker : public FsWorker {
 public:
  Pt2ForwardWorker(Napi::Env env, std::shared_ptr<Pt2State> st, JsInput in, std::set<std::string> names, ReduceSpec reduce)
      : FsWorker(env, "featscope.forward", "FORWARD_FAILED"),
        st_(std::move(st)),
        in_(std::move(in)),
        names_(std::move(names)),
        reduce_(std::move(reduce)) {}

 protected:
  void Run() override {
    c10::InferenceMode guard;
    // featscope's own copy of the caller's array (JsInput::read): JS cannot detach or shrink it
    // while the package runs. A CUDA package gets it on its device.
    c10::OptionalDeviceGuard onDevice;
    at::Tensor x = in_.host;
    if (st_->device.is_cuda()) {
      onDevice.reset_device(st_->device);
      x = x.to(st_->device);
    }
    auto outs = st_->loader->run({x});
    if (outs.size() != st_->taps.size() + 1)
      throw FsError("FORWARD_FAILED", "AOTInductor package " + st_->path + " returned " + std::to_string(outs.size()) +
                                          " outputs; its metadata lists " + std::to_string(st_->taps.size()) + " taps (export it again)");
    bool used = false;
    output_ = toHostFloat(outs[0], &used);
    for (size_t i = 0; i < st_->taps.size(); ++i)
      if (names_.count(st_->taps[i].layer)) caps_.push_back({&st_->taps[i], reduceCapture(outs[i + 1], reduce_, &used)});
    if (used) torch::cuda::synchronize(st_->device.index());  // the copies to the host are done
  }
  Napi::Value Result() override {
    Napi::Env env = Env();
    TensorExporter ex(env);
    Napi::Object res = Napi::Object::New(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("shape", shapeToJs(env, output_.sizes()));
    o.Set("data", ex.toFloat32Array(output_));
    res.Set("output", o);
    Napi::Array caps = Napi::Array::New(env, caps_.size());
    for (size_t i = 0; i < caps_.size(); ++i) {
      const auto& c = caps_[i];
      caps.Set(i, captureToJs(env, ex, c.tap->name, c.tap->layer, c.tap->call, c.r));
    }
    res.Set("captures", caps);
    res.Set("release", ex.releaseFunction());
    return res;
  }

 private:
  std::shared_ptr<Pt2State> st_;
  JsInput in_;
  std::set<std::string> names_;
  ReduceSpec reduce_;
  at::Tensor output_;
  std::vector<TapOut> caps_;
};

Napi::Value Pt2Wrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = live(env);
  JsInput input = JsInput::read(info);
  const auto& s = input.shape;
  if (s.size() != 4 || s[1] != st->inputChw[0] || s[2] != st->inputChw[1] || s[3] != st->inputChw[2] || s[0] > 4096) {
    std::string got;
    for (auto d : s) got += (got.empty() ? "" : ",") + std::to_string(d);
    throw makeJsError(env, "INVALID_INPUT",
                      "input shape [" + got + "] does not fit AOTInductor package " + st->path + ", compiled for [N," +
                          std::to_string(st->inputChw[0]) + "," + std::to_string(st->inputChw[1]) + "," + std::to_string(st->inputChw[2]) +
                          "] with 1 <= N <= 4096; resize the input, or export again with --size");
  }
  std::set<std::string> names;
  for (auto& n : optStringList(env, info[2], "layers")) {
    if (!st->layerCalls.count(n)) {
      if (st->modules.count(n))
        throw makeJsError(env, "LAYER_NOT_EXPORTED",
                          "layer " + n + " was not exported as a tap (exported with --taps " + st->tapsFlag +
                              "); export again with scripts/export-model.py --format pt2 --taps all, or add it to --taps");
      throw makeJsError(env, "UNKNOWN_LAYER", "unknown layer " + n);
    }
    names.insert(n);
  }
  ReduceSpec reduce = readReduceSpec(env, info[3]);
  auto* w = new Pt2ForwardWorker(env, st, std::move(input), std::move(names), std::move(reduce));
  auto p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

Napi::Value LoadPt2Model(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsString())
    throw makeJsError(env, "INVALID_ARGUMENT", "loadPt2(path: string, device: string, precision?: string)");
  std::string device = argString(env, info[1], "device");
  std::string path = argString(env, info[0], "path");
  auto* w = new Pt2LoadWorker(env, path, device);
  auto p = w->Promise();
  w->Queue();
  return p;
}

bool InitPt2(Napi::Env env, Napi::Object exports) {
  exports.Set("NativePt2Model", Pt2Wrap::Init(env));
  return true;
}

#endif

}  // namespace featscope
