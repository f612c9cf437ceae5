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
 *                the P² algorithm (Jain & Chlamtac, 1985) carries on from the exact values with five
 *                markers per percentile, an approximation in constant memory
 *   max          the largest activation seen anywhere
 *   silentShare  the share of images in which the channel never fires (its max <= 0)
 *   dead         the channel never fires on any image (max <= 0 everywhere): the pruning hint
 *
 * Memory: one batch of images, plus exactLimit x channels floats per layer, plus constants.
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
import { type FailedImage, imageBatches, normalisationOf, weightsOf } from './common';
import {
  BANNER_HEIGHT,
  type Bar,
  INK,
  MUTED,
  barChart,
  drawBanner,
  fitText,
  formatNumber,
  labelSpace,
  niceTicks,
  svgDocument,
  svgToPng,
  text,
  weightsBanner,
} from './draw';

export interface FolderStatsOptions {
  /** Layers with [N, C, H, W] output (or [N, C]); `layer#k` picks one call. */
  layers: string[];
  /** Images per forward; default 16. */
  batch?: number;
  resize?: 'squash' | 'crop';
  /** Percentiles are exact up to this many images; default 1000. */
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
   * Whether the percentiles are exact (images <= exactLimit) or P² estimates; 'unknown' (NaN) for
   * merged runs of which one went past exactLimit.
   */
  percentiles: 'exact' | 'p2' | 'unknown';
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
 * One layer's statistics in mergeable form: counts, sums, maxima, the top images (file indices
 * into the files given) and, while at most exactLimit images were seen, each image's channel
 * means (float32 values, image-major), from which percentiles are exact.
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
  /** [images][channels], or null once the run went past exactLimit (P² estimates). */
  means: number[][] | null;
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

/** The P² estimator of one quantile, started from a sorted sample (at least 5 values). */
export class P2Quantile {
  readonly #p: number;
  readonly #q: number[];
  readonly #n: number[];
  readonly #np: number[];
  readonly #dn: number[];

  constructor(p: number, sortedSample: ArrayLike<number>) {
    this.#p = p;
    const count = sortedSample.length;
    if (count < 5) throw new Error('P2Quantile needs at least 5 starting values');
    this.#dn = [0, p / 2, p, (1 + p) / 2, 1];
    // Markers at the sample's quantiles 0, p/2, p, (1+p)/2, 1; positions 1-based.
    this.#np = this.#dn.map((d) => 1 + (count - 1) * d);
    this.#n = this.#np.map((x, i) =>
      i === 0 ? 1 : i === 4 ? count : Math.max(i + 1, Math.min(count - 4 + i, Math.round(x))),
    );
    this.#q = this.#n.map((pos) => sortedSample[pos - 1]);
  }

  add(x: number): void {
    const q = this.#q,
      n = this.#n;
    let k: number;
    if (x < q[0]) {
      q[0] = x;
      k = 0;
    } else if (x >= q[4]) {
      q[4] = x;
      k = 3;
    } else {
      k = 0;
      while (k < 3 && x >= q[k + 1]) k++;
    }
    for (let i = k + 1; i < 5; i++) n[i]++;
    for (let i = 0; i < 5; i++) this.#np[i] += this.#dn[i];
    for (let i = 1; i <= 3; i++) {
      const d = this.#np[i] - n[i];
      if ((d >= 1 && n[i + 1] - n[i] > 1) || (d <= -1 && n[i - 1] - n[i] < -1)) {
        const s = Math.sign(d);
        const parabolic =
          q[i] +
          (s / (n[i + 1] - n[i - 1])) *
            (((n[i] - n[i - 1] + s) * (q[i + 1] - q[i])) / (n[i + 1] - n[i]) +
              ((n[i + 1] - n[i] - s) * (q[i] - q[i - 1])) / (n[i] - n[i - 1]));
        q[i] =
          q[i - 1] < parabolic && parabolic < q[i + 1] ? parabolic : q[i] + (s * (q[i + s] - q[i])) / (n[i + s] - n[i]);
        n[i] += s;
      }
    }
  }

  get value(): number {
    return this.#q[2];
  }

  get p(): number {
    return this.#p;
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
  silent!: Uint32Array;
  /** Exact phase: per-image means, image-major [images, C]. */
  exact: Float32Array[] = [];
  p2: P2Quantile[][] | null = null;
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

  /** One batch: per image (files[i]) and channel, the spatial mean, max and argmax (flat index). */
  add(mean: Float32Array, max: Float32Array, argmax: Int32Array, n: number, c: number, files: readonly number[]): void {
    if (this.channels === 0) {
      this.channels = c;
      this.sum = new Float64Array(c);
      this.max = new Float64Array(c).fill(-Infinity);
      this.silent = new Uint32Array(c);
      this.topScore = new Float64Array(c * this.k).fill(-Infinity);
      this.topFile = new Int32Array(c * this.k).fill(-1);
      this.topAt = new Int32Array(c * this.k);
    } else if (c !== this.channels) {
      throw new FeatscopeError(
        'SHAPE_MISMATCH',
        `layer ${this.name} gave ${c} channels for one batch and ${this.channels} for another`,
      );
    }
    for (let i = 0; i < n; i++) {
      const row = mean.subarray(i * c, (i + 1) * c);
      for (let ch = 0; ch < c; ch++) {
        this.sum[ch] += row[ch];
        const m = max[i * c + ch];
        if (m > this.max[ch]) this.max[ch] = m;
        if (m <= 0) this.silent[ch]++;
        if (this.k > 0 && m > this.topScore[ch * this.k + this.k - 1])
          this.#insert(ch, m, files[i], argmax[i * c + ch]);
      }
      this.images++;
      if (!this.p2) {
        this.exact.push(Float32Array.from(row));
        if (this.exact.length > this.exactLimit) this.#startP2();
      } else {
        for (let ch = 0; ch < c; ch++) for (const est of this.p2[ch]) est.add(row[ch]);
      }
    }
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

  #startP2(): void {
    const c = this.channels;
    const column = new Float64Array(this.exact.length);
    this.p2 = [];
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < this.exact.length; i++) column[i] = this.exact[i][ch];
      column.sort();
      this.p2.push(QUANTILES.map((q) => new P2Quantile(q, column)));
    }
    this.exact = [];
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
      means: this.p2 ? null : this.exact.map((r) => Array.from(r)),
      top,
    };
  }

  /** The accumulator of several runs' states over disjoint images (file indices already global). */
  static merge(states: LayerStatsState[], exactLimit: number): LayerAccumulator {
    const first = states[0];
    const a = new LayerAccumulator(first.name, Math.max(exactLimit, 5), first.k, first.mapWidth);
    const c = first.channels;
    for (const s of states) {
      if (s.channels !== c || s.k !== first.k || s.mapWidth !== first.mapWidth) {
        throw new FeatscopeError(
          'SHAPE_MISMATCH',
          `layer ${first.name}: the runs to merge differ in channels (${s.channels} vs ${c}), top images kept or map width`,
        );
      }
    }
    a.channels = c;
    a.sum = new Float64Array(c);
    a.max = new Float64Array(c).fill(-Infinity);
    a.silent = new Uint32Array(c);
    a.topScore = new Float64Array(c * a.k).fill(-Infinity);
    a.topFile = new Int32Array(c * a.k).fill(-1);
    a.topAt = new Int32Array(c * a.k);
    for (const s of states) {
      a.images += s.images;
      for (let ch = 0; ch < c; ch++) {
        a.sum[ch] += s.sum[ch];
        if (s.max[ch] > a.max[ch]) a.max[ch] = s.max[ch];
        a.silent[ch] += s.silent[ch];
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
    if (states.every((s) => s.means)) {
      a.exact = states.flatMap((s) => s.means!.map((r) => Float32Array.from(r)));
      if (a.exact.length > a.exactLimit) a.#startP2();
    } else {
      a.partial = true;
    }
    return a;
  }

  /** Set when a merged run lacks some per-image means: its percentiles are not known. */
  partial = false;

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
    const column = new Float64Array(this.exact.length);
    for (let ch = 0; ch < c; ch++) {
      stat.mean[ch] = this.sum[ch] / this.images;
      stat.silentShare[ch] = this.silent[ch] / this.images;
      if (this.partial) {
        stat.p50[ch] = stat.p90[ch] = stat.p99[ch] = NaN;
      } else if (this.p2) {
        [stat.p50[ch], stat.p90[ch], stat.p99[ch]] = this.p2[ch].map((e) => e.value);
      } else {
        for (let i = 0; i < this.exact.length; i++) column[i] = this.exact[i][ch];
        column.sort();
        [stat.p50[ch], stat.p90[ch], stat.p99[ch]] = QUANTILES.map((q) => percentileSorted(column, q));
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
      percentiles: this.partial ? 'unknown' : this.p2 ? 'p2' : 'exact',
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
  if (!Number.isInteger(exactLimit) || exactLimit < 5)
    throw invalidParameter('exactLimit', 'an integer of at least 5', exactLimit);
  const k = options.examples ?? 5;
  if (!Number.isInteger(k) || k < 0 || k > 100) throw invalidParameter('examples', 'an integer from 0 to 100', k);
  const resize = options.resize ?? 'squash';
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
  const failed: FolderStats['failed'] = [];
  for await (const b of imageBatches(files, batch, { resize, size: norm.size, mean: norm.mean, std: norm.std })) {
    failed.push(...b.failed);
    if (b.files.length > 0) {
      const caps = await model.capture({ data: b.data, shape: b.shape }, options.layers, { stats: true, maxSize: 1 });
      for (const cap of caps) {
        if (!cap.stats) continue;
        // A module called several times gives one capture per call (`relu`, `relu#1`): each its own statistics.
        const [n, c] = cap.stats.shape;
        accumulator(cap.name).add(cap.stats.mean, cap.stats.max, cap.stats.argmax, n, c, b.files);
      }
    }
    options.onProgress?.(Math.min(b.start + batch, files.length), files.length);
  }
  const images = files.length - failed.length;
  if (images === 0)
    throw new FeatscopeError(
      'NO_INPUTS',
      `none of the ${files.length} images could be read; first error: ${failed[0]?.message}`,
    );
  return {
    images,
    failed,
    layers: [...acc.values()].map((a) => a.result()),
    weights: weightsOf(model),
    state: [...acc.values()].map((a) => a.state()),
  };
}

/**
 * Statistics of several runs over disjoint images (shards), from their states, with file indices
 * already mapped into one list: equal to one run over all the images (sums up to float64
 * rounding; counts, maxima, top images and exact percentiles exactly). Percentiles stay exact
 * while the images together are at most exactLimit (default 1000); beyond, P² goes on from the
 * first exactLimit in the order given.
 */
export function mergeStatsStates(
  runs: LayerStatsState[][],
  options: { exactLimit?: number } = {},
): { images: number; layers: LayerStatisticsOverFolder[]; state: LayerStatsState[] } {
  if (runs.length === 0) throw invalidParameter('runs', "at least one run's state", runs);
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
