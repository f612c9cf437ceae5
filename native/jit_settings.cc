#include "jit_settings.h"

#include <torch/csrc/Export.h>

#if __has_include(<torch/csrc/jit/codegen/fuser/interface.h>)
#include <torch/csrc/jit/codegen/fuser/interface.h>
#else
// Debian's libtorch-dev does not install this header; the functions are exported by libtorch_cpu
// (1.13 and 2.x alike), so declare them as that header does.
namespace torch {
namespace jit {
TORCH_API bool canFuseOnCPU();
TORCH_API void overrideCanFuseOnCPU(bool value);
}  // namespace jit
}  // namespace torch
#endif

#include <mutex>

namespace featscope {

// No NNC fusion on the CPU. Builds of libtorch with LLVM (Debian's 2.6 is one; pytorch.org's wheels
// and Debian's 1.13 are not) fuse the hooked graphs' CPU ops into TensorExpr kernels once the
// profiling executor has seen a shape. Those kernels size their outputs from uninitialised values
// (valgrind, libtorch 2.6: TensorExprKernel::prepareRunArgs -> empty_strided_cpu), and a looped
// module's gradient norm came back NaN in 2 of 4 suite runs. Without fusion the graph runs the same
// aten kernels as Python's eager hooks, on every libtorch featscope supports. CUDA fusion is not
// touched.
void configureJit() {
  static std::once_flag once;
  std::call_once(once, [] { torch::jit::overrideCanFuseOnCPU(false); });
}

bool jitCpuFusion() { return torch::jit::canFuseOnCPU(); }

}  // namespace featscope
