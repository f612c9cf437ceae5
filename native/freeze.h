// Freezing a hooked forward: torch.jit.freeze, and on the CPU optimize_for_inference, on a clone of
// the model whose forward is the hooked forward (Model.forward with optimize; lib/model.ts).
#pragma once
#include <torch/script.h>

#include <set>
#include <string>
#include <unordered_set>

namespace featscope {

struct HookedForward;

// A clone of the model whose forward is a hooked forward, frozen and optimised
// (optimize_for_inference on the CPU, freeze on CUDA). Removes its forward (which holds the
// folded weights as constants) from the shared compilation unit when the last run is done.
struct FrozenForward {
  torch::jit::Module module;
  // Data of the tensor constants freezing made (folded weights, precomputed values): an output that
  // is one of them is copied before it leaves, so that no one writes into the graph's constants.
  std::unordered_set<const void*> constants;
  explicit FrozenForward(torch::jit::Module m) : module(std::move(m)) {}
  ~FrozenForward();
  FrozenForward(const FrozenForward&) = delete;
  FrozenForward& operator=(const FrozenForward&) = delete;
};

// Freezes and optimises `hf` (built with guardInPlace for `wanted`) on a clone of `module` that
// keeps the captures as graph outputs: sets hf.optimized, or hf.fallback to the reason the exact
// graph is kept (a looped capture, a module attribute written in forward, freezing failed).
void optimizeHookedForward(const torch::jit::Module& module, const std::set<std::string>& wanted, HookedForward& hf);

}  // namespace featscope
