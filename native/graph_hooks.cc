#include "graph_hooks.h"

#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <unordered_map>

#include "attention_hooks.h"
#include "errors.h"
#include "freeze.h"
#include "structured.h"

namespace featscope {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;
namespace prim = c10::prim;
namespace attr = c10::attr;

namespace {

// A call of a module is a call of its forward: `forward`; `forward1`, `forward2`, ... when a
// traced module is called again; `forward__0`, `forward__1` for @torch.jit._overload_method
// overloads (DenseNet's layers). Helper methods (`_forward_impl`, `bn_function`) are not calls.
bool isForwardMethod(const std::string& m) {
  if (m.rfind("forward", 0) != 0) return false;
  size_t i = 7;
  if (m.compare(i, 2, "__") == 0 && m.size() > i + 2) i += 2;
  for (; i < m.size(); ++i)
    if (m[i] < '0' || m[i] > '9') return false;
  return true;
}

std::string joinPath(const std::string& parent, const std::string& child) { return parent.empty() ? child : parent + "." + child; }

// True if `ancestor` is a strict ancestor of `path` in the module tree ("" is the root).
bool isStrictAncestor(const std::string& ancestor, const std::string& path) {
  if (ancestor.empty()) return !path.empty();
  return path.size() > ancestor.size() && path.compare(0, ancestor.size(), ancestor) == 0 && path[ancestor.size()] == '.';
}

struct Walker {
  const std::set<std::string>& wanted;
  bool recordCaptures;  // false: only count calls (listLayers)
  Graph* graph;
  const std::set<std::string>* attention = nullptr;  // MultiheadAttention paths whose weights are captured
  std::unordered_set<Node*> weightCalls;             // the calls captureAttention inserted (not walked as calls)
  std::unordered_map<Value*, std::string> paths;     // values that hold a module -> its path
  std::map<std::string, int> callCount;
  std::map<std::string, int> firstCall;
  std::set<std::string> looped;  // modules with a call inside a loop
  int callSeq = 0;
  struct Pending {
    Node* clone;  // aten::clone inserted right after the call: the capture point
    CaptureSlot slot;
    bool inLoop;  // the call sits in a loop body (at any depth)
    // The output is a tuple, list or dict of tensors (structured.h): `clone` is a 1-tuple around it
    // (kept: it is no copy), expanded into named parts after the run.
    bool structured = false;
  };
  std::vector<Pending> captures;

  bool hasWantedDescendant(const std::string& path) const {
    // wanted is ordered: the first name >= path+"." tells.
    if (path.empty()) return !wanted.empty() || (attention && !attention->empty());
    auto it = wanted.lower_bound(path + ".");
    if (it != wanted.end() && isStrictAncestor(path, *it)) return true;
    if (!attention) return false;
    auto at = attention->lower_bound(path + ".");
    return at != attention->end() && isStrictAncestor(path, *at);
  }

  // The weights of a MultiheadAttention call, from a second call inserted after it (attention_hooks.h).
  void captureAttention(Node* n, const std::string& path, int k, bool inLoop, const std::optional<c10::Symbol>& unsupported) {
    const std::string layer = path + kAttentionWeightsSuffix;
    if (unsupported)
      throw FsError("UNSUPPORTED_GRAPH", "cannot capture " + layer + ": the model calls " + path + " inside a " +
                                             std::string(unsupported->toQualString()) + " block, which featscope does not hook");
    Value* weights = insertAttentionWeightsCall(*graph, n, path);
    weightCalls.insert(n->next());
    torch::jit::WithInsertPoint ip(weights->node()->next());
    Value* c = graph->insert(c10::aten::clone, {weights});
    captures.push_back({c->node(), {layer, k, k == 0 ? layer : layer + "#" + std::to_string(k)}, inLoop});
  }

  void walk(Block* block) {
    Node* n = block->nodes().front();
    while (n != block->return_node()) {
      if (n->kind() == prim::GetAttr) {
        auto it = paths.find(n->input(0));
        if (it != paths.end()) {
          auto ct = n->output()->type()->cast<c10::ClassType>();
          if (ct && ct->is_module()) paths[n->output()] = joinPath(it->second, n->s(attr::name));
        }
      } else if (n->kind() == prim::CallMethod && !weightCalls.count(n)) {
        auto it = paths.find(n->input(0));
        if (it != paths.end()) {
          const std::string path = it->second;
          const std::string method = n->s(attr::name);
          const bool isCall = isForwardMethod(method) && !path.empty();
          if (isCall) {
            int k = callCount[path]++;
            if (!firstCall.count(path)) firstCall[path] = callSeq;
            ++callSeq;
            bool inLoop = false;
            std::optional<c10::Symbol> unsupported;
            for (Block* b = block; b->owningNode() != nullptr; b = b->owningNode()->owningBlock()) {
              const auto kind = b->owningNode()->kind();
              if (kind == prim::Loop)
                inLoop = true;
              else if (kind != prim::If)
                unsupported = kind;
            }
            if (inLoop) looped.insert(path);
            if (recordCaptures && wanted.count(path)) {
              if (unsupported)
                throw FsError("UNSUPPORTED_GRAPH", "cannot capture " + path + ": the model calls it inside a " +
                                                       std::string(unsupported->toQualString()) +
                                                       " block, which featscope does not hook; hook the module that holds it");
              const bool structured = n->outputs().size() == 1 && isStructuredOutput(n->output()->type());
              if (structured) {
                if (inLoop)
                  throw FsError("UNSUPPORTED_GRAPH", "cannot capture " + path + ": it returns " + n->output()->type()->repr_str() +
                                                         " inside a loop; featscope captures such outputs outside loops only");
                torch::jit::WithInsertPoint ip(n->next());
                Node* wrap = graph->insertNode(graph->createTuple({n->output()}));
                captures.push_back({wrap, {path, k, k == 0 ? path : path + "#" + std::to_string(k), false, true}, false, true});
              } else if (n->outputs().size() != 1 || !n->output()->type()->isSubtypeOf(*c10::TensorType::get())) {
                throw FsError("LAYER_OUTPUT_NOT_TENSOR",
                              "cannot capture " + path + ": its forward returns " +
                                  (n->outputs().size() == 1 ? n->output()->type()->repr_str() : "several values") +
                                  ", not a Tensor (or a tuple, list or dict of tensors); hook one of its submodules instead");
              } else {
                torch::jit::WithInsertPoint ip(n->next());
                Value* c = graph->insert(c10::aten::clone, {n->output()});
                captures.push_back({c->node(), {path, k, k == 0 ? path : path + "#" + std::to_string(k)}, inLoop});
              }
            }
            if (recordCaptures && attention && attention->count(path)) captureAttention(n, path, k, inLoop, unsupported);
          }
          // Inline calls on the way to a wanted module: a wanted descendant's call, or a helper
          // method (ResNet's _forward_impl) of a module that is wanted or holds wanted ones.
          const bool onPath = hasWantedDescendant(path) || (!isCall && wanted.count(path));
          if (onPath) {
            auto ct = n->input(0)->type()->expect<c10::ClassType>();
            auto& fn = torch::jit::toGraphFunction(ct->getMethod(method));
            Node* prev = n->prev();
            // Pass the callee's own graph: the default inlines its *optimized* graph, in which the
            // nested module calls (and so the captures) are already gone.
            torch::jit::inlineCallTo(n, &fn, fn.graph().get());
            n = prev->next();
            continue;
          }
        }
      }
      if (n->kind() == prim::If) {
        // The branches are alternatives: a module called in both is called once per forward, and
        // its call in either branch gets the same index (MobileNet's `if use_res_connect`).
        const auto before = callCount;
        auto merged = callCount;
        for (Block* b : n->blocks()) {
          callCount = before;
          walk(b);
          for (const auto& [k, v] : callCount) merged[k] = std::max(merged[k], v);
        }
        callCount = std::move(merged);
      } else {
        for (Block* b : n->blocks()) walk(b);
      }
      n = n->next();
    }
  }
};

// A capture made inside `if` branches becomes an output of each enclosing If (the branches not
// taken yield an uninitialised value), so the graph can return it. At run time a non-tensor in
// its slot means the branch did not run: no capture, as no Python hook would have fired.
Value* liftToTop(Graph& graph, Value* v) {
  while (v->node()->owningBlock() != graph.block()) {
    Block* inner = v->node()->owningBlock();
    Node* owner = inner->owningNode();
    for (Block* b : owner->blocks()) {
      if (b == inner) {
        b->registerOutput(v);
      } else {
        Node* undef = graph.createUninitialized(v->type());
        b->appendNode(undef);
        b->registerOutput(undef->output());
      }
    }
    v = owner->addOutput()->setType(v->type());
  }
  return v;
}

// Every node that runs after `start`: the rest of its block, then the rest of each enclosing block.
template <typename F>
void forEachNodeAfter(Graph& graph, Node* start, F&& visit) {
  for (Node* n = start;;) {
    Block* b = n->owningBlock();
    for (Node* m = n->next(); m != b->return_node(); m = m->next())
      if (visit(m)) return;
    if (b == graph.block()) return;
    n = b->owningNode();
  }
}

}  // namespace

bool debugGraphs() {
  const char* dbg = std::getenv("FEATSCOPE_DEBUG_GRAPH");
  return dbg && *dbg && std::string(dbg) != "0";
}

std::string moduleTypeName(const torch::jit::Module& m) {
  auto qn = m.type()->name();
  return qn ? qn->name() : "Module";
}

// Captures only: what runs after the last capture point (in the top-level block) feeds only the
// model's output, now None. It goes, including the shape checks that raise (a Python hook has fired
// before such a check would raise); writes to module state or to the input, prints and other side
// effects stay. Standard dead-code elimination keeps the checks, and with them the whole network.
static void dropAfterLastCapture(std::shared_ptr<Graph>& graph, const std::vector<Node*>& points, bool evalMode) {
  Block* top = graph->block();
  // In eval mode every `self.training` read is false (unless forward itself writes the flag): as a
  // constant, batch_norm no longer counts as writing its running statistics and the
  // `if self.training:` updates fold away, so the layers after the last capture can go.
  if (evalMode) {
    std::vector<Node*> reads;
    bool written = false;
    forEachNode(top, [&](Node* n) {
      if ((n->kind() == prim::GetAttr || n->kind() == prim::SetAttr) && n->s(torch::jit::attr::name) == "training") {
        if (n->kind() == prim::SetAttr)
          written = true;
        else if (n->output()->type()->kind() == c10::TypeKind::BoolType)
          reads.push_back(n);
      }
    });
    if (!written) {
      for (Node* n : reads) {
        torch::jit::WithInsertPoint ip(n);
        n->output()->replaceAllUsesWith(graph->insertConstant(false));
        n->destroy();
      }
      torch::jit::ConstantPropagation(graph);
    }
  }
  std::unordered_set<Node*> anchors;
  for (Node* n : points) {
    while (n->owningBlock() != top) n = n->owningBlock()->owningNode();
    anchors.insert(n);
  }
  Node* last = nullptr;
  for (Node* n : top->nodes())
    if (anchors.count(n)) last = n;
  if (!last) return;
  torch::jit::AliasDb db(graph);
  std::vector<const Value*> state(graph->inputs().begin(), graph->inputs().end());
  forEachNode(top, [&](Node* n) {
    if (n->kind() == prim::GetAttr) state.push_back(n->output());
  });
  const torch::jit::ValueSet stateSet(state.begin(), state.end());
  std::function<bool(Node*)> removable = [&](Node* n) {
    if (n->kind() != prim::RaiseException && n->hasSideEffects()) return false;
    if (db.writesToAlias(n, stateSet)) return false;
    // Writes into a list or dict (a detection head's `outputs["cls_logits"] = ...`) stay: a later
    // read of the container that stays would otherwise fail (structured.h).
    for (Value* in : n->inputs())
      if (!in->type()->isSubtypeOf(*c10::TensorType::get()) && in->type()->kind() != c10::TypeKind::OptionalType &&
          !in->type()->containedTypes().empty() && db.writesToAlias(n, {in}))
        return false;
    for (Block* b : n->blocks())
      for (Node* m : b->nodes())
        if (!removable(m)) return false;
    return true;
  };
  std::vector<Node*> candidates;  // decided before any node is destroyed (the alias db sees the whole graph)
  for (Node* n = last->next(); n != top->return_node(); n = n->next())
    if (removable(n)) candidates.push_back(n);
  for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
    bool used = false;
    for (Value* o : (*it)->outputs()) used = used || o->hasUses();
    if (!used) (*it)->destroy();
  }
}

namespace {

// Every wanted module (and attention weight) is called somewhere in the forward.
void checkCalled(const Walker& w, const std::set<std::string>& wanted, const std::set<std::string>& modules,
                 const std::set<std::string>& attention) {
  if (w.callSeq == 0 && !wanted.empty())
    throw FsError("MODEL_FROZEN",
                  "the model's forward calls no submodules (it was frozen with torch.jit.freeze or optimize_for_inference, "
                  "or has none), so there is nothing to hook; export it without freezing (scripts/export-model.py)");
  for (const auto& name : attention)
    if (!w.callCount.count(name))
      throw FsError("LAYER_NOT_CALLED",
                    "layer " + name + " exists but the model's forward never calls it, so it has no attention weights to capture");
  for (const auto& name : modules)
    if (!w.callCount.count(name))
      throw FsError("LAYER_NOT_CALLED", "layer " + name + " exists but the model's forward never calls it, so it has no output to capture");
}

// Python hooks fire when a module returns, inner modules first: order the captures by where
// their clone (right after the call) sits in the graph, branches included.
void orderCaptures(Graph& graph, std::vector<Walker::Pending>& captures) {
  std::unordered_map<Node*, size_t> position;
  forEachNode(graph.block(), [&](Node* n) { position.emplace(n, position.size()); });
  std::stable_sort(captures.begin(), captures.end(),
                   [&](const Walker::Pending& a, const Walker::Pending& b) { return position.at(a.clone) < position.at(b.clone); });
}

// A module called inside a loop fires once per iteration: all its calls (in loops or not) append
// their output to one list, made at the top of the graph, which keeps them in the order they ran.
// Those outputs are always copied (iterations overwrite their values), except for gradients,
// which need the values themselves. Returns the lists by layer; `listed` gets the clones of
// looped captures (kept, or replaced by their input).
std::map<std::string, Value*> collectLoopedCaptures(Graph& graph, const std::vector<Walker::Pending>& captures, bool guardInPlace,
                                                    std::vector<Node*>& listed) {
  std::map<std::string, Value*> lists;
  for (auto& p : captures)
    if (p.inLoop) lists[p.slot.layer] = nullptr;
  for (auto& [layer, list] : lists) {
    torch::jit::WithInsertPoint top(graph.block()->nodes().front());
    list = graph.insertNode(graph.createList(c10::TensorType::get(), {}))->output();
    for (auto& p : captures) {
      if (p.slot.layer != layer) continue;
      torch::jit::WithInsertPoint after(p.clone->next());
      graph.insert(c10::aten::append, {list, guardInPlace ? p.clone->output() : p.clone->input(0)});
      listed.push_back(p.clone);
    }
  }
  return lists;
}

// Makes the graph return (original output, captures...) as one tuple; returns the slots of
// elements 1..n. Captures only: None takes the output's place, so what only the output needed
// becomes dead.
std::vector<CaptureSlot> returnCaptures(Graph& graph, const std::vector<Walker::Pending>& captures, std::map<std::string, Value*> lists,
                                        bool capturesOnly) {
  std::vector<CaptureSlot> slots;
  std::vector<Value*> outs{graph.outputs().at(0)};
  for (auto& p : captures) {
    auto it = lists.find(p.slot.layer);
    if (it == lists.end()) {
      outs.push_back(liftToTop(graph, p.clone->output()));
      slots.push_back(p.slot);
    } else if (it->second) {
      // The list takes the place of the module's first capture.
      outs.push_back(it->second);
      slots.push_back({p.slot.layer, -1, p.slot.layer, true});
      it->second = nullptr;
    }
  }
  torch::jit::WithInsertPoint ip(graph.return_node());
  if (capturesOnly) outs[0] = graph.insertConstant(c10::IValue());
  Node* tup = graph.insertNode(graph.createTuple(outs));
  graph.eraseOutput(0);
  graph.registerOutput(tup->output());
  return slots;
}

// Captures only: removes the layers after the last capture (dropAfterLastCapture), then dead code.
void pruneAfterCaptures(std::shared_ptr<Graph>& graph, const torch::jit::Module& module, const std::vector<Walker::Pending>& captures) {
  std::vector<Node*> points;
  for (auto& p : captures) points.push_back(p.clone);
  bool evalMode = true;
  for (const auto& m : module.modules()) evalMode = evalMode && !m.is_training();
  dropAfterLastCapture(graph, points, evalMode);
  torch::jit::EliminateDeadCode(graph);
}

// A capture is the module's output when its forward returned. Keep the clone only where a later
// op writes to the value or an alias of it (ResNet's relu_ right after bn1, `out += identity`).
// Returns how many clones went; sets *mutatesInput when the graph writes to its input.
size_t dropUnneededClones(std::shared_ptr<Graph>& graph, const std::vector<Walker::Pending>& captures, const std::vector<Node*>& listed,
                          bool guardInPlace, bool* mutatesInput) {
  std::vector<Node*> drop;
  *mutatesInput = false;
  {
    torch::jit::AliasDb db(graph);
    for (Node* n : graph->nodes())
      if (db.writesToAlias(n, {graph->inputs().at(1)})) *mutatesInput = true;
    for (auto& p : captures) {
      if (std::find(listed.begin(), listed.end(), p.clone) != listed.end()) {
        if (!guardInPlace) drop.push_back(p.clone);
        continue;
      }
      if (p.structured) continue;
      Value* v = p.clone->input(0);
      bool written = false;
      if (guardInPlace) forEachNodeAfter(*graph, p.clone, [&](Node* n) { return written = db.writesToAlias(n, {v}); });
      if (!written) drop.push_back(p.clone);
    }
  }
  for (Node* c : drop) {
    c->output()->replaceAllUsesWith(c->input(0));
    c->destroy();
  }
  return drop.size();
}

}  // namespace

HookedForward buildHookedForward(const torch::jit::Module& module, const std::set<std::string>& wanted, bool guardInPlace,
                                 bool capturesOnly) {
  auto& forward = torch::jit::toGraphFunction(module.get_method("forward").function());
  std::shared_ptr<Graph> graph = forward.graph()->copy();

  std::set<std::string> modules, attention;
  splitAttentionNames(module, wanted, modules, attention);
  Walker w{modules, true, graph.get(), &attention};
  w.paths[graph->inputs().at(0)] = "";
  w.walk(graph->block());
  checkCalled(w, wanted, modules, attention);

  orderCaptures(*graph, w.captures);
  std::vector<Node*> listed;
  auto lists = collectLoopedCaptures(*graph, w.captures, guardInPlace, listed);
  std::vector<CaptureSlot> slots = returnCaptures(*graph, w.captures, std::move(lists), capturesOnly);
  torch::jit::Inline(*graph);
  // Before the in-place check below, so that a removed relu_ no longer forces a copy.
  if (capturesOnly) pruneAfterCaptures(graph, module, w.captures);
  bool mutatesInput = false;
  const size_t dropped = dropUnneededClones(graph, w.captures, listed, guardInPlace, &mutatesInput);

  if (debugGraphs()) {
    std::cerr << "featscope: hooked forward for " << wanted.size() << " layer(s), " << w.captures.size() - dropped
              << " capture(s) copied (a later in-place op writes to them, or they are called in a loop):\n"
              << *graph << std::endl;
  }
  HookedForward hf;
  hf.mutatesInput = mutatesInput;
  hf.capturesOnly = capturesOnly;
  hf.slots = std::move(slots);
  hf.fn = std::make_shared<torch::jit::GraphFunction>(c10::QualifiedName("featscope.hooked_forward"), graph, nullptr);
  return hf;
}

std::vector<c10::IValue> HookedForward::run(const torch::jit::Module& self, const at::Tensor& x) const {
  torch::jit::Stack stack;
  if (optimized) {
    stack = {optimized->module._ivalue()};
    auto& f = optimized->module.get_method("forward").function();
    pushForwardInputs(stack, *torch::jit::toGraphFunction(f).graph(), x);
    f.run(stack);
    auto el = stack.back().toTuple()->elements().vec();
    for (auto& v : el)
      if (v.isTensor() && v.toTensor().has_storage() && optimized->constants.count(v.toTensor().storage().data())) v = v.toTensor().clone();
    return el;
  } else {
    stack = {self._ivalue()};
    pushForwardInputs(stack, *fn->graph(), x);
    fn->run(stack);
  }
  return stack.back().toTuple()->elements().vec();
}

std::vector<Captured> unpackCaptures(const HookedForward& hf, const std::vector<c10::IValue>& elements) {
  std::vector<Captured> out;
  for (size_t i = 0; i < hf.slots.size(); ++i) {
    const auto& slot = hf.slots[i];
    const c10::IValue& v = elements.at(i + 1);
    if (slot.looped) {
      auto list = v.toTensorList();
      for (size_t k = 0; k < list.size(); ++k) {
        const int call = static_cast<int>(k);
        out.push_back({{slot.layer, call, call == 0 ? slot.layer : slot.layer + "#" + std::to_string(call), true}, list.get(k)});
      }
    } else if (slot.structured) {
      // A 1-tuple around the module's tuple, list or dict; not a tuple: a branch not taken.
      if (v.isTuple()) appendStructuredParts(slot, v.toTupleRef().elements().at(0), out);
    } else if (v.isTensor()) {
      // Not a tensor: the call sits in an `if` branch this forward did not take.
      out.push_back({slot, v.toTensor()});
    }
  }
  return out;
}

// Each called MultiheadAttention is followed by its `<path>.weights` capture (attention_hooks.h).
static void addAttentionWeightLayers(std::vector<LayerInfo>& layers, const std::set<std::string>& modules) {
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].type != "MultiheadAttention" || layers[i].calls == 0) continue;
    LayerInfo w = layers[i];
    w.name += kAttentionWeightsSuffix;
    if (modules.count(w.name)) continue;
    w.type = "AttentionWeights";
    layers.insert(layers.begin() + static_cast<std::ptrdiff_t>(++i), w);
  }
}

std::vector<LayerInfo> listLayers(const torch::jit::Module& module) {
  std::set<std::string> all;
  std::vector<std::pair<std::string, std::string>> modules;  // name, type in definition order
  for (const auto& nm : module.named_modules()) {
    if (nm.name.empty()) continue;
    all.insert(nm.name);
    modules.emplace_back(nm.name, moduleTypeName(nm.value));
  }
  auto& forward = torch::jit::toGraphFunction(module.get_method("forward").function());
  std::shared_ptr<Graph> graph = forward.graph()->copy();
  Walker w{all, false, graph.get()};
  w.paths[graph->inputs().at(0)] = "";
  w.walk(graph->block());

  std::vector<LayerInfo> out;
  for (auto& [name, type] : modules) {
    auto it = w.callCount.find(name);
    out.push_back(
        {name, type, it == w.callCount.end() ? 0 : it->second, w.firstCall.count(name) ? w.firstCall[name] : -1, w.looped.count(name) > 0});
  }
  // Call order: a module appears where it is first called. A container is "called" before its
  // children, which matches the order of Python's forward hooks firing on entry (pre-hooks);
  // never-called modules go last, in definition order.
  std::stable_sort(out.begin(), out.end(), [](const LayerInfo& a, const LayerInfo& b) {
    int ao = a.order < 0 ? INT32_MAX : a.order, bo = b.order < 0 ? INT32_MAX : b.order;
    return ao < bo;
  });
  addAttentionWeightLayers(out, all);
  return out;
}

}  // namespace featscope
