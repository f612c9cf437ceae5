// CUDA graphs for hooked forwards. Once a (hooked forward, input shape) combination has run on a
// CUDA device, its next run captures the forward into an at::cuda::CUDAGraph with a static input
// buffer and static capture outputs; later runs copy the input in, replay the graph and copy the
// outputs out (device to device, on the replaying stream) before the next replay can overwrite
// them. A forward that cannot be captured (a host sync, a CPU op, data-dependent control flow, an
// output that is not tensors) runs eagerly from then on, and the run says why once.
//
// The CUDA code is compiled only against a CUDA libtorch (FEATSCOPE_HAVE_CUDA, set by
// CMakeLists.txt); this header needs no CUDA headers, and on a CPU-only build run() is the eager
// forward.
#pragma once
#include <torch/script.h>

#include <memory>
#include <string>
#include <vector>

#include "graph_hooks.h"

namespace featscope {

// What CUDA graphs did for one forward.
struct GraphNote {
  bool replayed = false;  // the forward was a replay of a captured CUDA graph
  std::string fallback;   // non-empty: this combination cannot be captured, and why (it ran eagerly)
};

class CudaGraphs {
 public:
  CudaGraphs();
  ~CudaGraphs();
  CudaGraphs(const CudaGraphs&) = delete;
  CudaGraphs& operator=(const CudaGraphs&) = delete;

  // hf->run(self, x), through a CUDA graph when `enabled`, x lies on a CUDA device and this
  // (hf, x's shape) was seen before. The elements returned are the run's own (copies of the
  // graph's static outputs), safe to use after the next replay. Thread-safe.
  std::vector<c10::IValue> run(const std::shared_ptr<HookedForward>& hf, const torch::jit::Module& self, const at::Tensor& x, bool enabled,
                               GraphNote* note);

  // Captured graphs held (tests and info()).
  size_t captured() const;

  // True when featscope was built against a CUDA libtorch (the CUDA code is in).
  static bool built();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace featscope
