#include "staging.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>

#include "tensor_bridge.h"

namespace featscope {

namespace {

constexpr size_t kMinPooledBytes = size_t{1} << 20;  // smaller blocks come from the allocator as before
constexpr size_t kGranule = size_t{1} << 20;         // pooled sizes are rounded up to whole MiB
constexpr size_t kDefaultCapMiB = 512;

struct Block {
  void* ptr = nullptr;
  size_t bytes = 0;
  bool pinned = false;
  at::Tensor owner;  // pinned: the byte tensor from libtorch's host allocator that owns the memory
};

size_t capFromEnv() {
  const char* v = std::getenv("FEATSCOPE_PINNED_POOL_MB");
  if (v == nullptr || *v == '\0') return kDefaultCapMiB << 20;
  char* end = nullptr;
  const unsigned long long mb = std::strtoull(v, &end, 10);
  if (end == v || *end != '\0') return kDefaultCapMiB << 20;
  return static_cast<size_t>(mb) << 20;
}

// One pool per process: tensors over its blocks may be freed on any thread, in any environment.
class BlockPool {
 public:
  BlockPool() : cap_(capFromEnv()) {}

  // A block of exactly `bytes` (a multiple of kGranule); false when a pinned block would pass the cap.
  bool acquire(size_t bytes, bool pinned, Block* out) {
    {
      std::lock_guard<std::mutex> lock(m_);
      for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if (it->bytes == bytes && it->pinned == pinned) {
          *out = std::move(*it);
          idle_.erase(it);
          idleBytes_ -= bytes;
          inUse_ += bytes;
          ++reused_;
          return true;
        }
      }
      if (pinned) {
        // Pinned memory is taken from the system's page-locked budget: past the cap, callers fall
        // back to pageable memory. Idle pinned blocks of other sizes make room first.
        while (pinnedTotal_ + bytes > cap_ && evictOldestLocked(true)) {
        }
        if (pinnedTotal_ + bytes > cap_) {
          ++pageable_;
          return false;
        }
        pinnedTotal_ += bytes;
      }
      inUse_ += bytes;
      ++allocated_;
    }
    out->bytes = bytes;
    out->pinned = pinned;
    try {
      if (pinned) {
        out->owner = at::empty({static_cast<int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
        out->ptr = out->owner.data_ptr();
      } else {
        out->ptr = std::aligned_alloc(64, bytes);
        if (out->ptr == nullptr) throw std::bad_alloc();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(m_);
      inUse_ -= bytes;
      if (pinned) pinnedTotal_ -= bytes;
      throw;
    }
    return true;
  }

  void release(Block b) {
    std::list<Block> dropped;
    {
      std::lock_guard<std::mutex> lock(m_);
      inUse_ -= b.bytes;
      if (b.bytes <= cap_) {
        while (idleBytes_ + b.bytes > cap_ && !idle_.empty()) dropped.splice(dropped.end(), idle_, idle_.begin());
        for (const auto& d : dropped) forgetLocked(d);
        idleBytes_ += b.bytes;
        idle_.push_back(std::move(b));
        b = Block{};
      } else if (b.pinned) {
        pinnedTotal_ -= b.bytes;
      }
    }
    // Freed outside the lock (a pinned owner returns its memory to libtorch's allocator).
    for (auto& d : dropped) freeBlock(d);
    if (b.ptr != nullptr) freeBlock(b);
  }

  PoolStats stats() {
    std::lock_guard<std::mutex> lock(m_);
    PoolStats s;
    s.pooledBytes = idleBytes_;
    s.inUseBytes = inUse_;
    s.capBytes = cap_;
    s.reused = reused_;
    s.allocated = allocated_;
    s.pageable = pageable_;
    return s;
  }

 private:
  bool evictOldestLocked(bool pinned) {
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if (it->pinned != pinned) continue;
      Block b = std::move(*it);
      idle_.erase(it);
      forgetLocked(b);
      // Dropping a pinned owner only returns it to libtorch's caching allocator: safe under the lock.
      freeBlock(b);
      return true;
    }
    return false;
  }
  void forgetLocked(const Block& b) {
    idleBytes_ -= b.bytes;
    if (b.pinned) pinnedTotal_ -= b.bytes;
  }
  static void freeBlock(Block& b) {
    if (b.pinned)
      b.owner.reset();
    else
      std::free(b.ptr);
    b.ptr = nullptr;
  }

  std::mutex m_;
  std::list<Block> idle_;  // oldest first
  size_t idleBytes_ = 0, inUse_ = 0, pinnedTotal_ = 0;
  const size_t cap_;
  uint64_t reused_ = 0, allocated_ = 0, pageable_ = 0;
};

BlockPool& pool() {
  // Never destroyed: tensors over pooled blocks may be freed during process exit.
  static BlockPool* p = new BlockPool();
  return *p;
}

}  // namespace

PoolStats poolStats() { return pool().stats(); }

at::Tensor pooledHostTensor(at::IntArrayRef shape, at::ScalarType dtype, bool pinned) {
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
  auto opts = at::TensorOptions().dtype(dtype);
  if (bytes < kMinPooledBytes) return at::empty(shape, pinned ? opts.pinned_memory(true) : opts);
  const size_t rounded = (bytes + kGranule - 1) / kGranule * kGranule;
  Block b;
  if (!pool().acquire(rounded, pinned, &b)) return at::empty(shape, opts);  // past the pinned cap: pageable
  void* ptr = b.ptr;
  return at::from_blob(
      ptr, shape, [b = std::move(b)](void*) mutable { pool().release(std::move(b)); }, opts);
}

void parallelCopy(void* dst, const void* src, size_t bytes) {
  constexpr size_t kChunk = size_t{4} << 20;
  if (bytes < 2 * kChunk || at::get_num_threads() < 2) {
    std::memcpy(dst, src, bytes);
    return;
  }
  const int64_t chunks = static_cast<int64_t>((bytes + kChunk - 1) / kChunk);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t off = static_cast<size_t>(i) * kChunk;
      std::memcpy(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off, std::min(kChunk, bytes - off));
    }
  });
}

at::Tensor stageHostCopy(const void* src, at::IntArrayRef shape, at::ScalarType dtype, const c10::Device& device) {
  at::Tensor t;
  if (device.is_cuda()) {
    // libtorch's caching host allocator: pinned blocks are reused across calls, and a block is not
    // handed out again until the copy that reads it (toDeviceInput's non-blocking DMA) is done.
    t = at::empty(shape, at::TensorOptions().dtype(dtype).pinned_memory(true));
  } else {
    t = pooledHostTensor(shape, dtype, false);
  }
  if (t.numel() > 0) parallelCopy(t.data_ptr(), src, t.nbytes());
  return t;
}

at::Tensor toDeviceInput(const at::Tensor& staged, const c10::Device& device, const std::vector<float>& mean,
                         const std::vector<float>& stdev) {
  at::Tensor x = device.is_cuda() ? staged.to(device, /*non_blocking=*/true) : staged;
  if (x.scalar_type() != at::kByte) return x;
  const int64_t c = static_cast<int64_t>(mean.size());
  auto fopts = at::TensorOptions().dtype(at::kFloat);
  at::Tensor m = at::from_blob(const_cast<float*>(mean.data()), {1, c, 1, 1}, fopts).to(device);
  at::Tensor s = at::from_blob(const_cast<float*>(stdev.data()), {1, c, 1, 1}, fopts).to(device);
  // The float path's order (lib/preprocess.ts, torchvision's ToTensor then Normalize), in float32.
  return x.to(at::kFloat).div_(255).sub_(m).div_(s);
}

bool copyToArena(const std::vector<at::Tensor*>& tensors, bool pinned) {
  constexpr size_t kAlign = 64;
  // Tensors that are the same memory (ResNet's layer1 and layer1.1 return one tensor) share one
  // copy, as they share one storage on the CPU path.
  const std::vector<at::Tensor> src = [&] {
    std::vector<at::Tensor> v;
    for (at::Tensor* t : tensors) v.push_back(*t);
    return v;
  }();
  const auto sameAs = [&](size_t i) -> size_t {
    for (size_t j = 0; j < i; ++j)
      if (src[j].defined() && src[j].data_ptr() == src[i].data_ptr() && src[j].sizes() == src[i].sizes() &&
          src[j].strides() == src[i].strides() && src[j].scalar_type() == src[i].scalar_type())
        return j;
    return i;
  };
  size_t total = 0;
  std::vector<size_t> offsets(src.size(), 0), first(src.size(), 0);
  for (size_t i = 0; i < src.size(); ++i) {
    first[i] = src[i].defined() ? sameAs(i) : i;
    if (!src[i].defined() || first[i] != i) continue;
    offsets[i] = total;
    total += (static_cast<size_t>(src[i].numel()) * sizeof(float) + kAlign - 1) / kAlign * kAlign;
  }
  if (total == 0) return false;
  at::Tensor arena = pooledHostTensor({static_cast<int64_t>(total)}, at::kByte, pinned);
  char* base = static_cast<char*>(arena.data_ptr());
  bool queued = false;
  const auto fopts = at::TensorOptions().dtype(at::kFloat);
  for (size_t i = 0; i < src.size(); ++i) {
    if (!src[i].defined()) continue;
    if (first[i] != i) {
      *tensors[i] = *tensors[first[i]];
      continue;
    }
    // Each view is a storage of its own (one ArrayBuffer in JS); every view keeps the arena alive.
    at::Tensor view = at::from_blob(
        base + offsets[i], src[i].sizes(), [arena](void*) {}, fopts);
    const bool device = !src[i].device().is_cpu();
    // Non-blocking only into pinned memory; the caller synchronises once for all of them.
    view.copy_(src[i], /*non_blocking=*/device && pinned);
    queued = queued || device;
    *tensors[i] = view;
  }
  return queued;
}

bool arenaOnCpu() {
  static const bool on = [] {
    const char* v = std::getenv("FEATSCOPE_ARENA_ON_CPU");
    return v != nullptr && std::string(v) == "1";
  }();
  return on;
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const PoolStats s = poolStats();
  const ExportStats e = exportStats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("pooledBytes", static_cast<double>(s.pooledBytes));
  o.Set("inUseBytes", static_cast<double>(s.inUseBytes));
  o.Set("poolCapBytes", static_cast<double>(s.capBytes));
  o.Set("blocksReused", static_cast<double>(s.reused));
  o.Set("blocksAllocated", static_cast<double>(s.allocated));
  o.Set("pinnedFallbacks", static_cast<double>(s.pageable));
  o.Set("exportedBytes", static_cast<double>(e.bytes));
  o.Set("exportedBuffers", static_cast<double>(e.buffers));
  return o;
}

}  // namespace featscope
