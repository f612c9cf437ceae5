// Attention weights of nn.MultiheadAttention calls, captured by rewriting the TorchScript graph.
//
// torchvision's ViT calls `self.self_attention(x, x, x, need_weights=False)`: the weights are never
// computed. For a capture named `<module path>.weights`, a second call of the same module with the
// same inputs but need_weights=True, average_attn_weights=False is inserted after the original,
// whose output is left as it was (the block's output is bit-identical to a plain forward); the
// capture is that second call's weights, [N, heads, L, S].
#pragma once
#include <torch/script.h>
#include <torch/csrc/jit/ir/ir.h>

#include <set>
#include <string>

namespace featscope {

// The suffix of attention-weight capture names: "encoder.layers.encoder_layer_0.self_attention.weights".
extern const char* const kAttentionWeightsSuffix;

bool isAttentionModuleType(const c10::ClassTypePtr& type);

// Splits `wanted` into module names and the module paths whose attention weights are wanted
// (a name `<path>.weights` where <path> is a MultiheadAttention submodule and no submodule is
// itself named so).
void splitAttentionNames(const torch::jit::Module& module, const std::set<std::string>& wanted, std::set<std::string>& modules,
                         std::set<std::string>& attention);

// Inserts the weights call after `call` (a prim::CallMethod of a MultiheadAttention's forward) and
// returns its weights as a Tensor value.
torch::jit::Value* insertAttentionWeightsCall(torch::jit::Graph& graph, torch::jit::Node* call, const std::string& path);

}  // namespace featscope
