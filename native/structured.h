// Structured values in and out of TorchScript models: segmentation and detection models whose
// modules return tuples, lists or dicts of tensors (an FPN's OrderedDict), whose forward returns a
// dict ({"out": logits}) or a (losses, detections) tuple, and whose forward takes a List[Tensor].
#pragma once
#include <napi.h>
#include <torch/script.h>

#include <string>
#include <vector>

#include "graph_hooks.h"

namespace featscope {

// A module output featscope captures as named parts: a tuple, list, dict or optional whose
// leaves include a tensor (nested ones too). A plain Tensor is not structured.
bool isStructuredOutput(const c10::TypePtr& type);

// The tensors inside a captured structured value, in order, as captures named
// `<slot.name>:<key>` (dict keys; tuple and list positions as numbers; nested: `:a:b`). Leaves
// that are not tensors (None, numbers, strings) are left out.
void appendStructuredParts(const CaptureSlot& slot, const c10::IValue& value, std::vector<Captured>& out);

// Pushes the forward's arguments after `self` for the batch `x`: `x` itself, or its images as a
// List[Tensor] when the forward takes one (torchvision's detection models); trailing Optional
// arguments (detection's `targets`) get None. Throws INVALID_ARGUMENT for a forward that needs
// other arguments.
void pushForwardInputs(torch::jit::Stack& stack, const torch::jit::Graph& graph, const at::Tensor& x);

// A model output prepared on a worker thread for JavaScript: tensors on the host as float32
// (with their dtype's name), containers and scalars kept as they are.
struct HostValue {
  enum Kind { kNone, kTensor, kList, kDict, kBool, kNumber, kString } kind = kNone;
  at::Tensor tensor;                                     // kTensor: float32, contiguous, on the host
  std::string dtype;                                     // kTensor: the original dtype, e.g. "float32", "int64"
  std::vector<std::pair<std::string, HostValue>> items;  // kList (keys empty), kDict (in order)
  double number = 0;
  bool boolean = false;
  std::string text;
};

HostValue toHostValue(const c10::IValue& v, bool* usedDevice);

// {shape, data: Float32Array, dtype} for a tensor, arrays for lists and tuples, plain objects for
// dicts, null, booleans, numbers and strings.
Napi::Value hostValueToJs(Napi::Env env, class TensorExporter& ex, const HostValue& v);

}  // namespace featscope

namespace featscope {

// Registers a CPU `torchvision::nms` (greedy non-maximum suppression, as torchvision's own: boxes
// sorted by score, stable, suppressed when IoU > threshold) unless torchvision's op library is
// loaded already: scripted detection models call it, and libtorch alone does not have it.
// Faster/Mask R-CNN also need torchvision::roi_align, which featscope does not provide.
void ensureTorchvisionOps();

}  // namespace featscope
