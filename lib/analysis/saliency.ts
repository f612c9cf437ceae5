/**
 * Input attributions: which pixels the target class score is most sensitive to.
 *
 * - 'gradient' (Simonyan et al. 2013): d score / d input.
 * - 'smoothgrad' (Smilkov et al. 2017): the gradient averaged over copies of the input with
 *   Gaussian noise of sigma = noise x (max - min of the input) added.
 * - 'integrated-gradients' (Sundararajan et al. 2017): (x - baseline) times the gradient averaged
 *   along the straight path from the baseline to x (midpoint rule, `samples` steps). The baseline
 *   is all zeros in normalised space: the dataset's mean colour. The attributions of an image sum
 *   to about score(x) - score(baseline) ("completeness"), reported with the result.
 *
 * Every evaluation is a batched forward and backward through model.backward(); the noisy copies
 * and path points of all images go through in batches of `batch` rows.
 */
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { Model } from '../model';
import { type ImageSource, type PreprocessResult, preprocess } from '../preprocess';
import { type ColormapName, checkColormap } from '../render/colormaps';
import { drawOverlay } from '../render/overlay';
import type { TensorInput } from '../types';
import { type Prediction, className, normalisationOf, softmaxRow, topPredictions, weightsOf } from './common';
import { displayPhoto, frameHeatmap, upscale } from './gradcam';
import { gaussianNoise } from './random';

export type SaliencyMethod = 'gradient' | 'smoothgrad' | 'integrated-gradients';

export interface SaliencyOptions {
  /** default 'gradient'. */
  method?: SaliencyMethod;
  /** Target class per image, one for all, or omitted for each image's top-1 prediction. */
  classes?: number | number[];
  /** Noisy copies (smoothgrad, default 16) or path steps (integrated gradients, default 32). */
  samples?: number;
  /** smoothgrad: noise sigma as a fraction of each image's value range; default 0.15. */
  noise?: number;
  /** smoothgrad: seed of the noise; default 0 (same noise, same map). */
  seed?: number;
  /** Rows per forward/backward; default 16. */
  batch?: number;
}

export interface SaliencyResult {
  method: SaliencyMethod;
  /** The target class of each image (given, or its top-1 prediction on the clean input). */
  classes: number[];
  /** The target logit of each image on the clean input. */
  scores: number[];
  /** The model's output (logits) on the clean input. */
  logits: { shape: number[]; data: Float32Array };
  /** Per input value: the gradient, its noisy average, or the integrated gradient. [N, C, H, W] */
  attributions: { shape: number[]; data: Float32Array };
  /**
   * One value per pixel, for display: max over channels of |attribution| (gradient, smoothgrad),
   * |sum over channels| (integrated gradients). [N, H, W]
   */
  map: { shape: [number, number, number]; data: Float32Array };
  /** Integrated gradients: per image, the sum of attributions and score(x) - score(baseline). */
  completeness?: { attributionSum: number[]; scoreDelta: number[] };
}

const KEYS = ['method', 'classes', 'samples', 'noise', 'seed', 'batch'] as const;
const METHODS: readonly SaliencyMethod[] = ['gradient', 'smoothgrad', 'integrated-gradients'];

function checkCount(option: string, value: unknown, fallback: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max)
    throw invalidParameter(option, `an integer from 1 to ${max}`, value);
  return v as number;
}

/** Attributions of the target class score with respect to the input pixels. */
export async function saliency(
  model: Model,
  input: TensorInput,
  options: SaliencyOptions = {},
): Promise<SaliencyResult> {
  if (options === null || typeof options !== 'object') throw invalidParameter('saliency options', 'an object', options);
  checkKnownKeys('saliency', options, KEYS);
  const method = options.method ?? 'gradient';
  if (!METHODS.includes(method)) throw invalidParameter('method', METHODS.map((m) => `'${m}'`).join(', '), method);
  const samples = checkCount('samples', options.samples, method === 'smoothgrad' ? 16 : 32, 1024);
  const batch = checkCount('batch', options.batch, 16, 4096);
  const noise = options.noise ?? 0.15;
  if (typeof noise !== 'number' || !(noise >= 0 && noise <= 10))
    throw invalidParameter('noise', 'a number from 0 to 10', noise);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw invalidParameter('seed', 'a non-negative integer', seed);
  if (!input || typeof input !== 'object' || !Array.isArray(input.shape) || input.shape.length !== 4) {
    throw invalidParameter('input', 'an image batch { data: Float32Array, shape: [N, C, H, W] }', input);
  }
  const shape = input.shape as number[];
  const [n, c, h, w] = shape;
  const per = c * h * w;

  // The clean input: the target classes (top-1 when not given), their scores, the plain gradient.
  const clean = await model.backward(input, { classes: options.classes, inputGrad: true });
  if (clean.output.shape.length !== 2) {
    throw new FeatscopeError(
      'NOT_A_CLASSIFIER',
      `saliency needs a model whose output is [N, classes] logits; ${model.path} gives [${clean.output.shape.join(', ')}]`,
    );
  }
  const classes = clean.classes;
  const k = clean.output.shape[1];
  const scores = classes.map((cls, i) => clean.output.data[i * k + cls]);

  let attributions: Float32Array;
  let completeness: SaliencyResult['completeness'];
  if (method === 'gradient') {
    attributions = clean.inputGrad!;
  } else {
    // Row r of the evaluation list is sample (r % samples) of image floor(r / samples).
    const rows = n * samples;
    const sums = new Float64Array(n * per);
    const sigma = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let j = i * per; j < (i + 1) * per; j++) {
        const v = input.data[j];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      sigma[i] = noise * (hi - lo);
    }
    const eps = method === 'smoothgrad' ? gaussianNoise(seed, rows * per) : undefined;
    for (let start = 0; start < rows; start += batch) {
      const count = Math.min(batch, rows - start);
      const data = new Float32Array(count * per);
      const rowClasses: number[] = [];
      for (let r = 0; r < count; r++) {
        const row = start + r;
        const i = Math.floor(row / samples);
        const s = row % samples;
        const x = input.data.subarray(i * per, (i + 1) * per);
        const out = data.subarray(r * per, (r + 1) * per);
        if (eps) {
          const e = eps.subarray(row * per, (row + 1) * per);
          for (let j = 0; j < per; j++) out[j] = x[j] + sigma[i] * e[j];
        } else {
          const alpha = (s + 0.5) / samples; // baseline 0: the path point is alpha * x
          for (let j = 0; j < per; j++) out[j] = alpha * x[j];
        }
        rowClasses.push(classes[i]);
      }
      const r = await model.backward({ data, shape: [count, c, h, w] }, { classes: rowClasses, inputGrad: true });
      const g = r.inputGrad!;
      for (let rr = 0; rr < count; rr++) {
        const i = Math.floor((start + rr) / samples);
        const dst = i * per;
        for (let j = 0; j < per; j++) sums[dst + j] += g[rr * per + j];
      }
    }
    attributions = new Float32Array(n * per);
    for (let j = 0; j < n * per; j++) {
      const mean = sums[j] / samples;
      attributions[j] = eps ? mean : input.data[j] * mean; // integrated gradients: (x - 0) * mean gradient
    }
    if (!eps) {
      const base = await model.forward({ data: new Float32Array(n * per), shape }, { optimize: false }); // as the gradients
      const attributionSum: number[] = [];
      const scoreDelta: number[] = [];
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let j = i * per; j < (i + 1) * per; j++) sum += attributions[j];
        attributionSum.push(sum);
        scoreDelta.push(scores[i] - base.output!.data[i * k + classes[i]]);
      }
      completeness = { attributionSum, scoreDelta };
    }
  }

  const map = new Float32Array(n * h * w);
  const plane = h * w;
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < plane; p++) {
      let v = 0;
      for (let ch = 0; ch < c; ch++) {
        const a = attributions[i * per + ch * plane + p];
        if (method === 'integrated-gradients') v += a;
        else if (Math.abs(a) > v) v = Math.abs(a);
      }
      map[i * plane + p] = Math.abs(v);
    }
  }
  return {
    method,
    classes,
    scores,
    logits: clean.output,
    attributions: { shape: [...shape], data: attributions },
    map: { shape: [n, h, w], data: map },
    ...(completeness ? { completeness } : {}),
  };
}

export interface SaliencyOverlayOptions extends SaliencyOptions {
  /** 'squash' (default): Resize((size, size)), the map covers the whole photo. 'crop': Resize + CenterCrop; drawn on the crop. */
  resize?: 'squash' | 'crop';
  /** default 'inferno'. */
  colormap?: ColormapName;
  /** Weight of the map over the photo; default 0.6. */
  alpha?: number;
  /** The map is scaled to this percentile of its values (brighter ones saturate); default 99. */
  clip?: number;
  /** Longer side of the drawn photo in pixels; default 448. */
  displaySize?: number;
  /** How many predictions to list; default 3. */
  top?: number;
}

export interface SaliencyOverlay {
  source: string;
  method: SaliencyMethod;
  target: Prediction;
  predictions: Prediction[];
  /** The map at the model's input size, scaled to [0, 1] by `clipValue`. */
  map: { data: Float32Array; width: number; height: number };
  /** The map before scaling, at the model's input size (SaliencyResult.map of this image). */
  values: Float32Array;
  /** The map value drawn with the colour map's last colour (the `clip` percentile). */
  clipValue: number;
  completeness?: { attributionSum: number; scoreDelta: number };
  png: Buffer;
  width: number;
  height: number;
  weights: { trained: boolean | undefined; text: string };
}

const OVERLAY_KEYS = [...KEYS, 'resize', 'colormap', 'alpha', 'clip', 'displaySize', 'top'] as const;
const METHOD_TITLES: Record<SaliencyMethod, string> = {
  gradient: 'Saliency · gradient',
  smoothgrad: 'Saliency · SmoothGrad',
  'integrated-gradients': 'Saliency · integrated gradients',
};

/** Saliency maps of images (paths or encoded Buffers) drawn over the photos, framed with the target and predictions. */
export async function saliencyOverlays(
  model: Model,
  images: readonly ImageSource[],
  options: SaliencyOverlayOptions = {},
): Promise<SaliencyOverlay[]> {
  const { resize } = checkOverlayOptions(options);
  if (!Array.isArray(images) || images.length === 0)
    throw invalidParameter('images', 'a non-empty array of images', images);
  const norm = normalisationOf(model);
  const input = await preprocess(images as ImageSource[], { resize, size: norm.size, mean: norm.mean, std: norm.std });
  return saliencyOverlaysOf(model, input, images, options);
}

function checkOverlayOptions(options: SaliencyOverlayOptions) {
  if (options === null || typeof options !== 'object')
    throw invalidParameter('saliencyOverlays options', 'an object', options);
  checkKnownKeys('saliencyOverlays', options, OVERLAY_KEYS);
  const { resize = 'squash', colormap: cm, alpha = 0.6, clip = 99, displaySize = 448, top = 3, ...analysis } = options;
  if (resize !== 'squash' && resize !== 'crop') throw invalidParameter('resize', "'squash' or 'crop'", resize);
  const colormap = checkColormap(cm ?? 'inferno');
  if (typeof alpha !== 'number' || !(alpha >= 0 && alpha <= 1))
    throw invalidParameter('alpha', 'a number from 0 to 1', alpha);
  if (typeof clip !== 'number' || !(clip > 0 && clip <= 100))
    throw invalidParameter('clip', 'a percentile above 0, at most 100', clip);
  if (!Number.isInteger(displaySize) || displaySize < 64 || displaySize > 4096)
    throw invalidParameter('displaySize', 'an integer from 64 to 4096', displaySize);
  if (!Number.isInteger(top) || top < 1 || top > 20) throw invalidParameter('top', 'an integer from 1 to 20', top);
  return { resize, colormap, alpha, clip, displaySize, top, analysis };
}

/**
 * Saliency overlays of a batch already preprocessed for `model` (with `options.resize`), as the
 * CLI's batch runner has it; `images[i]` (the file of image i) is drawn under map i when resize is 'squash'.
 */
export async function saliencyOverlaysOf(
  model: Model,
  input: PreprocessResult,
  images: readonly ImageSource[],
  options: SaliencyOverlayOptions = {},
): Promise<SaliencyOverlay[]> {
  const { resize, colormap, alpha, clip, displaySize, top, analysis } = checkOverlayOptions(options);
  const result = await saliency(model, input, analysis);
  const { logits } = result;
  const [n, h, w] = result.map.shape;
  const weights = weightsOf(model);
  const out: SaliencyOverlay[] = [];
  for (let i = 0; i < n; i++) {
    const plane = result.map.data.subarray(i * h * w, (i + 1) * h * w);
    const clipValue = percentile(plane, clip);
    const scaled = new Float32Array(plane.length);
    if (clipValue > 0) for (let j = 0; j < plane.length; j++) scaled[j] = Math.min(1, plane[j] / clipValue);
    const photo =
      resize === 'squash' ? await displayPhoto(images[i], displaySize) : await upscale(input.images[i], displaySize);
    const overlay = await drawOverlay(photo, { data: scaled, width: w, height: h }, { colormap, alpha, range: [0, 1] });
    const predictions = topPredictions(model, logits, i, top);
    const cls = result.classes[i];
    const target: Prediction = {
      class: cls,
      name: className(model, cls),
      probability: softmaxRow(logits.data, logits.shape[1], i)[cls],
    };
    const completeness = result.completeness && {
      attributionSum: result.completeness.attributionSum[i],
      scoreDelta: result.completeness.scoreDelta[i],
    };
    const framed = await frameHeatmap(model, overlay, {
      title: METHOD_TITLES[result.method],
      target,
      colormap,
      scale: [
        '0',
        `p${clip}`,
        result.method === 'integrated-gradients'
          ? '|attribution summed over colour channels|'
          : 'max over colour channels of |d score / d pixel|',
      ],
      predictions,
      note: completeness
        ? `Σ attributions ${completeness.attributionSum.toPrecision(4)} vs score − baseline score ${completeness.scoreDelta.toPrecision(4)}`
        : clipValue > 0
          ? undefined
          : 'The map is zero everywhere: the score does not depend on these pixels.',
    });
    out.push({
      source: input.images[i].source,
      method: result.method,
      target,
      predictions,
      map: { data: scaled, width: w, height: h },
      values: plane,
      clipValue,
      ...(completeness ? { completeness } : {}),
      ...framed,
      weights,
    });
  }
  return out;
}

/** The p-th percentile (0-100) of `values`, by linear interpolation between order statistics. */
function percentile(values: Float32Array, p: number): number {
  const sorted = Float32Array.from(values).sort();
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}
