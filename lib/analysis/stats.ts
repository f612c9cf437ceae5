/**
 * Activation statistics over a folder of images, streamed in batches with bounded memory.
 *
 * For each layer and channel, each image contributes two numbers computed on the model's device
 * over the channel's full map: its spatial mean and its spatial max (captures are asked with
 * `stats: true, maxSize: 1`, so no feature map is copied to JS). From these:
 *
 *   mean         the mean over images of the per-image channel means (exact)
 *   p50/p90/p99  percentiles over images of the per-image channel means: exact (numpy's default
 *                linear interpolation) for up to `exactLimit` images (default 1000); beyond that
 *                from a log-bucket sketch (DDSketch's layout, Masson et al. 2019) that gives each
 *                order statistic within SKETCH_ACCURACY (1%) relative, zeros exactly. The sketch's
 *                buckets are fixed (they do not depend on the data), so sketches of disjoint runs
 *                add up to the sketch of one run over all their images: merged == unsharded.
 *   max          the largest activation seen anywhere
 *   silentShare  the share of images in which the channel never fires (its max <= 0)
 *   dead         the channel never fires on any image (max <= 0 everywhere): the pruning hint
 *
 * Memory: one batch of images, plus exactLimit x channels floats per layer, plus per channel one
 * count per occupied bucket (about 115 buckets per decade of values).
 */
import * as path from 'path';
import sharp from 'sharp';
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { Model } from '../model';
import { type ImageSource, preprocess } from '../preprocess';
import { type RgbCanvas, blit, encodePng, fillRect } from '../render/canvas';
import { parseColor } from '../render/color';
import { type ColormapName, checkColormap } from '../render/colormaps';
import { drawOverlay } from '../render/overlay';
import { drawText } from '../render/text';
import type { Capture, CaptureStats } from '../types';
import { type FailedImage, imageBatches, normalisationOf, weightsOf } from './common';
import { type Bar, barChart, labelSpace, niceTicks } from '../render/chart';
import { formatNumber } from '../render/format';
import { BANNER_HEIGHT, drawBanner, weightsBanner } from '../render/frame';
import { INK, MUTED, fitText, svgDocument, svgToPng, text } from '../render/svg';

export interface FolderStatsOptions {
  /** Layers with [N, C, H, W] output (or [N, C]); `layer#k` picks one call. */
  layers: string[];
  /** Images per forward; default 16. */
  batch?: number;
  resize?: 'squash' | 'crop';
  /** Percentiles are exact up to this many images (default 1000), then from the sketch; 0: always the sketch. */
  exactLimit?: number;
  /** Called after each batch with the number of images done and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Per channel, keep this many top images (highest spatial max); default 5, 0 for none. */
  examples?: number;
}

/** One of a channel's top images: which file (index into the files given), its score and where. */
export interface ChannelExample {
  file: number;
  /** The channel's spatial max on this image. */
  score: number;
  /** Position of that max in the layer's map (row, column); 0, 0 for [N, C] layers. */
  y: number;
  x: number;
}

export interface ChannelStatistics {
  mean: Float64Array;
  p50: Float64Array;
  p90: Float64Array;
  p99: Float64Array;
  max: Float64Array;
  silentShare: Float64Array;
}

export interface LayerStatisticsOverFolder {
  name: string;
  channels: number;
  channel: ChannelStatistics;
  /** Channel indices that never fired. */
  deadChannels: number[];
  deadShare: number;
  /**
   * Whether the percentiles are exact (images <= exactLimit) or from the sketch (each order
   * statistic within SKETCH_ACCURACY relative); the same for a merged run as for one run.
   */
  percentiles: 'exact' | 'sketch';
  /** Per channel, its top images by spatial max, best first (ties: earlier file first). */
  examples: ChannelExample[][];
}

export interface FolderStats {
  images: number;
  failed: FailedImage[];
  layers: LayerStatisticsOverFolder[];
  weights: { trained: boolean | undefined; text: string };
  /** The running sums behind `layers`, in a form that mergeStatsStates() combines exactly. */
  state: LayerStatsState[];
}

/**
 * One channel's sketch in JSON form: value counts per bucket. `pos` and `neg` are
 * [first bucket index, count, count, ...] for |x| of the positive and negative values (bucket i
 * holds GAMMA^(i-1) < |x| <= GAMMA^i), `zero` counts exact zeros, `nan` NaNs; min and max are
 * exact (null in JSON when infinite).
 */
export interface SketchState {
  n: number;
  zero: number;
  nan: number;
  min: number | null;
  max: number | null;
  pos: number[];
  neg: number[];
}

/**
 * One layer's statistics in mergeable form: counts, sums, maxima, the top images (file indices
 * into the files given), per channel a sketch of the per-image means and, while at most
 * exactLimit images were seen, each image's channel means (float32 values, image-major), from
 * which percentiles are exact.
 */
export interface LayerStatsState {
  name: string;
  channels: number;
  mapWidth: number;
  k: number;
  images: number;
  sum: number[];
  max: number[];
  silent: number[];
  /** [images][channels], or null once the run went past exactLimit. */
  means: number[][] | null;
  /** Per channel, the sketch of its per-image means. */
  sketch: SketchState[];
  /** Per channel, best first: [file, score, flat argmax]. */
  top: Array<Array<[number, number, number]>>;
}

/** Percentile q (0..1) of sorted values, numpy's linear interpolation. */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos),
    hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** The sketch's relative accuracy: each order statistic it gives is within 1% of the true one. */
export const SKETCH_ACCURACY = 0.01;
const GAMMA = (1 + SKETCH_ACCURACY) / (1 - SKETCH_ACCURACY);
const LOG_GAMMA = Math.log(GAMMA);

/** Counts over consecutive bucket indices, growing at either end as needed. */
class BucketStore {
  offset = 0;
  counts = new Float64Array(0);

  add(index: number, count: number): void {
    if (this.counts.length === 0) {
      this.offset = index;
      this.counts = new Float64Array(16);
    } else if (index < this.offset || index >= this.offset + this.counts.length) {
      const lo = Math.min(index, this.offset);
      const hi = Math.max(index + 1, this.offset + this.counts.length);
      // Grow by half again, so that a value stream widening the range costs amortised O(1).
      const size = Math.max(hi - lo, Math.ceil(this.counts.length * 1.5));
      const start = index < this.offset ? hi - size : lo;
      const grown = new Float64Array(size);
      grown.set(this.counts, this.offset - start);
      this.counts = grown;
      this.offset = start;
    }
    this.counts[index - this.offset] += count;
  }

  /** [first occupied index, its count, ...up to the last occupied]; [] when empty. */
  toJSON(): number[] {
    let a = 0,
      b = this.counts.length;
    while (a < b && this.counts[a] === 0) a++;
    while (b > a && this.counts[b - 1] === 0) b--;
    return a === b ? [] : [this.offset + a, ...this.counts.subarray(a, b)];
  }

  addJSON(list: number[]): void {
    for (let j = 1; j < list.length; j++) if (list[j] !== 0) this.add(list[0] + j - 1, list[j]);
  }
}

/**
 * A mergeable, fixed-layout sketch of a stream of values for percentiles (DDSketch's log
 * buckets): |x| goes to bucket ceil(log(|x|) / log(GAMMA)), whose representative
 * 2 GAMMA^i / (GAMMA + 1) is within SKETCH_ACCURACY of every value in it; zeros and NaNs are
 * counted apart, min and max kept exactly. Adding the same values in any order or split over
 * sketches that are then merged gives the same counts, so the same percentiles.
 */
export class PercentileSketch {
  n = 0;
  zero = 0;
  nan = 0;
  min = Infinity;
  max = -Infinity;
  readonly pos = new BucketStore();
  readonly neg = new BucketStore();

  add(x: number): void {
    this.n++;
    if (Number.isNaN(x)) {
      this.nan++;
      return;
    }
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    if (x === 0) this.zero++;
    else if (x > 0) this.pos.add(PercentileSketch.bucket(x), 1);
    else this.neg.add(PercentileSketch.bucket(-x), 1);
  }

  /** The bucket of a magnitude v > 0; infinities go to the bucket of the largest double. */
  static bucket(v: number): number {
    return Math.ceil(Math.log(Math.min(v, Number.MAX_VALUE)) / LOG_GAMMA);
  }

  /** The value that stands for bucket i's magnitudes. */
  static representative(i: number): number {
    return (2 * Math.exp(i * LOG_GAMMA)) / (GAMMA + 1);
  }

  merge(s: SketchState): void {
    this.n += s.n;
    this.zero += s.zero;
    this.nan += s.nan;
    const min = s.min ?? (s.n > s.nan ? -Infinity : Infinity);
    const max = s.max ?? (s.n > s.nan ? Infinity : -Infinity);
    if (min < this.min) this.min = min;
    if (max > this.max) this.max = max;
    this.pos.addJSON(s.pos);
    this.neg.addJSON(s.neg);
  }

  toJSON(): SketchState {
    const finite = (v: number) => (Number.isFinite(v) ? v : null);
    return {
      n: this.n,
      zero: this.zero,
      nan: this.nan,
      min: finite(this.min),
      max: finite(this.max),
      pos: this.pos.toJSON(),
      neg: this.neg.toJSON(),
    };
  }

  /** The r-th smallest value (0-based), within SKETCH_ACCURACY relative; exact for the ends and zeros. */
  orderStatistic(r: number): number {
    const count = this.n - this.nan;
    if (r <= 0) return this.min;
    if (r >= count - 1) return this.max;
    const clamp = (v: number) => Math.min(this.max, Math.max(this.min, v));
    // Negative values from the most negative (largest |x|, highest bucket) up, then zeros, then positive ones.
    let seen = 0;
    const neg = this.neg.counts;
    for (let j = neg.length - 1; j >= 0; j--) {
      seen += neg[j];
      if (r < seen) return clamp(-PercentileSketch.representative(this.neg.offset + j));
    }
    seen += this.zero;
    if (r < seen) return 0;
    const pos = this.pos.counts;
    for (let j = 0; j < pos.length; j++) {
      seen += pos[j];
      if (r < seen) return clamp(PercentileSketch.representative(this.pos.offset + j));
    }
    return this.max;
  }

  /** Percentile q (0..1) as numpy's linear interpolation takes it, from the sketch's order statistics; NaN if any value was NaN. */
  quantile(q: number): number {
    const count = this.n - this.nan;
    if (count === 0 || this.nan > 0) return NaN;
    const at = (count - 1) * q;
    const lo = Math.floor(at),
      hi = Math.ceil(at);
    const a = this.orderStatistic(lo);
    return lo === hi ? a : a + (this.orderStatistic(hi) - a) * (at - lo);
  }
}

const QUANTILES = [0.5, 0.9, 0.99] as const;

/** Running per-channel statistics of one layer. */
class LayerAccumulator {
  readonly name: string;
  channels = 0;
  images = 0;
  sum!: Float64Array;
  max!: Float64Array;
  silent!: Float64Array;
  /** Per channel, the sketch of its per-image means. */
  sketch: PercentileSketch[] = [];
  /** Per-image means, image-major [images, C], while images <= exactLimit; then null. */
  exact: Float32Array[] | null = [];
  /** Top examples per channel: k slots each, best first (score -Infinity: empty). */
  topScore!: Float64Array;
  topFile!: Int32Array;
  topAt!: Int32Array;

  constructor(
    name: string,
    readonly exactLimit: number,
    readonly k: number,
    readonly mapWidth: number,
  ) {
    this.name = name;
  }

  #allocate(c: number): void {
    this.channels = c;
    this.sum = new Float64Array(c);
    this.max = new Float64Array(c).fill(-Infinity);
    this.silent = new Float64Array(c);
    this.sketch = Array.from({ length: c }, () => new PercentileSketch());
    this.topScore = new Float64Array(c * this.k).fill(-Infinity);
    this.topFile = new Int32Array(c * this.k).fill(-1);
    this.topAt = new Int32Array(c * this.k);
  }

  /** Fold into channel ch a sum of means, a max and a count of silent images: one image's, or a whole run's. */
  #fold(ch: number, sum: number, max: number, silent: number): void {
    this.sum[ch] += sum;
    if (max > this.max[ch]) this.max[ch] = max;
    this.silent[ch] += silent;
  }

  /**
   * Image i of a batch, as file `file`: per channel its spatial mean, max and argmax (flat index),
   * as a capture with `stats: true` gives them: the native per-plane statistics, the same as
   * channelStats (lib/render/capture.ts) computes from the maps (test/native/capture-stats.test.ts).
   */
  add(stats: CaptureStats, i: number, file: number): void {
    const { mean, max, argmax } = stats;
    const c = stats.shape[1];
    if (this.channels === 0) this.#allocate(c);
    else if (c !== this.channels) {
      throw new FeatscopeError(
        'SHAPE_MISMATCH',
        `layer ${this.name} gave ${c} channels for one batch and ${this.channels} for another`,
      );
    }
    const row = mean.subarray(i * c, (i + 1) * c);
    for (let ch = 0; ch < c; ch++) {
      const m = max[i * c + ch];
      this.#fold(ch, row[ch], m, m <= 0 ? 1 : 0);
      this.sketch[ch].add(row[ch]);
      if (this.k > 0 && m > this.topScore[ch * this.k + this.k - 1]) this.#insert(ch, m, file, argmax[i * c + ch]);
    }
    this.images++;
    this.exact?.push(Float32Array.from(row));
    if (this.images > this.exactLimit) this.exact = null;
  }

  /** Insert into channel ch's top list after every score >= m (so earlier files win ties). */
  #insert(ch: number, m: number, file: number, at: number): void {
    const base = ch * this.k;
    let pos = this.k - 1;
    while (pos > 0 && this.topScore[base + pos - 1] < m) {
      this.topScore[base + pos] = this.topScore[base + pos - 1];
      this.topFile[base + pos] = this.topFile[base + pos - 1];
      this.topAt[base + pos] = this.topAt[base + pos - 1];
      pos--;
    }
    this.topScore[base + pos] = m;
    this.topFile[base + pos] = file;
    this.topAt[base + pos] = at;
  }

  state(): LayerStatsState {
    const c = this.channels;
    const top: LayerStatsState['top'] = [];
    for (let ch = 0; ch < c; ch++) {
      const list: Array<[number, number, number]> = [];
      for (let j = ch * this.k; j < (ch + 1) * this.k && this.topFile[j] >= 0; j++)
        list.push([this.topFile[j], this.topScore[j], this.topAt[j]]);
      top.push(list);
    }
    return {
      name: this.name,
      channels: c,
      mapWidth: this.mapWidth,
      k: this.k,
      images: this.images,
      sum: Array.from(this.sum ?? []),
      max: Array.from(this.max ?? []),
      silent: Array.from(this.silent ?? []),
      means: this.exact ? this.exact.map((r) => Array.from(r)) : null,
      sketch: this.sketch.map((s) => s.toJSON()),
      top,
    };
  }

  /** The accumulator of several runs' states over disjoint images (file indices already global). */
  static merge(states: LayerStatsState[], exactLimit: number): LayerAccumulator {
    const first = states[0];
    const a = new LayerAccumulator(first.name, exactLimit, first.k, first.mapWidth);
    const c = first.channels;
    for (const s of states) {
      if (s.channels !== c || s.k !== first.k || s.mapWidth !== first.mapWidth) {
        throw new FeatscopeError(
          'SHAPE_MISMATCH',
          `layer ${first.name}: the runs to merge differ in channels (${s.channels} vs ${c}), top images kept or map width`,
        );
      }
      if (!Array.isArray(s.sketch) || s.sketch.length !== c)
        throw new FeatscopeError(
          'MERGE_INVALID',
          `layer ${first.name}: a run's state has no percentile sketch (written by an older featscope); rerun it`,
        );
    }
    a.#allocate(c);
    for (const s of states) {
      a.images += s.images;
      for (let ch = 0; ch < c; ch++) {
        a.#fold(ch, s.sum[ch], s.max[ch] ?? NaN, s.silent[ch]);
        a.sketch[ch].merge(s.sketch[ch]);
      }
    }
    for (let ch = 0; ch < c; ch++) {
      // Best score first; equal scores: the earlier file, as one run over all files keeps them.
      const all = states
        .flatMap((s) => s.top[ch])
        .sort((x, y) => y[1] - x[1] || x[0] - y[0])
        .slice(0, a.k);
      all.forEach(([file, score, at], j) => {
        a.topScore[ch * a.k + j] = score;
        a.topFile[ch * a.k + j] = file;
        a.topAt[ch * a.k + j] = at;
      });
    }
    // Exact while the images together are within the limit (then every run kept its means).
    a.exact =
      a.images <= exactLimit && states.every((s) => s.means)
        ? states.flatMap((s) => s.means!.map((r) => Float32Array.from(r)))
        : null;
    return a;
  }

  result(): LayerStatisticsOverFolder {
    const c = this.channels;
    const stat: ChannelStatistics = {
      mean: new Float64Array(c),
      p50: new Float64Array(c),
      p90: new Float64Array(c),
      p99: new Float64Array(c),
      max: Float64Array.from(this.max ?? []),
      silentShare: new Float64Array(c),
    };
    const column = new Float64Array(this.exact?.length ?? 0);
    for (let ch = 0; ch < c; ch++) {
      stat.mean[ch] = this.sum[ch] / this.images;
      stat.silentShare[ch] = this.silent[ch] / this.images;
      if (this.exact) {
        for (let i = 0; i < this.exact.length; i++) column[i] = this.exact[i][ch];
        column.sort();
        [stat.p50[ch], stat.p90[ch], stat.p99[ch]] = QUANTILES.map((q) => percentileSorted(column, q));
      } else {
        [stat.p50[ch], stat.p90[ch], stat.p99[ch]] = QUANTILES.map((q) => this.sketch[ch].quantile(q));
      }
    }
    const deadChannels: number[] = [];
    for (let ch = 0; ch < c; ch++) if (this.max[ch] <= 0) deadChannels.push(ch);
    const examples: ChannelExample[][] = [];
    for (let ch = 0; ch < c; ch++) {
      const list: ChannelExample[] = [];
      for (let j = ch * this.k; j < (ch + 1) * this.k && this.topFile[j] >= 0; j++) {
        const at = this.topAt[j];
        list.push({
          file: this.topFile[j],
          score: this.topScore[j],
          y: Math.floor(at / this.mapWidth),
          x: at % this.mapWidth,
        });
      }
      examples.push(list);
    }
    return {
      name: this.name,
      channels: c,
      channel: stat,
      deadChannels,
      deadShare: c ? deadChannels.length / c : 0,
      percentiles: this.exact ? 'exact' : 'sketch',
      examples,
    };
  }
}
/** Statistics of the given layers over many images, one batch in memory at a time. */
export async function folderStats(
  model: Model,
  files: readonly ImageSource[],
  options: FolderStatsOptions,
): Promise<FolderStats> {
  if (!options || typeof options !== 'object')
    throw invalidParameter('folderStats options', 'an object with layers', options);
  checkKnownKeys('folderStats', options, ['layers', 'batch', 'resize', 'exactLimit', 'onProgress', 'examples']);
  if (!Array.isArray(files) || files.length === 0)
    throw invalidParameter('files', 'a non-empty array of image paths or Buffers', files);
  if (!Array.isArray(options.layers) || options.layers.length === 0)
    throw invalidParameter('layers', 'a non-empty array of layer names', options.layers);
  const batch = options.batch ?? 16;
  if (!Number.isInteger(batch) || batch < 1 || batch > 1024)
    throw invalidParameter('batch', 'an integer from 1 to 1024', batch);
  const exactLimit = options.exactLimit ?? 1000;
  if (!Number.isInteger(exactLimit) || exactLimit < 0)
    throw invalidParameter('exactLimit', 'an integer of at least 0', exactLimit);
  const k = options.examples ?? 5;
  if (!Number.isInteger(k) || k < 0 || k > 100) throw invalidParameter('examples', 'an integer from 0 to 100', k);
  const resize = options.resize ?? 'squash';
  const norm = normalisationOf(model);
  const run = await statsRun(model, { layers: options.layers, exactLimit, examples: k });
  const failed: FolderStats['failed'] = [];
  for await (const b of imageBatches(files, batch, { resize, size: norm.size, mean: norm.mean, std: norm.std })) {
    failed.push(...b.failed);
    if (b.files.length > 0) {
      const caps = await captureStats(model, b, options.layers);
      b.files.forEach((file, i) => run.add(caps, i, file));
    }
    options.onProgress?.(Math.min(b.start + batch, files.length), files.length);
  }
  return run.result(files.length, failed);
}

/** One forward of a batch for statistics: per layer, per image and channel the spatial mean, max and argmax. */
export function captureStats(
  model: Model,
  input: { data: Float32Array; shape: [number, number, number, number] },
  layers: string[],
): Promise<Capture[]> {
  return model.capture({ data: input.data, shape: input.shape }, layers, { stats: true, maxSize: 1 });
}

/** The statistics of a run fed image by image, in file order (folderStats, `featscope stats` on the batch runner). */
export interface StatsRun {
  /** Image i of a batch's captures (captureStats), as file `file` (its index in the run's files). */
  add(caps: Capture[], i: number, file: number): void;
  /** The statistics of the images added, `failed` the others of the `total`; NO_INPUTS when none was added. */
  result(total: number, failed: FailedImage[]): FolderStats;
}

/** A run of statistics of `layers`: accumulators made as their captures come (`relu#1` too). */
export async function statsRun(
  model: Model,
  options: { layers: string[]; exactLimit: number; examples: number },
): Promise<StatsRun> {
  const { exactLimit, examples: k } = options;
  const norm = normalisationOf(model);
  // Map widths (for the argmax positions), from one forward on zeros at the input size.
  const widths = new Map<string, number>();
  for (const l of await model.layers({ inputSize: norm.size })) {
    (l.outputShapes ?? []).forEach((shape, call) =>
      widths.set(call === 0 ? l.name : `${l.name}#${call}`, shape.length === 4 ? shape[3] : 1),
    );
  }
  const acc = new Map<string, LayerAccumulator>();
  const accumulator = (name: string) => {
    let a = acc.get(name);
    if (!a) acc.set(name, (a = new LayerAccumulator(name, exactLimit, k, widths.get(name) ?? 1)));
    return a;
  };
  options.layers.forEach(accumulator);
  return {
    add(caps, i, file) {
      for (const cap of caps) {
        if (!cap.stats) continue;
        // A module called several times gives one capture per call (`relu`, `relu#1`): each its own statistics.
        accumulator(cap.name).add(cap.stats, i, file);
      }
    },
    result(total, failed) {
      const images = total - failed.length;
      if (images === 0)
        throw new FeatscopeError(
          'NO_INPUTS',
          `none of the ${total} images could be read; first error: ${failed[0]?.message}`,
        );
      return {
        images,
        failed,
        layers: [...acc.values()].map((a) => a.result()),
        weights: weightsOf(model),
        state: [...acc.values()].map((a) => a.state()),
      };
    },
  };
}

/** The bucket indices a sketch can hold: those of the smallest and the largest double. */
const BUCKET_MIN = PercentileSketch.bucket(Number.MIN_VALUE);
const BUCKET_MAX = PercentileSketch.bucket(Number.MAX_VALUE);

/**
 * Checks a layer's state from a file before anything is built from it: counts are non-negative
 * integers, values finite (null where a run wrote NaN), arrays as long as the channels say,
 * sketch bucket indices inside the range any double maps to and bucket counts adding up. A state
 * that fails names the layer, the field and the fix (MERGE_INVALID); nothing is allocated from an
 * unchecked number.
 */
export function checkLayerStatsState(value: unknown, where: string): LayerStatsState {
  const fail = (what: string) =>
    new FeatscopeError('MERGE_INVALID', `${where}: ${what}; the state was altered or damaged: rerun that shard`);
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  const count = (v: unknown, max = Number.MAX_SAFE_INTEGER) =>
    Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;
  const finiteOrNull = (v: unknown) => v === null || (typeof v === 'number' && Number.isFinite(v));
  if (!isObj(value)) throw fail('a layer is not an object');
  const l = value;
  if (typeof l.name !== 'string') throw fail('a layer has no name');
  const at = `layer ${JSON.stringify(l.name.slice(0, 100))}`;
  if (!count(l.channels, 1 << 20) || (l.channels as number) < 1)
    throw fail(`${at}: channels is not an integer from 1 to 2^20`);
  if (!count(l.mapWidth, 1 << 20) || (l.mapWidth as number) < 1)
    throw fail(`${at}: mapWidth is not a positive integer`);
  if (!count(l.k, 10000)) throw fail(`${at}: k is not an integer from 0 to 10000`);
  if (!count(l.images)) throw fail(`${at}: images is not a non-negative integer`);
  const c = l.channels as number;
  const images = l.images as number;
  const perChannel = (key: string, ok: (v: unknown) => boolean, rule: string) => {
    const a = l[key];
    if (!Array.isArray(a) || a.length !== c) throw fail(`${at}: ${key} does not hold one value per channel (${c})`);
    const i = a.findIndex((v) => !ok(v));
    if (i >= 0)
      throw fail(
        `${at}: ${key}[${i}] is ${typeof a[i] === 'number' ? String(a[i]) : JSON.stringify(a[i])}, not ${rule}`,
      );
  };
  perChannel('sum', finiteOrNull, 'a finite number');
  perChannel('max', finiteOrNull, 'a finite number');
  perChannel('silent', (v) => count(v, images), `a count from 0 to images (${images})`);
  if (l.means !== null) {
    if (!Array.isArray(l.means) || l.means.length !== images)
      throw fail(`${at}: means does not hold one row per image`);
    for (const row of l.means)
      if (!Array.isArray(row) || row.length !== c || !row.every(finiteOrNull))
        throw fail(`${at}: a row of means is not ${c} finite numbers`);
  }
  perChannel(
    'sketch',
    (v) => {
      if (!isObj(v) || !count(v.n) || !count(v.zero) || !count(v.nan)) return false;
      if (!finiteOrNull(v.min) || !finiteOrNull(v.max)) return false;
      let total = (v.zero as number) + (v.nan as number);
      for (const side of [v.pos, v.neg]) {
        if (!Array.isArray(side)) return false;
        if (side.length === 0) continue;
        const first = side[0];
        if (!Number.isInteger(first) || first < BUCKET_MIN || first + side.length - 2 > BUCKET_MAX) return false;
        for (let j = 1; j < side.length; j++) {
          if (!count(side[j])) return false;
          total += side[j];
        }
      }
      return total === v.n;
    },
    `a sketch (non-negative integer counts adding up to n, bucket indices from ${BUCKET_MIN} to ${BUCKET_MAX})`,
  );
  perChannel(
    'top',
    (v) =>
      Array.isArray(v) &&
      v.length <= (l.k as number) &&
      v.every(
        (e) =>
          Array.isArray(e) &&
          e.length === 3 &&
          count(e[0]) &&
          typeof e[1] === 'number' &&
          Number.isFinite(e[1]) &&
          count(e[2]),
      ),
    `at most k [file, score, position] entries with finite scores`,
  );
  return l as unknown as LayerStatsState;
}

/**
 * Statistics of several runs over disjoint images (shards), from their states, with file indices
 * already mapped into one list: equal to one run over all the images (sums up to float64
 * rounding; counts, maxima, top images and percentiles exactly). Percentiles are exact while the
 * images together are at most exactLimit (default 1000, as the runs'); beyond, they come from the
 * merged sketches, which are the sketch one run over all the images would have built.
 */
export function mergeStatsStates(
  runs: LayerStatsState[][],
  options: { exactLimit?: number } = {},
): { images: number; layers: LayerStatisticsOverFolder[]; state: LayerStatsState[] } {
  if (runs.length === 0) throw invalidParameter('runs', "at least one run's state", runs);
  runs.forEach((r, i) => {
    if (!Array.isArray(r)) throw new FeatscopeError('MERGE_INVALID', `run ${i}'s state is not a list of layers`);
    r.forEach((l) => checkLayerStatsState(l, `run ${i}`));
  });
  const names = runs[0].map((l) => l.name);
  for (const r of runs) {
    const other = r.map((l) => l.name);
    if (other.join('\n') !== names.join('\n'))
      throw new FeatscopeError(
        'MERGE_MISMATCH',
        `the runs to merge have different layers: ${names.join(',')} vs ${other.join(',')}`,
      );
  }
  const merged = names.map((_, i) =>
    LayerAccumulator.merge(
      runs.map((r) => r[i]),
      options.exactLimit ?? 1000,
    ),
  );
  return { images: merged[0]?.images ?? 0, layers: merged.map((a) => a.result()), state: merged.map((a) => a.state()) };
}

/** Two charts: the share of dead channels per layer (bars), and each layer's channel means sorted high to low (lines). */
export async function renderStatsChart(
  model: Model,
  stats: FolderStats,
): Promise<{ png: Buffer; width: number; height: number }> {
  const bars: Bar[] = stats.layers.map((l) => ({
    label: `${l.name} (${l.deadChannels.length}/${l.channels})`,
    value: l.deadShare * 100,
  }));
  const width = Math.max(760, 40 + bars.length * 60);
  const chartH = 40 + 220 + labelSpace(bars, 11);
  const head = BANNER_HEIGHT + 58;
  const panelH = 300;
  const height = head + chartH + panelH + 10;
  const parts = [
    weightsBanner(model.metadata, width),
    text(12, BANNER_HEIGHT + 22, `Activation statistics over ${stats.images} image${stats.images === 1 ? '' : 's'}`, {
      size: 16,
      weight: 'bold',
    }),
    text(
      12,
      BANNER_HEIGHT + 43,
      fitText('dead: never fires (max ≤ 0) on any image · mean: spatial mean, averaged over images', 12, width - 24),
      { size: 12, fill: MUTED },
    ),
    barChart({
      x: 0,
      y: head,
      width,
      height: chartH,
      title: 'Dead channels per layer (% of the layer’s channels)',
      yLabel: '% dead',
      bars,
      log: false,
      color: '#8e44ad',
    }),
    profiles(stats, 0, head + chartH + 6, width, panelH),
  ];
  return { png: await svgToPng(svgDocument(width, height, parts.join(''))), width, height };
}

const PROFILE_COLOURS = ['#3b6fb6', '#e07b39', '#5a9e6f', '#c62828', '#8e44ad', '#7f8c8d', '#b8860b', '#17becf'];

/** Channel means of each layer sorted high to low, on a shared x axis of channel rank (0..1). */
function profiles(stats: FolderStats, x: number, y: number, width: number, height: number): string {
  const left = x + 64,
    right = x + width - 200,
    top = y + 34,
    bottom = y + height - 40;
  let lo = 0,
    hi = 0;
  const sorted = stats.layers.map((l) => Array.from(l.channel.mean).sort((a, b) => b - a));
  for (const s of sorted)
    for (const v of s) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  // Round ticks (1, 2, 2.5 or 5 times a power of ten) that cover the values.
  const ticks = niceTicks(lo, hi);
  [lo, hi] = [ticks[0], ticks[ticks.length - 1]];
  const toY = (v: number) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);
  const parts = [
    text(x + 4, y + 18, 'Channel means, sorted high to low (x: channel rank as a share of the layer’s channels)', {
      size: 15,
      weight: 'bold',
    }),
  ];
  for (const v of ticks) {
    parts.push(
      `<line x1="${left}" x2="${right}" y1="${toY(v).toFixed(1)}" y2="${toY(v).toFixed(1)}" stroke="#e3e3e3"/>`,
    );
    parts.push(text(left - 6, toY(v) + 4, formatNumber(v), { size: 11, anchor: 'end', fill: MUTED }));
  }
  if (lo < 0)
    parts.push(
      `<line x1="${left}" x2="${right}" y1="${toY(0).toFixed(1)}" y2="${toY(0).toFixed(1)}" stroke="#999" stroke-dasharray="4,3"/>`,
    );
  for (let t = 0; t <= 4; t++)
    parts.push(
      text(left + ((right - left) * t) / 4, bottom + 15, `${t * 25}%`, { size: 11, anchor: 'middle', fill: MUTED }),
    );
  parts.push(text((left + right) / 2, bottom + 31, 'channel rank', { size: 11, anchor: 'middle', fill: MUTED }));
  parts.push(
    text(x + 14, (top + bottom) / 2, 'mean activation', { size: 12, anchor: 'middle', fill: MUTED, rotate: -90 }),
  );
  sorted.forEach((s, k) => {
    const colour = PROFILE_COLOURS[k % PROFILE_COLOURS.length];
    const pts = s.map(
      (v, i) =>
        `${(left + (s.length > 1 ? i / (s.length - 1) : 0.5) * (right - left)).toFixed(1)},${toY(v).toFixed(1)}`,
    );
    parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    parts.push(`<rect x="${right + 16}" y="${top + k * 20}" width="12" height="12" fill="${colour}"/>`);
    parts.push(text(right + 34, top + k * 20 + 11, fitText(stats.layers[k].name, 12, 160), { size: 12 }));
  });
  parts.push(
    `<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="#1a1a1a"/><line x1="${left}" x2="${left}" y1="${top}" y2="${bottom}" stroke="#1a1a1a"/>`,
  );
  return parts.join('');
}

export interface ChannelExamplesOptions {
  /** A layer of the statistics (its name, `layer#k` for a call). */
  layer: string;
  /** Channels to show: a list, or the N with the highest max over the folder (default 8). */
  channels?: number | number[];
  /** Side of each image tile in pixels; default 112. */
  tile?: number;
  /** Colour map of the channel's map over each image; default 'turbo'. */
  colormap?: ColormapName;
  resize?: 'squash' | 'crop';
}

export interface ChannelExamplesPicture {
  png: Buffer;
  width: number;
  height: number;
  /** Where each tile sits: which channel (row) and which file (column). */
  layout: { channel: number; file: number; score: number; x: number; y: number; width: number; height: number }[];
}

/**
 * "Dataset examples": for each chosen channel a row of its top images from folderStats(), each
 * with that channel's map drawn over it (one colour range per row: 0 to the channel's top score)
 * and a cross at its maximum. `files` must be the list given to folderStats().
 */
export async function renderChannelExamples(
  model: Model,
  stats: FolderStats,
  files: readonly ImageSource[],
  options: ChannelExamplesOptions,
): Promise<ChannelExamplesPicture> {
  if (!options || typeof options !== 'object')
    throw invalidParameter('renderChannelExamples options', 'an object with a layer', options);
  checkKnownKeys('renderChannelExamples', options, ['layer', 'channels', 'tile', 'colormap', 'resize']);
  const layer = stats.layers.find((l) => l.name === options.layer);
  if (!layer)
    throw invalidParameter(
      'layer',
      `one of the layers of these statistics (${stats.layers.map((l) => l.name).join(', ')})`,
      options.layer,
    );
  const tile = options.tile ?? 112;
  if (!Number.isInteger(tile) || tile < 32 || tile > 512)
    throw invalidParameter('tile', 'an integer from 32 to 512', tile);
  const colormap = checkColormap(options.colormap ?? 'turbo');
  const resize = options.resize ?? 'squash';
  let channels: number[];
  if (Array.isArray(options.channels)) {
    channels = options.channels;
    for (const ch of channels)
      if (!Number.isInteger(ch) || ch < 0 || ch >= layer.channels)
        throw invalidParameter('channels', `channel indices from 0 to ${layer.channels - 1}`, ch);
  } else {
    const count = options.channels ?? 8;
    if (!Number.isInteger(count) || count < 1)
      throw invalidParameter('channels', 'a count or a list of channel indices', count);
    channels = Array.from({ length: layer.channels }, (_, ch) => ch)
      .filter((ch) => layer.examples[ch].length > 0)
      .sort((a, b) => layer.channel.max[b] - layer.channel.max[a] || a - b)
      .slice(0, count);
  }
  if (channels.length === 0 || channels.every((ch) => layer.examples[ch].length === 0)) {
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `no examples to draw for ${layer.name}: run folderStats with examples > 0`,
    );
  }
  const k = Math.max(...channels.map((ch) => layer.examples[ch].length));

  // The maps of the chosen channels on every image that appears, in one capture per 16 images.
  const needed = [...new Set(channels.flatMap((ch) => layer.examples[ch].map((e) => e.file)))].sort((a, b) => a - b);
  const norm = normalisationOf(model);
  const photos = new Map<number, { rgb: Buffer; width: number; height: number }>();
  const maps = new Map<number, Float32Array>();
  let mapW = 1;
  let mapH = 1;
  for (let start = 0; start < needed.length; start += 16) {
    const chunk = needed.slice(start, start + 16);
    const x = await preprocess(
      chunk.map((f) => files[f]),
      { resize, size: norm.size, mean: norm.mean, std: norm.std },
    );
    const [cap] = await model.capture(x, [layer.name], { channels });
    const [, c, h, w] = cap.shape.length === 4 ? cap.shape : [cap.shape[0], cap.shape[1], 1, 1];
    [mapH, mapW] = [h, w];
    for (const [i, f] of chunk.entries()) {
      maps.set(f, cap.data.slice(i * c * h * w, (i + 1) * c * h * w));
      const img = x.images[i];
      const { data } = await sharp(img.rgb, { raw: { width: img.width, height: img.height, channels: 3 } })
        .resize(tile, tile)
        .raw()
        .toBuffer({ resolveWithObject: true });
      photos.set(f, { rgb: data, width: tile, height: tile });
    }
  }

  const labelW = 86;
  const gap = 6;
  const captionH = 16;
  const head = BANNER_HEIGHT + 46;
  const width = Math.max(420, labelW + k * (tile + gap) + gap);
  const rowH = tile + captionH + gap;
  const height = head + channels.length * rowH + gap;
  const canvas: RgbCanvas = { data: Buffer.alloc(width * height * 3, 255), width, height };
  await drawBanner(canvas, model.metadata);
  const ink = parseColor(INK, 'ink');
  const muted = parseColor(MUTED, 'muted');
  await drawText(
    canvas,
    [{ text: fitText(`Top images per channel · ${layer.name}`, 15, width - 20), x: 10, y: BANNER_HEIGHT + 20 }],
    { size: 15, colour: ink, bold: true, anchor: 'start' },
  );
  await drawText(
    canvas,
    [
      {
        text: fitText(
          `by spatial max over ${stats.images} images; the channel's map over each, + at its max`,
          11,
          width - 20,
        ),
        x: 10,
        y: BANNER_HEIGHT + 38,
      },
    ],
    { size: 11, colour: muted, anchor: 'start' },
  );
  const layout: ChannelExamplesPicture['layout'] = [];
  for (const [row, ch] of channels.entries()) {
    const y0 = head + row * rowH;
    const mapIndex = channels.indexOf(ch);
    const top = layer.examples[ch][0]?.score ?? 0;
    await drawText(canvas, [{ text: `ch ${ch}`, x: 10, y: y0 + tile / 2 }], {
      size: 13,
      colour: ink,
      bold: true,
      anchor: 'start',
    });
    await drawText(canvas, [{ text: `max ${formatNumber(layer.channel.max[ch])}`, x: 10, y: y0 + tile / 2 + 16 }], {
      size: 10,
      colour: muted,
      anchor: 'start',
    });
    for (const [col, e] of layer.examples[ch].entries()) {
      const x0 = labelW + col * (tile + gap);
      const plane = maps.get(e.file)!.subarray(mapIndex * mapH * mapW, (mapIndex + 1) * mapH * mapW);
      const overlay = await drawOverlay(
        photos.get(e.file)!,
        { data: Float32Array.from(plane), width: mapW, height: mapH },
        { colormap, alpha: 0.55, range: [0, Math.max(top, 1e-12)] },
      );
      blit(canvas, overlay, x0, y0);
      // A white cross with a dark outline at the maximum.
      const cx = Math.round(x0 + ((e.x + 0.5) * tile) / mapW);
      const cy = Math.round(y0 + ((e.y + 0.5) * tile) / mapH);
      fillRect(canvas, cx - 5, cy - 1, 11, 3, [20, 20, 20]);
      fillRect(canvas, cx - 1, cy - 5, 3, 11, [20, 20, 20]);
      fillRect(canvas, cx - 4, cy, 9, 1, [255, 255, 255]);
      fillRect(canvas, cx, cy - 4, 1, 9, [255, 255, 255]);
      const name = typeof files[e.file] === 'string' ? path.basename(files[e.file] as string) : `input ${e.file}`;
      await drawText(
        canvas,
        [{ text: fitText(`${formatNumber(e.score)} ${name}`, 10, tile), x: x0, y: y0 + tile + 12 }],
        { size: 10, colour: ink, anchor: 'start' },
      );
      layout.push({ channel: ch, file: e.file, score: e.score, x: x0, y: y0, width: tile, height: tile });
    }
  }
  return { png: await encodePng(canvas), width, height, layout };
}
