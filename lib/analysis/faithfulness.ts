/**
 * Is a saliency map faithful to the model? Two standard checks.
 *
 * - Deletion and insertion curves (Petsiuk et al. 2018, RISE's evaluation.py). c is the target
 *   class (default: the model's top-1 class on the clean input). Pixels are ordered by the map,
 *   descending, ties by pixel index (a stable sort). Each step changes k pixels (default: the
 *   input's width, 224 at 224x224); n = ceil(HW / k) steps. Deletion sets the step's pixels (all
 *   channels, in model input space: the normalised tensor) to 0; insertion starts from a blur of
 *   the input and puts the original pixels back in the same order. The blur is RISE's: an 11x11
 *   kernel, scipy's gaussian_filter(delta, sigma=5) (mode 'reflect') of a centred delta, applied
 *   to each channel alone as a convolution with zero padding 5. p_i is the softmax probability of
 *   c after step i (i = 0..n) and AUC = (sum p_i - p_0/2 - p_n/2) / n (the trapezoid rule over the
 *   fraction of pixels changed). A faithful map has a low deletion AUC and a high insertion AUC.
 *   A map smaller than the input (Grad-CAM's) is first upsampled bilinearly to the input size with
 *   pixel centres aligned (align_corners=False), as the overlays draw it.
 *
 * - The model-parameter randomisation test (Adebayo et al. 2018, "cascading"): from the output
 *   back to the input, the parameters of one more layer are randomised at each step, the map is
 *   computed again on that copy of the model, and the Spearman rank correlation of |map| with
 *   the original |map| is reported. A map that still correlates above 0.5 once the top half of
 *   the layers is randomised does not depend on what the model learned.
 */
import { types } from 'util';
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { Model, Parameter } from '../model';
import { checkInput } from '../model';
import { resampleMap } from '../render/resample';
import type { TensorInput } from '../types';
import { type Backoff, inChunksWithBackoff, newBackoff } from '../backoff';
import { softmaxRow } from './common';
import { mulberry32 } from './random';
import { saliency, type SaliencyOptions } from './saliency';

export type SaliencyMetric = 'deletion' | 'insertion';
export const SALIENCY_METRICS: readonly SaliencyMetric[] = ['deletion', 'insertion'];

/** One map per image: [N, h, w]; upsampled to the input's H x W when smaller or larger. */
export interface SaliencyMaps {
  data: Float32Array;
  shape: [number, number, number] | number[];
}

export interface EvaluateSaliencyOptions {
  /** default both: ['deletion', 'insertion']. */
  metrics?: SaliencyMetric[];
  /** Pixels changed per step; default the input's width (224 at 224x224). */
  step?: number;
  /** Target class per image, one for all, or omitted for each image's top-1 class on the clean input. */
  classes?: number | number[];
  /** Rows (perturbed inputs) per forward; default 32, halved on CUDA out of memory. */
  batch?: number;
  /** Run the frozen, optimised graph (model.forward's `optimize`); default true. false: the exact graph. */
  optimize?: boolean;
  /** The back-off state to share with other runs (its limit caps the batch). */
  backoff?: Backoff;
}

export interface SaliencyCurve {
  /** p_0 ... p_n: the softmax probability of the class after each step. */
  probabilities: number[];
  /** (sum p_i - p_0 / 2 - p_n / 2) / n. */
  auc: number;
}

export interface SaliencyEvaluation {
  class: number;
  deletion?: SaliencyCurve;
  insertion?: SaliencyCurve;
}

export interface SaliencyEvaluationResult {
  /** Pixels per step (k) and the number of steps (n); each curve has n + 1 points. */
  step: number;
  steps: number;
  images: SaliencyEvaluation[];
  /** The maps the pixels were ordered by, at the input's size (upsampled when they were smaller). */
  maps: { data: Float32Array; shape: [number, number, number] };
}

const EVAL_KEYS = ['metrics', 'step', 'classes', 'batch', 'backoff', 'optimize'] as const;

/** The 11x11 blur kernel of RISE: scipy.ndimage.gaussian_filter(delta, sigma=5), mode 'reflect', row-major. */
export function riseBlurKernel(): Float64Array {
  const size = 11;
  const sigma = 5;
  const radius = Math.floor(4 * sigma + 0.5); // scipy's truncate=4.0
  const w = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let j = -radius; j <= radius; j++) sum += w[j + radius] = Math.exp((-0.5 * j * j) / (sigma * sigma));
  for (let j = 0; j < w.length; j++) w[j] /= sum;
  // 'reflect' (d c b a | a b c d | d c b a): period 2 * size.
  const reflect = (i: number) => {
    const p = 2 * size;
    let m = ((i % p) + p) % p;
    if (m >= size) m = p - 1 - m;
    return m;
  };
  // gaussian_filter of an outer product of deltas is the outer product of the 1-D filtered deltas.
  const k1 = new Float64Array(size);
  const centre = (size - 1) / 2;
  for (let i = 0; i < size; i++)
    for (let j = -radius; j <= radius; j++) if (reflect(i + j) === centre) k1[i] += w[j + radius];
  const k = new Float64Array(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) k[y * size + x] = k1[y] * k1[x];
  return k;
}

/** RISE's blur of one image [C, H, W]: each channel convolved with riseBlurKernel(), zero padding 5. */
export function riseBlur(image: Float32Array, c: number, h: number, w: number): Float32Array {
  const k = riseBlurKernel();
  const out = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    const src = image.subarray(ch * h * w, (ch + 1) * h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let dy = -5; dy <= 5; dy++) {
          const yy = y + dy;
          if (yy < 0 || yy >= h) continue;
          for (let dx = -5; dx <= 5; dx++) {
            const xx = x + dx;
            if (xx < 0 || xx >= w) continue;
            s += k[(dy + 5) * 11 + dx + 5] * src[yy * w + xx];
          }
        }
        out[ch * h * w + y * w + x] = s;
      }
    }
  }
  return out;
}

/** Pixel indices by value, descending; equal values by index (a stable sort). */
export function pixelOrder(map: ArrayLike<number>): Int32Array {
  const idx = Array.from({ length: map.length }, (_, i) => i);
  idx.sort((a, b) => map[b] - map[a] || a - b);
  return Int32Array.from(idx);
}

/** (sum p_i - p_0 / 2 - p_n / 2) / n for p_0 ... p_n. */
export function curveAuc(p: ArrayLike<number>): number {
  const n = p.length - 1;
  if (n < 1) return NaN;
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i];
  return (s - p[0] / 2 - p[n] / 2) / n;
}

function checkMaps(maps: unknown, n: number): { data: Float32Array; n: number; h: number; w: number } {
  const m = maps as SaliencyMaps | null;
  if (
    !m ||
    typeof m !== 'object' ||
    !types.isFloat32Array(m.data) ||
    !Array.isArray(m.shape) ||
    m.shape.length !== 3 ||
    !m.shape.every((d) => Number.isInteger(d) && d > 0)
  )
    throw invalidParameter('saliency maps', '{ data: Float32Array, shape: [N, h, w] }', maps);
  const [mn, h, w] = m.shape;
  if (mn !== n)
    throw new FeatscopeError('SHAPE_MISMATCH', `the saliency maps are for ${mn} images but the input holds ${n}`);
  if (m.data.length !== mn * h * w)
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `saliency maps of shape [${m.shape.join(', ')}] need ${mn * h * w} values, their data holds ${m.data.length}`,
    );
  for (let i = 0; i < m.data.length; i++)
    if (!Number.isFinite(m.data[i]))
      throw new FeatscopeError(
        'INVALID_ARGUMENT',
        `saliency map value ${i} is ${m.data[i]}; pixels can only be ordered by finite values`,
      );
  return { data: m.data, n: mn, h, w };
}

/** The maps at H x W: as they are, or upsampled bilinearly (align_corners=False) as the overlays draw them. */
export function mapsAtInputSize(maps: SaliencyMaps, h: number, w: number): Float32Array {
  const [n, mh, mw] = maps.shape;
  if (mh === h && mw === w) return maps.data;
  const out = new Float32Array(n * h * w);
  for (let i = 0; i < n; i++)
    out.set(resampleMap(maps.data.subarray(i * mh * mw, (i + 1) * mh * mw), mw, mh, w, h, 'bilinear'), i * h * w);
  return out;
}

/** Deletion and insertion curves and their AUCs for each image's map (see the top of this file). */
export async function evaluateSaliency(
  model: Model,
  input: TensorInput,
  maps: SaliencyMaps,
  options: EvaluateSaliencyOptions = {},
): Promise<SaliencyEvaluationResult> {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw invalidParameter('evaluateSaliency options', 'an object', options);
  checkKnownKeys('evaluateSaliency', options, EVAL_KEYS);
  const { data: x, shape } = checkInput(input);
  const [n, c, h, w] = shape;
  checkMaps(maps, n);
  const metrics = options.metrics ?? [...SALIENCY_METRICS];
  if (
    !Array.isArray(metrics) ||
    metrics.length === 0 ||
    !metrics.every((m) => SALIENCY_METRICS.includes(m)) ||
    new Set(metrics).size !== metrics.length
  )
    throw invalidParameter('metrics', "a list of 'deletion' and/or 'insertion'", metrics);
  const hw = h * w;
  const step = options.step ?? w;
  if (!Number.isInteger(step) || step < 1 || step > hw)
    throw invalidParameter('step', `an integer from 1 to ${hw} (pixels per step)`, options.step);
  const batch = options.batch ?? 32;
  if (!Number.isInteger(batch) || batch < 1 || batch > 4096)
    throw invalidParameter('batch', 'an integer from 1 to 4096', options.batch);
  const optimize = options.optimize ?? true;
  if (typeof optimize !== 'boolean') throw invalidParameter('optimize', 'a boolean', options.optimize);
  const backoff = options.backoff ?? newBackoff(batch);
  if (backoff.limit > batch) backoff.limit = batch;
  const steps = Math.ceil(hw / step);
  const per = c * hw;
  const full = mapsAtInputSize(maps as SaliencyMaps, h, w);

  // The target classes: given, or the top-1 on the clean input.
  let classes: number[];
  const given = options.classes;
  if (given === undefined) {
    const out = (await model.forward({ data: x, shape }, { optimize: false })).output;
    if (!out || out.shape.length !== 2)
      throw new FeatscopeError(
        'NOT_A_CLASSIFIER',
        `deletion and insertion need a model whose output is [N, classes] logits; ${model.path} gives ${out ? `[${out.shape.join(', ')}]` : 'no tensor'}`,
      );
    const k = out.shape[1];
    classes = [];
    for (let i = 0; i < n; i++) {
      const row = out.data.subarray(i * k, (i + 1) * k);
      let best = 0;
      for (let j = 1; j < k; j++) if (row[j] > row[best]) best = j;
      classes.push(best);
    }
  } else {
    const list = typeof given === 'number' ? [given] : given;
    if (
      !Array.isArray(list) ||
      !list.every((v) => Number.isInteger(v) && v >= 0) ||
      (list.length !== 1 && list.length !== n)
    )
      throw invalidParameter('classes', `a class index, or one per image (${n})`, given);
    classes = list.length === 1 ? new Array(n).fill(list[0]) : [...list];
  }

  const orders = Array.from({ length: n }, (_, i) => pixelOrder(full.subarray(i * hw, (i + 1) * hw)));
  const blurred = metrics.includes('insertion')
    ? Array.from({ length: n }, (_, i) => riseBlur(x.subarray(i * per, (i + 1) * per), c, h, w))
    : [];
  // Row r: image floor(r / (M (n + 1))), metric, step i.
  const perImage = metrics.length * (steps + 1);
  const rows = n * perImage;
  const probs = new Float64Array(rows);
  const fill = (r: number, dst: Float32Array) => {
    const img = Math.floor(r / perImage);
    const rest = r % perImage;
    const metric = metrics[Math.floor(rest / (steps + 1))];
    const i = rest % (steps + 1);
    const orig = x.subarray(img * per, (img + 1) * per);
    const order = orders[img];
    const upto = Math.min(i * step, hw);
    if (metric === 'deletion') {
      dst.set(orig);
      for (let j = 0; j < upto; j++) for (let ch = 0; ch < c; ch++) dst[ch * hw + order[j]] = 0;
    } else {
      dst.set(blurred[img]);
      for (let j = 0; j < upto; j++) {
        const p = order[j];
        for (let ch = 0; ch < c; ch++) dst[ch * hw + p] = orig[ch * hw + p];
      }
    }
  };
  await inChunksWithBackoff(rows, backoff, async (start, size) => {
    const data = new Float32Array(size * per);
    for (let r = 0; r < size; r++) fill(start + r, data.subarray(r * per, (r + 1) * per));
    const out = (await model.forward({ data, shape: [size, c, h, w] }, { optimize })).output;
    if (!out || out.shape.length !== 2)
      throw new FeatscopeError(
        'NOT_A_CLASSIFIER',
        `deletion and insertion need a model whose output is [N, classes] logits; ${model.path} gives ${out ? `[${out.shape.join(', ')}]` : 'no tensor'}`,
      );
    const k = out.shape[1];
    for (let r = 0; r < size; r++) {
      const cls = classes[Math.floor((start + r) / perImage)];
      if (cls >= k) throw invalidParameter('classes', `class indices below ${k} (the model's number of classes)`, cls);
      probs[start + r] = softmaxRow(out.data, k, r)[cls];
    }
  });
  const images: SaliencyEvaluation[] = classes.map((cls, img) => {
    const e: SaliencyEvaluation = { class: cls };
    metrics.forEach((metric, mi) => {
      const from = img * perImage + mi * (steps + 1);
      const p = Array.from(probs.subarray(from, from + steps + 1));
      e[metric] = { probabilities: p, auc: curveAuc(p) };
    });
    return e;
  });
  return { step, steps, images, maps: { data: full, shape: [n, h, w] } };
}

// ---------------------------------------------------------------------------------------------
// The randomisation sanity check

/** An explanation method as the check calls it: maps [N, h, w] of `input` on `model` (a randomised copy). */
export type Explainer = (model: Model, input: TensorInput) => Promise<SaliencyMaps>;

export interface RandomisationOptions {
  /**
   * The layers to randomise, in the order of the cascade (the first is randomised first). Default:
   * every module that owns parameters and is called by forward, from the last called to the first.
   */
  layers?: string[];
  /** Seed of the permutations; default 0. */
  seed?: number;
}

export interface RandomisationStep {
  /** The layer randomised at this step (those of the steps before stay randomised). */
  layer: string;
  /** Its parameters that were permuted. */
  parameters: string[];
  /** True when the permutation changed no value (e.g. constant BatchNorm weights): the maps are those of the step before. */
  unchanged: boolean;
  /** Per image: Spearman correlation of |map| with the original |map| (null: one of them is constant). */
  correlations: (number | null)[];
}

export interface RandomisationResult {
  seed: number;
  steps: RandomisationStep[];
  /** Index into `steps` of the step after which the top half of the layers is randomised (ceil(L/2) - 1). */
  half: number;
  /** Per image: the correlation after the top half is randomised, and whether the map fails (> 0.5). */
  images: { correlationAtHalf: number | null; fails: boolean }[];
}

/** Where the map fails the check: correlation above this after the top half of the layers is randomised. */
export const SANITY_THRESHOLD = 0.5;

/** Modules that own parameters (directly) and are called by forward, from the last called to the first. */
export async function cascadeLayers(model: Model): Promise<string[]> {
  const owners = new Set(
    model
      .parameters()
      .filter((p) => p.kind === 'parameter')
      .map((p) => p.name.slice(0, Math.max(0, p.name.lastIndexOf('.')))),
  );
  const layers = (await model.layers()).filter((l) => l.calls > 0 && owners.has(l.name)).map((l) => l.name);
  return layers.reverse();
}

/** FNV-1a of a string, mixed with the seed: each parameter gets its own stream. */
function seedOf(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

/**
 * The randomised values of the parameters of `layers`: each parameter tensor (not buffers) is
 * permuted as a flat array by a Fisher-Yates shuffle seeded by (seed, parameter name), so a layer
 * gets the same values at every step of the cascade and its distribution of values is kept.
 */
export function randomisedParameters(params: Parameter[], layers: string[], seed = 0): Map<string, Float32Array> {
  const wanted = new Set(layers);
  const out = new Map<string, Float32Array>();
  for (const p of params) {
    if (p.kind !== 'parameter') continue;
    const owner = p.name.slice(0, Math.max(0, p.name.lastIndexOf('.')));
    if (!wanted.has(owner)) continue;
    const v = Float32Array.from(p.data);
    const u = mulberry32(seedOf(seed, p.name));
    for (let i = v.length - 1; i > 0; i--) {
      const j = Math.floor(u() * (i + 1));
      const t = v[i];
      v[i] = v[j];
      v[j] = t;
    }
    out.set(p.name, v);
  }
  return out;
}

/** Average ranks (1-based; ties share their mean rank), as scipy.stats.rankdata. */
function ranks(a: ArrayLike<number>): Float64Array {
  const idx = Array.from({ length: a.length }, (_, i) => i).sort((x, y) => a[x] - a[y]);
  const r = new Float64Array(a.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && a[idx[j + 1]] === a[idx[i]]) j++;
    const mean = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[idx[k]] = mean;
    i = j + 1;
  }
  return r;
}

/** Spearman rank correlation (Pearson's of average ranks, as scipy.stats.spearmanr); null when either is constant. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number | null {
  if (a.length !== b.length || a.length < 2) throw invalidParameter('spearman', 'two series of one length (>= 2)', a);
  const ra = ranks(a);
  const rb = ranks(b);
  const m = (a.length + 1) / 2;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < ra.length; i++) {
    const da = ra[i] - m;
    const db = rb[i] - m;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa === 0 || sbb === 0) return null;
  return sab / Math.sqrt(saa * sbb);
}

const abs = (a: Float32Array) => Float32Array.from(a, Math.abs);

/**
 * The cascading model-parameter randomisation test: per step one more layer (from the output
 * back) randomised by randomisedParameters(), on a copy of the model (model.withParameters: the
 * loaded model is not changed), the maps recomputed by `explain` and correlated with the originals.
 */
export async function randomisationCheck(
  model: Model,
  input: TensorInput,
  explain: Explainer,
  options: RandomisationOptions = {},
): Promise<RandomisationResult> {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw invalidParameter('randomisationCheck options', 'an object', options);
  checkKnownKeys('randomisationCheck', options, ['layers', 'seed']);
  if (typeof explain !== 'function')
    throw invalidParameter('explain', 'a function (model, input) => maps [N, h, w]', explain);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw invalidParameter('seed', 'a non-negative integer', options.seed);
  const params = model.parameters();
  const all = await cascadeLayers(model);
  const layers = options.layers ?? all;
  if (!Array.isArray(layers) || layers.length === 0)
    throw invalidParameter('layers', 'a non-empty list of layers that own parameters', options.layers);
  for (const l of layers)
    if (!all.includes(l))
      throw new FeatscopeError(
        'INVALID_ARGUMENT',
        `layer ${JSON.stringify(l)} owns no parameters or is not called by forward; the cascade can randomise: ${all.join(', ')}`,
      );
  const { shape } = checkInput(input);
  const n = shape[0];
  const original = await explain(model, input);
  checkMaps(original, n);
  const base = abs(original.data);
  const per = base.length / n;
  const byName = new Map(params.map((p) => [p.name, p.data]));
  const steps: RandomisationStep[] = [];
  let current = base;
  // Each layer's permutation is drawn once; step s uses those of layers 0..s.
  const values = new Map<string, Float32Array>();
  for (let s = 0; s < layers.length; s++) {
    const own = [...randomisedParameters(params, [layers[s]], seed).entries()];
    for (const [name, v] of own) values.set(name, v);
    const unchanged = own.every(([name, v]) => {
      const o = byName.get(name)!;
      for (let i = 0; i < v.length; i++) if (v[i] !== o[i]) return false;
      return true;
    });
    if (!unchanged) {
      const copy = await model.withParameters(values);
      try {
        const maps = await explain(copy, input);
        checkMaps(maps, n);
        current = abs(maps.data);
      } finally {
        copy.dispose();
      }
    }
    const correlations: (number | null)[] = [];
    for (let i = 0; i < n; i++)
      correlations.push(spearman(base.subarray(i * per, (i + 1) * per), current.subarray(i * per, (i + 1) * per)));
    steps.push({ layer: layers[s], parameters: own.map(([name]) => name), unchanged, correlations });
  }
  const half = Math.ceil(layers.length / 2) - 1;
  const images = Array.from({ length: n }, (_, i) => {
    const r = steps[half].correlations[i];
    return { correlationAtHalf: r, fails: r !== null && r > SANITY_THRESHOLD };
  });
  return { seed, steps, half, images };
}

/** Grad-CAM at `layer` for fixed classes, as an Explainer (maps at the layer's resolution). */
export function gradCamExplainer(layer: string, classes?: number[]): Explainer {
  return async (m, x) => {
    const r = await m.gradcam(x, { layer, classes });
    return { data: r.data, shape: r.shape as [number, number, number] };
  };
}

/** An input saliency method for fixed classes, as an Explainer (maps at the input's resolution). */
export function saliencyExplainer(options: SaliencyOptions): Explainer {
  return async (m, x) => (await saliency(m, x, options)).map;
}
