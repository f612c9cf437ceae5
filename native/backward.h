// Gradients through the hooked graph: Grad-CAM, gradient flow, input gradients (FGSM/PGD).
#pragma once
#include <napi.h>
#include <torch/script.h>

#include <vector>

namespace featscope {

// Each image's target class: the given ones (one for all, or one per image), else the argmax.
at::Tensor resolveClasses(const at::Tensor& logits, const std::vector<int64_t>& classes);

// Logits of a forward run for gradients, checked to be [N, classes].
at::Tensor checkLogits(const c10::IValue& out);

}  // namespace featscope
