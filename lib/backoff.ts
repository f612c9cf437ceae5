/**
 * Batch back-off for the batch runs: when a forward fails with CUDA_OOM, the batch is split in
 * halves and each half is run (recursively, down to one image); later batches stay at the size
 * that worked. Every halving is recorded for the manifest.
 *
 * Fault injection for tests (CPU machines have no CUDA to run out of): with
 * FEATSCOPE_TEST_OOM_ABOVE=N, a forward of more than N images fails with CUDA_OOM before it runs.
 */
import { FeatscopeError } from './errors';
import type { Model } from './model';
import type { Capture } from './types';

export interface Backoff {
  /** The largest batch that runs; starts at --batch, halved on each CUDA_OOM. */
  limit: number;
  /** Each halving: the images of the batch that failed and the size it went down to. */
  events: Array<{ images: number; from: number; to: number; message: string }>;
}

export function newBackoff(batch: number): Backoff {
  return { limit: batch, events: [] };
}

function injectedOom(n: number): void {
  const above = process.env.FEATSCOPE_TEST_OOM_ABOVE;
  if (above !== undefined && /^\d+$/.test(above) && n > Number(above)) {
    throw new FeatscopeError(
      'CUDA_OOM',
      `CUDA out of memory (injected by FEATSCOPE_TEST_OOM_ABOVE=${above} for a batch of ${n})`,
    );
  }
}

/** Captures of `n` images (NCHW in `data`), in chunks of at most `state.limit`, halving on CUDA_OOM. */
export async function captureWithBackoff(
  model: Model,
  data: Float32Array,
  shape: [number, number, number, number],
  layers: string[],
  state: Backoff,
): Promise<Capture[]> {
  const [n, c, h, w] = shape;
  const per = c * h * w;
  const parts: Capture[][] = [];
  for (let start = 0; start < n;) {
    const size = Math.min(state.limit, n - start);
    try {
      injectedOom(size);
      parts.push(
        await model.capture({ data: data.subarray(start * per, (start + size) * per), shape: [size, c, h, w] }, layers),
      );
      start += size;
    } catch (err) {
      if ((err as { code?: string }).code !== 'CUDA_OOM' || size === 1) throw err;
      const to = Math.max(1, Math.floor(size / 2));
      state.events.push({ images: size, from: size, to, message: (err as Error).message.split('\n')[0] });
      process.stderr.write(`featscope: CUDA out of memory at a batch of ${size}; retrying it in batches of ${to}\n`);
      state.limit = to;
    }
  }
  return parts.length === 1 ? parts[0] : concatCaptures(parts);
}

/** Captures of consecutive chunks of one batch, joined along the batch dimension. */
export function concatCaptures(parts: Capture[][]): Capture[] {
  return parts[0].map((first, k) => {
    const pieces = parts.map((p) => p[k]);
    if (pieces.some((p) => p.channels || p.stats)) {
      throw new FeatscopeError(
        'INTERNAL',
        `capture ${first.name}: joining parts of a batch with channel selections or statistics is not supported`,
      );
    }
    for (const p of pieces) {
      if (p.name !== first.name || p.shape.slice(1).join() !== first.shape.slice(1).join()) {
        throw new FeatscopeError(
          'SHAPE_MISMATCH',
          `capture ${first.name} changed shape between parts of one batch ([${first.shape}] vs [${p.shape}])`,
        );
      }
    }
    const data = new Float32Array(pieces.reduce((s, p) => s + p.data.length, 0));
    let offset = 0;
    for (const p of pieces) {
      data.set(p.data, offset);
      offset += p.data.length;
    }
    return { ...first, shape: [pieces.reduce((s, p) => s + p.shape[0], 0), ...first.shape.slice(1)], data };
  });
}

/**
 * Rows [0, n) in consecutive chunks of at most `state.limit`, each given to `run(start, size)`;
 * a chunk that fails with CUDA_OOM is retried at half the size (the same back-off as captures).
 */
export async function inChunksWithBackoff(
  n: number,
  state: Backoff,
  run: (start: number, size: number) => Promise<void>,
): Promise<void> {
  for (let start = 0; start < n;) {
    const size = Math.min(state.limit, n - start);
    try {
      injectedOom(size);
      await run(start, size);
      start += size;
    } catch (err) {
      if ((err as { code?: string }).code !== 'CUDA_OOM' || size === 1) throw err;
      const to = Math.max(1, Math.floor(size / 2));
      state.events.push({ images: size, from: size, to, message: (err as Error).message.split('\n')[0] });
      process.stderr.write(`featscope: CUDA out of memory at a batch of ${size}; retrying it in batches of ${to}\n`);
      state.limit = to;
    }
  }
}
