#include "cuda_graphs.h"

#ifdef FEATSCOPE_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <list>
#include <mutex>

// Named by the CUDA compile leg (scripts/test-cuda-build.sh: nm -D) to check that this file's
// CUDA code, not the CPU stand-in below, went into the addon.
extern "C" __attribute__((visibility("default"), used)) const char featscope_cuda_graphs_built[] = "featscope CUDA graphs";
#endif

namespace featscope {

#ifndef FEATSCOPE_HAVE_CUDA

// A CPU-only libtorch: no CUDA tensor can reach run(), which is the eager forward.
struct CudaGraphs::Impl {};
CudaGraphs::CudaGraphs() = default;
CudaGraphs::~CudaGraphs() = default;
std::vector<c10::IValue> CudaGraphs::run(const std::shared_ptr<HookedForward>& hf, const torch::jit::Module& self, const at::Tensor& x,
                                         bool enabled, GraphNote* note) {
  return hf->run(self, x);
}
size_t CudaGraphs::captured() const { return 0; }
bool CudaGraphs::built() { return false; }

#else

namespace {

// Eager runs on the side stream before capture: the first run of a hooked graph on a device
// initialises cuBLAS/cuDNN handles and workspaces and lets the profiling executor settle, none of
// which may happen inside a capture (PyTorch's torch.cuda.graph documentation does the same).
constexpr int kWarmups = 2;
// Combinations remembered per model (seen or captured), most recent first. Each captured graph
// keeps its own memory pool (the forward's activations), so the list is short.
constexpr size_t kMaxEntries = 6;

// A deep copy of a run's output element: tensors cloned on the current stream, containers
// rebuilt, plain values kept. Anything else cannot come out of a replay safely.
c10::IValue copyOut(const c10::IValue& v) {
  if (v.isTensor()) return v.toTensor().clone();
  if (v.isNone() || v.isInt() || v.isDouble() || v.isBool() || v.isString()) return v;
  if (v.isTensorList()) {
    c10::List<at::Tensor> out;
    for (at::Tensor t : v.toTensorList()) out.push_back(t.clone());
    return out;
  }
  if (v.isTuple()) {
    std::vector<c10::IValue> el;
    for (const auto& e : v.toTupleRef().elements()) el.push_back(copyOut(e));
    return c10::ivalue::Tuple::create(std::move(el));
  }
  if (v.isList()) {
    auto in = v.toList();
    c10::impl::GenericList out(in.elementType());
    for (size_t i = 0; i < in.size(); ++i) out.push_back(copyOut(in.get(i)));
    return out;
  }
  if (v.isGenericDict()) {
    auto in = v.toGenericDict();
    c10::impl::GenericDict out(in.keyType(), in.valueType());
    for (const auto& kv : in) out.insert(kv.key(), copyOut(kv.value()));
    return out;
  }
  throw std::runtime_error(std::string("the forward returns a ") + v.tagKind() + ", which a graph replay cannot hand out");
}

std::vector<c10::IValue> copyOut(const std::vector<c10::IValue>& el) {
  std::vector<c10::IValue> out;
  out.reserve(el.size());
  for (const auto& v : el) out.push_back(copyOut(v));
  return out;
}

// The first line of an exception's message, short enough for a debug note.
std::string firstLine(const std::exception& e) {
  const auto* ce = dynamic_cast<const c10::Error*>(&e);
  std::string m = ce ? ce->what_without_backtrace() : e.what();
  auto nl = m.find('\n');
  if (nl != std::string::npos) m.resize(nl);
  if (m.size() > 240) m = m.substr(0, 237) + "...";
  return m;
}

}  // namespace

struct CudaGraphEntry {
  std::shared_ptr<HookedForward> hf;  // the key (held, so that the pointer cannot be reused)
  std::vector<int64_t> shape;
  c10::DeviceIndex device = 0;

  std::mutex m;  // one capture or replay of this combination at a time
  bool seen = false;
  std::string fallback;  // why it cannot be captured ("" until a capture failed)
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  at::Tensor input;                  // the static input the graph reads
  std::vector<c10::IValue> outputs;  // the static outputs the graph writes
  at::cuda::CUDAEvent copied;        // recorded after the last replay's copies out

  ~CudaGraphEntry() {
    // A replay's copies may still be in flight when the last reference goes: let them finish
    // before the graph's memory returns to the allocator.
    try {
      copied.synchronize();
    } catch (...) {
    }
    outputs.clear();
    input.reset();
    graph.reset();
  }
};

struct CudaGraphs::Impl {
  mutable std::mutex m;
  std::list<std::shared_ptr<CudaGraphEntry> > entries;  // most recent first

  std::shared_ptr<CudaGraphEntry> find(const std::shared_ptr<HookedForward>& hf, const at::Tensor& x) {
    std::lock_guard<std::mutex> lock(m);
    const auto shape = x.sizes().vec();
    for (auto it = entries.begin(); it != entries.end(); ++it) {
      if ((*it)->hf == hf && (*it)->shape == shape && (*it)->device == x.device().index()) {
        entries.splice(entries.begin(), entries, it);
        return entries.front();
      }
    }
    auto e = std::make_shared<CudaGraphEntry>();
    e->hf = hf;
    e->shape = shape;
    e->device = x.device().index();
    entries.push_front(e);
    // Runs in flight keep their own reference to an evicted entry.
    if (entries.size() > kMaxEntries) entries.pop_back();
    return e;
  }
};

CudaGraphs::CudaGraphs() : impl_(std::make_unique<Impl>()) {}
CudaGraphs::~CudaGraphs() = default;
bool CudaGraphs::built() { return true; }

size_t CudaGraphs::captured() const {
  std::lock_guard<std::mutex> lock(impl_->m);
  size_t n = 0;
  for (const auto& e : impl_->entries) n += e->graph != nullptr;
  return n;
}

namespace {

// Warms up, then captures hf's forward on a side stream (a capture cannot use the default stream)
// in thread-local mode, so that other threads' forwards on the same GPU do not break it. Throws
// when the forward cannot be captured; the stream is out of capture mode then.
void capture(CudaGraphEntry& e, const HookedForward& hf, const torch::jit::Module& self, const at::Tensor& x) {
  const c10::DeviceIndex dev = x.device().index();
  at::cuda::CUDAStream current = at::cuda::getCurrentCUDAStream(dev);
  at::cuda::CUDAStream side = at::cuda::getStreamFromPool(false, dev);
  at::cuda::CUDAEvent inputReady;
  inputReady.record(current);
  {
    c10::cuda::CUDAStreamGuard onSide(side);
    inputReady.block(side);
    at::Tensor input = at::empty_like(x, at::MemoryFormat::Contiguous);
    input.copy_(x, /*non_blocking=*/true);
    for (int i = 0; i < kWarmups; ++i) (void)copyOut(hf.run(self, input));  // also checks the output types
    side.synchronize();                                                     // warm-up errors surface here, outside the capture
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    std::vector<c10::IValue> outputs;
    graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
    try {
      outputs = hf.run(self, input);
    } catch (...) {
      try {
        graph->capture_end();  // ends the (invalidated) capture
      } catch (...) {
      }
      outputs.clear();
      (void)cudaGetLastError();  // the capture error must not surface at an unrelated later check
      throw;
    }
    try {
      graph->capture_end();
    } catch (...) {
      outputs.clear();
      (void)cudaGetLastError();
      throw;
    }
    e.input = std::move(input);
    e.outputs = std::move(outputs);
    e.graph = std::move(graph);
  }
  at::cuda::CUDAEvent captured;
  captured.record(side);
  captured.block(current);
}

}  // namespace

std::vector<c10::IValue> CudaGraphs::run(const std::shared_ptr<HookedForward>& hf, const torch::jit::Module& self, const at::Tensor& x,
                                         bool enabled, GraphNote* note) {
  if (!enabled || !x.is_cuda()) return hf->run(self, x);
  auto e = impl_->find(hf, x);
  std::unique_lock<std::mutex> lock(e->m);
  if (!e->fallback.empty()) {
    lock.unlock();
    if (note) note->fallback = e->fallback;
    return hf->run(self, x);
  }
  if (!e->seen) {
    // First sight of this combination: run eagerly (most layer sets are asked for once).
    e->seen = true;
    lock.unlock();
    return hf->run(self, x);
  }
  c10::cuda::CUDAGuard onDevice(x.device());
  if (!e->graph) {
    try {
      capture(*e, *hf, self, x);
    } catch (const std::exception& ex) {
      e->fallback = "CUDA graph capture failed: " + firstLine(ex);
      lock.unlock();
      if (note) note->fallback = e->fallback;
      return hf->run(self, x);
    }
  }
  at::cuda::CUDAStream stream = at::cuda::getCurrentCUDAStream(x.device().index());
  e->copied.block(stream);  // the previous replay's copies out are done before its outputs are overwritten
  e->input.copy_(x, /*non_blocking=*/true);
  e->graph->replay();
  auto out = copyOut(e->outputs);
  e->copied.record(stream);
  if (note) note->replayed = true;
  return out;
}

#endif

}  // namespace featscope
