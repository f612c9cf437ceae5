#pragma once
// Process-wide TorchScript settings featscope relies on, set once when the addon loads.
namespace featscope {
void configureJit();
// Whether the TorchScript executor may fuse CPU ops into NNC (LLVM) kernels (false after configureJit).
bool jitCpuFusion();
}  // namespace featscope
