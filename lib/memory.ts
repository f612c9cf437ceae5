/** featscope's memory pools, for long runs that watch their footprint. */
import { binding } from './native';

export interface MemoryStats {
  /** Idle blocks kept for reuse (staged inputs on the CPU, pinned capture blocks on CUDA). */
  pooledBytes: number;
  /** Pool blocks held now by inputs in flight and by capture arrays JS still holds. */
  inUseBytes: number;
  /** Most idle bytes kept, and most pinned bytes in all: FEATSCOPE_PINNED_POOL_MB (default 512 MiB). */
  poolCapBytes: number;
  /** Blocks handed out again, and allocated afresh, since the process started. */
  blocksReused: number;
  blocksAllocated: number;
  /** Pinned requests served from pageable memory because the pool was at its cap. */
  pinnedFallbacks: number;
  /** Output and capture memory JS arrays hold now (freed when collected, or at once by release()). */
  exportedBytes: number;
  exportedBuffers: number;
}

/** Pooled and in-use bytes of featscope's native memory (all models of this process). */
export function memoryStats(): MemoryStats {
  return binding().memoryStats();
}
