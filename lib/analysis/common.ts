/** Small pieces the analyses share: the model's normalisation, class names, softmax and top-k. */
import type { Model } from '../model';
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
export function topPredictions(model: Model, output: { shape: number[]; data: Float32Array }, n: number, count = 5): Prediction[] {
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
