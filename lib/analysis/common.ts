/** Small pieces the analyses share: the model's normalisation, class names, softmax and top-k. */
import type { FeatscopeError } from '../errors';
import type { Model } from '../model';
import {
  type ImageSource,
  type PreprocessOptions,
  type PreprocessResult,
  type PreprocessedImage,
  preprocessEach,
} from '../preprocess';
import { inputNormalisation, weightsLabel } from '../metadata';

export interface Normalisation {
  mean: [number, number, number];
  std: [number, number, number];
  size: number;
}

export function normalisationOf(model: Model): Normalisation {
  return inputNormalisation(model.metadata);
}

export function className(model: Model, index: number): string {
  return model.metadata.classes?.[index] ?? `class ${index}`;
}

export interface Prediction {
  class: number;
  name: string;
  probability: number;
}

/** Softmax of row `n` of [N, K] logits (in float64, max-shifted). */
export function softmaxRow(logits: Float32Array, k: number, n: number): Float64Array {
  const row = logits.subarray(n * k, (n + 1) * k);
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  const p = new Float64Array(k);
  let sum = 0;
  for (let i = 0; i < k; i++) sum += p[i] = Math.exp(row[i] - max);
  for (let i = 0; i < k; i++) p[i] /= sum;
  return p;
}

/** The top `count` classes of image `n` with their softmax probabilities. */
export function topPredictions(
  model: Model,
  output: { shape: number[]; data: Float32Array },
  n: number,
  count = 5,
): Prediction[] {
  const k = output.shape[1];
  const p = softmaxRow(output.data, k, n);
  return Array.from(p.keys())
    .sort((a, b) => p[b] - p[a] || a - b)
    .slice(0, count)
    .map((c) => ({ class: c, name: className(model, c), probability: p[c] }));
}

/** The weights label every analysis result carries (untrained weights must say so). */
export function weightsOf(model: Model): { trained: boolean | undefined; text: string } {
  return weightsLabel(model.metadata);
}

/** Sum of squares in float64. */
export function sumSquares(a: ArrayLike<number>, from = 0, to = a.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += a[i] * a[i];
  return s;
}

/** An image that could not be read, as the analyses over folders report it. */
export interface FailedImage {
  source: string;
  code?: string;
  message: string;
}

/** One batch of imageBatches(): the readable images of files[start, start + batch) stacked. */
export interface ImageBatch {
  start: number;
  /** Indices into `files` of the stacked images. */
  files: number[];
  /** The stacked images, [files.length, 3, H, W]; empty when none was readable. */
  data: Float32Array;
  shape: [number, number, number, number];
  /** Each stacked image's 8-bit RGB and geometry (for drawing), in the order of `files`. */
  images: PreprocessedImage[];
  failed: FailedImage[];
}

/** How a caller that owns decoding (the viewer: its slots, its cache) preprocesses one image. */
export type ImageDecoder = (source: ImageSource) => Promise<PreprocessResult>;

/**
 * `files` preprocessed in batches (each image on its own, so a bad file fails alone), the next
 * batch read while the caller runs this one through the model. With `decode`, each image is
 * preprocessed by it instead (and `options` are the caller's to have applied).
 */
export async function* imageBatches(
  files: readonly ImageSource[],
  batch: number,
  options: PreprocessOptions,
  decode?: ImageDecoder,
): AsyncGenerator<ImageBatch> {
  const read = (start: number): Promise<Array<PreprocessResult | { error: unknown }>> => {
    const slice = files.slice(start, start + batch);
    if (!decode) return preprocessEach(slice, options);
    return Promise.all(slice.map((f) => decode(f).catch((error: unknown) => ({ error }))));
  };
  let next = read(0);
  for (let start = 0; start < files.length; start += batch) {
    const results = await next;
    if (start + batch < files.length) next = read(start + batch);
    const good: number[] = [];
    const tensors: Float32Array[] = [];
    const images: PreprocessedImage[] = [];
    const failed: FailedImage[] = [];
    results.forEach((r, j) => {
      if ('error' in r) {
        const f = files[start + j];
        failed.push({
          source: typeof f === 'string' ? f : `input ${start + j}`,
          code: (r.error as FeatscopeError).code,
          message: (r.error as Error).message,
        });
      } else {
        tensors.push(r.data);
        images.push(r.images[0]);
        good.push(start + j);
      }
    });
    const per = tensors[0]?.length ?? 0;
    const data = new Float32Array(per * tensors.length);
    tensors.forEach((t, i) => data.set(t, i * per));
    const first = results.find((r) => !('error' in r)) as { shape: [number, number, number, number] } | undefined;
    const [, c, h, w] = first?.shape ?? [0, 3, 0, 0];
    yield { start, files: good, data, shape: [good.length, c, h, w], images, failed };
  }
}
