// The second backend: AOTInductor packages (.pt2) made by scripts/export-model.py --format pt2.
// Their captures ("taps") were fixed at export time as extra outputs of the compiled graph.
// Compiled only where libtorch has torch::inductor::AOTIModelPackageLoader (2.6 and up; CMake
// defines FEATSCOPE_HAVE_AOTI); elsewhere loadPt2() rejects the file with FORMAT_UNSUPPORTED.
#pragma once
#include <napi.h>

namespace featscope {

// loadPt2(path, device, precision) -> Promise<NativePt2Model>
Napi::Value LoadPt2Model(const Napi::CallbackInfo& info);

// Registers the NativePt2Model class (nothing without the loader); true when .pt2 is supported.
bool InitPt2(Napi::Env env, Napi::Object exports);

}  // namespace featscope
