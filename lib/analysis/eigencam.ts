/**
 * EigenCAM (Muhammad & Yeasin 2020, as pytorch-grad-cam's get_2d_projection computes it): a layer's
 * activations of one image as a matrix M of positions x channels ([H*W, C]), each channel centred
 * (its mean over positions subtracted, as pytorch-grad-cam does; `center: false` skips it), and
 * the map M v, v the first right singular vector of M (the first principal direction of the
 * channels). An SVD's sign is arbitrary: featscope fixes it so that the components of v sum to
 * >= 0 (the map then correlates positively with the channel sum). No gradients: it works for any
 * model whose layer gives an [N, C, H, W] capture, including .pt2 packages and the parts of a
 * structured output (`backbone.fpn:0`).
 */
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { Model } from '../model';
import type { Capture, TensorInput } from '../types';

export interface EigenCamOptions {
  /** A layer (or part, `backbone.fpn:0`) with an [N, C, H, W] output; a module called several times: `name#k`. */
  layer: string;
  /** Subtract each channel's mean over positions before the SVD (default true, as pytorch-grad-cam). */
  center?: boolean;
}

export interface EigenCamResult {
  /** The capture the map was computed from (e.g. `backbone.fpn:0`). */
  layer: string;
  /** [N, H, W]: the projection M v, not normalised (can be negative). */
  shape: number[];
  data: Float32Array;
  /** Per image: the share of the (centred) activations' energy on the first component, sigma_1^2 / sum sigma_i^2. */
  explained: number[];
}

const KEYS = ['layer', 'center'] as const;

/** EigenCAM of a batch: one forward that captures `options.layer`, then the SVD per image. */
export async function eigenCam(model: Model, input: TensorInput, options: EigenCamOptions): Promise<EigenCamResult> {
  if (!options || typeof options !== 'object')
    throw invalidParameter('eigenCam options', 'an object with a layer', options);
  checkKnownKeys('eigenCam', options, KEYS);
  if (typeof options.layer !== 'string') throw invalidParameter('layer', 'a layer name', options.layer);
  const center = options.center ?? true;
  if (typeof center !== 'boolean') throw invalidParameter('center', 'a boolean', center);
  const caps = await model.capture(input, [options.layer], { optimize: false });
  const cap = pickCapture(caps, options.layer);
  return eigenCamOf(cap, center);
}

function pickCapture(caps: Capture[], layer: string): Capture {
  const exact = caps.find((c) => c.name === layer);
  if (exact) return exact;
  const tensors = caps.filter((c) => c.shape.length === 4);
  if (caps.length === 1 || tensors.length === 1) return tensors[0] ?? caps[0];
  throw new FeatscopeError(
    'INVALID_ARGUMENT',
    `EigenCAM needs one [N, C, H, W] capture; ${layer} gives ${caps.length}: ${caps.map((c) => c.name).join(', ')}; name one (e.g. ${caps[0]?.name})`,
  );
}

/** EigenCAM of a capture already made ([N, C, H, W]). */
export function eigenCamOf(cap: Capture, center = true): EigenCamResult {
  if (cap.shape.length !== 4)
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `EigenCAM needs a layer with an [N, C, H, W] output; ${cap.name} gives [${cap.shape.join(', ')}]; pick a convolutional layer (\`featscope layers --input-size N\` shows shapes)`,
    );
  const [n, c, h, w] = cap.shape;
  const data = new Float32Array(n * h * w);
  const explained: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = firstComponentMap(cap.data.subarray(i * c * h * w, (i + 1) * c * h * w), c, h * w, center);
    data.set(r.map, i * h * w);
    explained.push(r.explained);
  }
  return { layer: cap.name, shape: [n, h, w], data, explained };
}

/**
 * For one image's activations a ([C, P] row-major: channel-major, P positions): the projection of
 * M = a^T (P x C, centred per channel when `center`) onto its first right singular vector v, with
 * sum(v) >= 0. Computed in float64 by power iteration on the smaller Gram matrix (M^T M or M M^T),
 * run until the vector changes by less than 1e-12.
 */
export function firstComponentMap(
  a: Float32Array,
  C: number,
  P: number,
  center: boolean,
): { map: Float32Array; explained: number; vector: Float64Array } {
  // M[p][c] = a[c * P + p] - mean_c
  const M = new Float64Array(P * C);
  for (let ch = 0; ch < C; ch++) {
    let mean = 0;
    if (center) {
      for (let p = 0; p < P; p++) mean += a[ch * P + p];
      mean /= P;
    }
    for (let p = 0; p < P; p++) {
      const v = a[ch * P + p] - mean;
      M[p * C + ch] = Number.isNaN(v) ? 0 : v; // pytorch-grad-cam sets NaN activations to 0
    }
  }
  const useChannels = C <= P; // Gram matrix over channels (C x C), else over positions (P x P)
  const d = useChannels ? C : P;
  const G = new Float64Array(d * d);
  if (useChannels) {
    for (let p = 0; p < P; p++) {
      const row = p * C;
      for (let i = 0; i < C; i++) {
        const mi = M[row + i];
        if (mi === 0) continue;
        const gi = i * C;
        for (let j = i; j < C; j++) G[gi + j] += mi * M[row + j];
      }
    }
  } else {
    for (let i = 0; i < P; i++)
      for (let j = i; j < P; j++) {
        let s = 0;
        for (let ch = 0; ch < C; ch++) s += M[i * C + ch] * M[j * C + ch];
        G[i * P + j] = s;
      }
  }
  let trace = 0;
  for (let i = 0; i < d; i++) {
    trace += G[i * d + i];
    for (let j = 0; j < i; j++) G[i * d + j] = G[j * d + i];
  }
  const vector = new Float64Array(C);
  const map = new Float32Array(P);
  if (!(trace > 0)) return { map, explained: 0, vector };
  // Power iteration, from a start that is never orthogonal to a dominant vector by construction
  // (all ones plus a fixed ramp).
  let x: Float64Array = new Float64Array(d);
  for (let i = 0; i < d; i++) x[i] = 1 + i / d;
  normalise(x);
  let y: Float64Array = new Float64Array(d);
  let lambda = 0;
  for (let it = 0; it < 20000; it++) {
    for (let i = 0; i < d; i++) {
      let s = 0;
      const gi = i * d;
      for (let j = 0; j < d; j++) s += G[gi + j] * x[j];
      y[i] = s;
    }
    lambda = normalise(y);
    let change = 0;
    for (let i = 0; i < d; i++) change = Math.max(change, Math.abs(y[i] - x[i]));
    [x, y] = [y, x];
    if (change < 1e-12) break;
  }
  // v (channels): x itself, or M^T u / |M^T u| from the positions' vector u.
  if (useChannels) vector.set(x);
  else {
    for (let p = 0; p < P; p++) for (let ch = 0; ch < C; ch++) vector[ch] += M[p * C + ch] * x[p];
    normalise(vector);
  }
  let sum = 0;
  for (let ch = 0; ch < C; ch++) sum += vector[ch];
  if (sum < 0) for (let ch = 0; ch < C; ch++) vector[ch] = -vector[ch];
  for (let p = 0; p < P; p++) {
    let s = 0;
    for (let ch = 0; ch < C; ch++) s += M[p * C + ch] * vector[ch];
    map[p] = s;
  }
  return { map, explained: lambda / trace, vector };
}

function normalise(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const norm = Math.sqrt(s);
  if (norm > 0) for (let i = 0; i < v.length; i++) v[i] /= norm;
  return norm;
}
