// Memory reused across calls: the host blocks an input is staged in, and the pinned arenas CUDA
// captures are copied into. A fresh large allocation per call costs a page fault per 4 KiB page
// (glibc maps anything over 32 MiB afresh and unmaps it on free): 18,800 faults for one
// [128, 3, 224, 224] input. Blocks here are mapped once and handed out again.
#pragma once
#include <napi.h>
#include <torch/script.h>

#include <cstddef>
#include <cstdint>

namespace featscope {

// Byte counts of the block pool (memoryStats()).
struct PoolStats {
  size_t pooledBytes = 0;  // idle blocks kept for reuse
  size_t inUseBytes = 0;   // blocks held by tensors now (staged inputs, capture arenas)
  size_t capBytes = 0;     // most idle bytes kept, and most pinned bytes (idle + in use)
  uint64_t reused = 0;     // blocks handed out again
  uint64_t allocated = 0;  // blocks allocated afresh
  uint64_t pageable = 0;   // pinned requests served from pageable memory past the cap
};
PoolStats poolStats();

// A tensor over a pooled block of host memory; the block returns to the pool when the tensor's
// storage is freed. `pinned`: page-locked memory from libtorch's CUDA host allocator (only for a
// CUDA libtorch with a device; past the cap, pageable memory instead).
at::Tensor pooledHostTensor(at::IntArrayRef shape, at::ScalarType dtype, bool pinned);

// memcpy, split across threads when large.
void parallelCopy(void* dst, const void* src, size_t bytes);

// The caller's array copied into memory of featscope's own, synchronously (on the calling
// thread), ready for a run on `device`: a pooled block on the CPU; a pinned block from libtorch's
// caching host allocator for CUDA (the DMA is queued by toDeviceInput).
at::Tensor stageHostCopy(const void* src, at::IntArrayRef shape, at::ScalarType dtype, const c10::Device& device);

// The staged input on `device`; a uint8 input is converted to float and normalised there:
// (x / 255 - mean[c]) / std[c], in float32 (torchvision's ToTensor + Normalize order).
at::Tensor toDeviceInput(const at::Tensor& staged, const c10::Device& device, const std::vector<float>& mean,
                         const std::vector<float>& stdev);

// The output arena of one forward: copies every tensor in `tensors` (any device, any float dtype)
// into one pooled block, as float32 contiguous views of it, replacing each tensor by its view.
// Undefined tensors are skipped. `pinned`: a pinned block (CUDA; the copies are queued on the
// current stream, non-blocking, and the caller synchronises once); else a pageable one. The block
// returns to the pool when the last view's storage is freed (JS collected or released every array
// over it). Returns true when a device copy was queued.
bool copyToArena(const std::vector<at::Tensor*>& tensors, bool pinned);

// FEATSCOPE_ARENA_ON_CPU=1: CPU forwards copy their captures into an arena too, instead of handing
// libtorch's storages over without a copy (slower; for tests of the arena code on machines
// without a GPU).
bool arenaOnCpu();

// memoryStats() -> { pooledBytes, inUseBytes, capBytes, exportedBytes, exportedArrays, ... }
Napi::Value MemoryStats(const Napi::CallbackInfo& info);

}  // namespace featscope
