/**
 * libtorch's intra-op thread count (at::set_num_threads): how many threads one forward or backward
 * may use. libtorch's default is the number of cores it sees (1 on small containers); the count is
 * process-wide and applies to every model. FEATSCOPE_THREADS sets it when the addon loads; the CLI
 * takes `--threads N`.
 */
import { binding, checkThreadCount } from './native';

/** Sets the intra-op thread count for every later forward and backward (an integer from 1 to 1024). */
export function setNumThreads(n: number): void {
  binding().setNumThreads(checkThreadCount(n, 'setNumThreads(n)'));
}

/** The intra-op thread count forwards and backwards use now. */
export function getNumThreads(): number {
  return binding().getNumThreads();
}
