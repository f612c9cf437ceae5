// Forward hooks for TorchScript modules, made by rewriting the forward graph.
//
// libtorch has no runtime hook API for scripted or traced modules. We copy the module's forward
// graph, inline exactly the calls that lie on the path to a wanted submodule, take the output of
// each wanted submodule's forward call, and return (model output, captures...) as one tuple.
// The result runs as a standalone GraphFunction with the original module object as `self`.
#pragma once
#include <torch/script.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>

#include <memory>
#include <set>
#include <unordered_set>
#include <string>
#include <vector>

namespace featscope {

// One capture slot of a hooked forward: the k-th call of a submodule.
struct CaptureSlot {
  std::string layer;  // qualified module name, e.g. "layer1.0.relu"
  int call;           // 0-based call index in graph order
  std::string name;   // "layer1.0.relu" for call 0, "layer1.0.relu#1" for call 1
  // The module is called inside a loop somewhere: its slot is a List[Tensor] holding every call's
  // output in the order the calls ran (call indices are positions in that list).
  bool looped = false;
  // The module returns a tuple, list or dict of tensors: the slot holds it, and its tensors become
  // captures named `name:key` (structured.h).
  bool structured = false;
};

struct FrozenForward;  // freeze.h

struct HookedForward {
  std::shared_ptr<torch::jit::GraphFunction> fn;
  std::vector<CaptureSlot> slots;  // tuple elements 1..n, in graph order
  bool mutatesInput = false;       // the graph writes to its input in place (then it gets a copy)
  bool capturesOnly = false;       // element 0 is None: the layers after the last capture do not run
  // Set by optimizeHookedForward: the optimised graph (same outputs), or why there is none.
  std::shared_ptr<FrozenForward> optimized;
  std::string fallback;

  // Runs the forward (the optimised one when there is one) with `self` the model's module;
  // returns the (output, captures...) tuple's elements.
  std::vector<c10::IValue> run(const torch::jit::Module& self, const at::Tensor& x) const;
};

struct Captured {
  CaptureSlot slot;
  at::Tensor tensor;
};

// The captures in a run's output tuple (elements 1..n), in slot order with each looped slot
// expanded into its calls; calls in `if` branches that did not run are absent.
std::vector<Captured> unpackCaptures(const HookedForward& hf, const std::vector<c10::IValue>& elements);

struct LayerInfo {
  std::string name;
  std::string type;  // class name without module path or mangling: Conv2d, BasicBlock, ...
  int calls;         // how many places in one forward call it (a loop counts once)
  int order;         // position of its first call (-1 if never called)
  bool inLoop;       // one of those places is inside a loop: the number of calls varies
};

// Builds the hooked forward for `wanted` module names (all must exist). `guardInPlace` clones a
// capture where a later in-place op would change it (forward semantics of Python hooks); pass
// false when gradients of the captures are needed (a clone would cut them off from the graph).
// capturesOnly: the graph returns None in place of the model's output, and everything that only
// fed the output (the layers after the last capture) is removed as dead code.
HookedForward buildHookedForward(const torch::jit::Module& module, const std::set<std::string>& wanted, bool guardInPlace,
                                 bool capturesOnly = false);

// Every submodule with its type and call count, in call order (never-called ones last).
std::vector<LayerInfo> listLayers(const torch::jit::Module& module);

std::string moduleTypeName(const torch::jit::Module& m);

// FEATSCOPE_DEBUG_GRAPH is set (and not 0): the graphs built are printed to stderr.
bool debugGraphs();

// Every node of `block` and of the blocks nested in it, in program order (a node before its blocks).
template <typename F>
void forEachNode(torch::jit::Block* block, F&& visit) {
  for (torch::jit::Node* n : block->nodes()) {
    visit(n);
    for (torch::jit::Block* inner : n->blocks()) forEachNode(inner, visit);
  }
}

}  // namespace featscope
