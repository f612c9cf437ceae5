#include "attention_hooks.h"

#include <torch/csrc/jit/ir/constants.h>

#include "errors.h"

namespace featscope {

const char* const kAttentionWeightsSuffix = ".weights";

bool isAttentionModuleType(const c10::ClassTypePtr& type) {
  auto qn = type ? type->name() : c10::nullopt;
  return qn && qn->name() == "MultiheadAttention";
}

void splitAttentionNames(const torch::jit::Module& module, const std::set<std::string>& wanted, std::set<std::string>& modules,
                         std::set<std::string>& attention) {
  const std::string suffix = kAttentionWeightsSuffix;
  std::set<std::string> attentionModules, all;
  for (const auto& nm : module.named_modules()) {
    all.insert(nm.name);
    if (!nm.name.empty() && isAttentionModuleType(nm.value.type())) attentionModules.insert(nm.name);
  }
  for (const auto& name : wanted) {
    if (!all.count(name) && name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string path = name.substr(0, name.size() - suffix.size());
      if (attentionModules.count(path)) {
        attention.insert(path);
        continue;
      }
    }
    modules.insert(name);
  }
}

torch::jit::Value* insertAttentionWeightsCall(torch::jit::Graph& graph, torch::jit::Node* call, const std::string& path) {
  auto ct = call->input(0)->type()->expect<c10::ClassType>();
  const auto& schema = ct->getMethod(call->s(c10::attr::name)).getSchema();
  const auto need = schema.argumentIndexWithName("need_weights");
  const auto average = schema.argumentIndexWithName("average_attn_weights");
  if (!need || !average || static_cast<size_t>(std::max(*need, *average)) >= call->inputs().size())
    throw FsError("UNSUPPORTED_GRAPH", "cannot capture the attention weights of " + path +
                                           ": its forward has no need_weights and average_attn_weights arguments "
                                           "(nn.MultiheadAttention has both from PyTorch 1.11); export the model with a newer torch");
  torch::jit::Value *yes, *no, *one;
  {
    torch::jit::WithInsertPoint before(call);
    yes = graph.insertConstant(true);
    no = graph.insertConstant(false);
    one = graph.insertConstant(1);
  }
  torch::jit::WithInsertPoint ip(call->next());
  torch::jit::Node* again = graph.insertNode(graph.createClone(call, [](torch::jit::Value* v) { return v; }));
  again->replaceInput(*need, yes);
  again->replaceInput(*average, no);
  auto tuple = again->output()->type()->cast<c10::TupleType>();
  if (!tuple || tuple->elements().size() != 2)
    throw FsError("UNSUPPORTED_GRAPH", "cannot capture the attention weights of " + path + ": its forward returns " +
                                           again->output()->type()->repr_str() + ", not (output, weights)");
  torch::jit::Value* weights = graph.insertNode(graph.createTupleIndex(again->output(), one, tuple->elements()[1]))->output();
  // Optional[Tensor]: with need_weights=True it holds the weights.
  return graph.insertUncheckedCast(weights, c10::TensorType::get());
}

}  // namespace featscope
