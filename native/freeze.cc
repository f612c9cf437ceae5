#include "freeze.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>

#include <iostream>
#include <mutex>

#include "graph_hooks.h"

namespace featscope {

using torch::jit::Node;
namespace prim = c10::prim;
namespace attr = c10::attr;

namespace {
// Cloning, freezing and removing a frozen forward change the model's compilation unit (its tables
// of types and functions), which is not thread-safe; a FrozenForward may be destroyed on the JS
// thread while a pool thread freezes another layer set of the same model.
std::mutex& compilationUnitMutex() {
  static std::mutex m;
  return m;
}
}  // namespace

FrozenForward::~FrozenForward() {
  std::lock_guard<std::mutex> lock(compilationUnitMutex());
  try {
    auto type = module.type();
    if (auto* fn = type->findMethod("forward")) {
      const auto qualname = fn->qualname();
      type->unsafeRemoveMethod("forward");
      module._ivalue()->compilation_unit()->unsafeRemoveMethod(qualname);
    }
  } catch (...) {
    // Never throw from a destructor: at worst the graph stays in the compilation unit.
  }
}

namespace {

// Why a hooked graph is not frozen, or "" when it can be.
std::string unfreezable(const HookedForward& hf) {
  for (const auto& s : hf.slots)
    if (s.looped) return "captures of " + s.layer + ", a module called inside a loop";
  std::string reason;
  forEachNode(hf.fn->graph()->block(), [&](Node* n) {
    if (reason.empty() && n->kind() == prim::SetAttr) reason = "the model's forward writes the module attribute " + n->s(attr::name);
  });
  return reason;
}

}  // namespace

void optimizeHookedForward(const torch::jit::Module& module, const std::set<std::string>& wanted, HookedForward& hf) {
  hf.fallback = unfreezable(hf);
  if (!hf.fallback.empty()) return;
  std::lock_guard<std::mutex> lock(compilationUnitMutex());
  try {
    // A clone that shares the parameters (new module types, so the original is untouched), whose
    // forward becomes the hooked forward built on the clone itself: captures are outputs of the
    // graph, so freezing and folding cannot cross them.
    torch::jit::Module clone = module.clone(/*inplace=*/true);
    HookedForward onClone = buildHookedForward(clone, wanted, /*guardInPlace=*/true, hf.capturesOnly);
    auto type = clone.type();
    auto cu = clone._ivalue()->compilation_unit();
    const auto forwardName = type->getMethod("forward").qualname();
    type->unsafeRemoveMethod("forward");
    auto* fn = cu->create_function(forwardName, onClone.fn->graph()->copy(), /*shouldMangle=*/true);
    type->addMethod(fn);
    bool cpu = true;
    for (const auto& p : module.parameters(true)) {
      cpu = p.device().is_cpu();
      break;
    }
    // On the CPU: freeze, fold conv-BN, fuse conv-add-ReLU and run convolutions in MKLDNN
    // (torch.jit.optimize_for_inference); on CUDA, freezing and its folding.
    torch::jit::Module frozen = cpu ? torch::jit::optimize_for_inference(clone) : torch::jit::freeze(clone);
    // The clone's own forward is no longer needed: the frozen module has its own copy (unless the
    // model was frozen already, when optimize_for_inference optimises the clone itself).
    if (frozen.type() != type) {
      type->unsafeRemoveMethod("forward");
      cu->unsafeRemoveMethod(fn->qualname());
    }
    if (debugGraphs())
      std::cerr << "featscope: optimised forward for " << wanted.size() << " layer(s):\n"
                << *frozen.get_method("forward").graph() << std::endl;
    // (The model's own parameters and buffers, kept as they are, are copied on export already.)
    std::unordered_set<const void*> own, constants;
    for (const auto& p : module.parameters(true)) own.insert(p.storage().data());
    for (const auto& b : module.buffers(true)) own.insert(b.storage().data());
    forEachNode(frozen.get_method("forward").graph()->block(), [&](Node* n) {
      if (n->kind() == prim::Constant && n->output()->type()->isSubtypeOf(*c10::TensorType::get())) {
        auto t = torch::jit::toIValue(n->output());
        if (t && t->isTensor() && t->toTensor().has_storage() && !own.count(t->toTensor().storage().data()))
          constants.insert(t->toTensor().storage().data());
      }
    });
    // Made last: a FrozenForward destroyed here would wait for the lock this function holds.
    hf.optimized = std::make_shared<FrozenForward>(std::move(frozen));
    hf.optimized->constants = std::move(constants);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    hf.fallback = "freezing failed: " + msg.substr(0, msg.find('\n'));
  } catch (const std::exception& e) {
    std::string msg = e.what();
    hf.fallback = "freezing failed: " + msg.substr(0, msg.find('\n'));
  }
}

}  // namespace featscope
