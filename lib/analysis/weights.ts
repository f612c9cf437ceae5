/**
 * Weight distributions: a histogram and summary statistics for every parameter tensor (weights
 * and biases; BatchNorm running statistics are buffers and are left out), and the first
 * convolution's filters drawn as RGB tiles.
 */
import sharp from 'sharp';
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { Model, Parameter } from '../model';
import { weightsOf } from './common';
import { formatNumber } from '../render/format';
import { BANNER_HEIGHT, weightsBanner } from '../render/frame';
import { BAR, GRID, INK, MUTED, fitSize, fitText, svgDocument, svgToPng, text } from '../render/svg';

export interface WeightHistogram {
  /** Parameter name, e.g. `layer1.0.conv1.weight`. */
  name: string;
  /** The module it belongs to, e.g. `layer1.0.conv1`. */
  layer: string;
  /** `weight`, `bias`, ... (the last part of the name). */
  role: string;
  shape: number[];
  count: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  /** max |w|. */
  absMax: number;
  /** Share of values with |w| < 1e-3 · absMax (0 for an all-zero tensor counts as 1). */
  nearZero: number;
  /** `bins` equal-width bins over [min, max]: bin i holds edges[i] <= w < edges[i + 1], the last also w == max. */
  edges: Float64Array;
  counts: Uint32Array;
}

export interface WeightDistributionOptions {
  /** Bins per histogram; default 50. */
  bins?: number;
  /** Only parameters whose module name is one of these or starts with one of them plus '.'. */
  layers?: string[];
  /** Also buffers (BatchNorm running mean and variance); default false. */
  buffers?: boolean;
}

export interface WeightDistributions {
  tensors: WeightHistogram[];
  weights: { trained: boolean | undefined; text: string };
}

const NEAR_ZERO = 1e-3;

/** A histogram and statistics of one tensor's values. */
export function histogram(name: string, shape: number[], data: Float32Array, bins: number): WeightHistogram {
  let min = Infinity,
    max = -Infinity,
    sum = 0;
  for (const v of data) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  const count = data.length;
  const mean = count ? sum / count : NaN;
  let sq = 0;
  for (const v of data) sq += (v - mean) * (v - mean);
  const absMax = Math.max(Math.abs(min), Math.abs(max));
  const threshold = NEAR_ZERO * absMax;
  let near = 0;
  for (const v of data) if (Math.abs(v) < threshold || absMax === 0) near++;
  const span = max - min;
  const edges = new Float64Array(bins + 1);
  for (let i = 0; i <= bins; i++) edges[i] = span > 0 ? min + (span * i) / bins : min + i / bins;
  edges[bins] = span > 0 ? max : min + 1;
  const counts = new Uint32Array(bins);
  for (const v of data) {
    let i = span > 0 ? Math.floor(((v - min) / span) * bins) : 0;
    // Settle rounding at the edges so that counts agree exactly with the edges listed.
    if (i >= bins) i = bins - 1;
    while (i > 0 && v < edges[i]) i--;
    while (i < bins - 1 && v >= edges[i + 1]) i++;
    counts[i]++;
  }
  const dot = name.lastIndexOf('.');
  return {
    name,
    layer: dot > 0 ? name.slice(0, dot) : '',
    role: dot > 0 ? name.slice(dot + 1) : name,
    shape,
    count,
    mean,
    std: count ? Math.sqrt(sq / count) : NaN,
    min,
    max,
    absMax,
    nearZero: count ? near / count : NaN,
    edges,
    counts,
  };
}

export function weightDistributions(model: Model, options: WeightDistributionOptions = {}): WeightDistributions {
  if (options === null || typeof options !== 'object')
    throw invalidParameter('weightDistributions options', 'an object', options);
  checkKnownKeys('weightDistributions', options, ['bins', 'layers', 'buffers']);
  const bins = options.bins ?? 50;
  if (!Number.isInteger(bins) || bins < 1 || bins > 10000)
    throw invalidParameter('bins', 'an integer from 1 to 10000', bins);
  if (
    options.layers !== undefined &&
    (!Array.isArray(options.layers) || !options.layers.every((l) => typeof l === 'string'))
  ) {
    throw invalidParameter('layers', 'an array of module names', options.layers);
  }
  const wanted = options.layers;
  const params = model.parameters().filter((p) => (options.buffers || p.kind === 'parameter') && p.data.length > 0);
  const chosen = wanted ? params.filter((p) => wanted.some((l) => p.name.startsWith(`${l}.`) || p.name === l)) : params;
  if (wanted && chosen.length === 0) {
    throw new FeatscopeError(
      'UNKNOWN_LAYER',
      `no parameters under ${wanted.join(', ')}; parameter names look like ${params
        .slice(0, 3)
        .map((p) => p.name)
        .join(', ')}`,
    );
  }
  return { tensors: chosen.map((p) => histogram(p.name, p.shape, p.data, bins)), weights: weightsOf(model) };
}

export interface WeightHistogramChartOptions {
  /** Which tensors to draw: 'weights' (default: conv and linear weights, ndim >= 2), 'all', or a list of names. */
  tensors?: 'weights' | 'all' | string[];
  columns?: number;
}

/** Small histogram panels (counts on a linear axis, value range under each), one per tensor. */
/** A panel's title: smaller type rather than a cut-off name or shape. */
function panelTitle(title: string, x: number, y: number, width: number): string {
  const fit = fitSize(title, [12, 11, 10, 9], width);
  return text(x, y, fit.text, { size: fit.size, weight: 'bold' });
}

export async function renderWeightHistograms(
  model: Model,
  dist: WeightDistributions,
  options: WeightHistogramChartOptions = {},
): Promise<{ png: Buffer; width: number; height: number }> {
  checkKnownKeys('renderWeightHistograms', options, ['tensors', 'columns']);
  const sel = options.tensors ?? 'weights';
  const tensors =
    sel === 'all'
      ? dist.tensors
      : sel === 'weights'
        ? dist.tensors.filter((t) => t.shape.length >= 2)
        : dist.tensors.filter((t) => sel.includes(t.name));
  if (tensors.length === 0)
    throw new FeatscopeError('INVALID_ARGUMENT', 'no tensors to draw: the selection matched none');
  const columns = options.columns ?? Math.min(4, tensors.length);
  const panelW = 300,
    panelH = 200,
    gap = 14;
  const rows = Math.ceil(tensors.length / columns);
  const width = columns * panelW + (columns + 1) * gap;
  const head = BANNER_HEIGHT + 56;
  const height = head + rows * (panelH + gap) + gap;
  const parts = [
    weightsBanner(model.metadata, width),
    text(gap, BANNER_HEIGHT + 22, 'Weight distributions', { size: 16, weight: 'bold' }),
    text(
      gap,
      BANNER_HEIGHT + 43,
      `${tensors.length} tensors · ${tensors[0].counts.length} bins over each tensor's own [min, max] · count axis linear · "near 0": |w| < 0.001 · max|w|`,
      { size: 12, fill: MUTED },
    ),
  ];
  tensors.forEach((t, i) => {
    const x0 = gap + (i % columns) * (panelW + gap);
    const y0 = head + Math.floor(i / columns) * (panelH + gap);
    parts.push(histogramPanel(t, x0, y0, panelW, panelH));
  });
  return { png: await svgToPng(svgDocument(width, height, parts.join(''))), width, height };
}

function histogramPanel(t: WeightHistogram, x0: number, y0: number, w: number, h: number): string {
  const left = x0 + 44,
    right = x0 + w - 8,
    top = y0 + 40,
    bottom = y0 + h - 34;
  const plotW = right - left,
    plotH = bottom - top;
  let peak = 0;
  for (const c of t.counts) if (c > peak) peak = c;
  const parts = [
    `<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="#fafafa" stroke="${GRID}"/>`,
    panelTitle(`${t.name} [${t.shape.join('×')}]`, x0 + 6, y0 + 15, w - 12),
    text(
      x0 + 6,
      y0 + 31,
      fitText(
        `mean ${formatNumber(t.mean)} · std ${formatNumber(t.std)} · near 0 ${(t.nearZero * 100).toFixed(1)}%`,
        11,
        w - 12,
      ),
      { size: 11, fill: MUTED },
    ),
  ];
  const bw = plotW / t.counts.length;
  t.counts.forEach((c, i) => {
    const bh = peak > 0 ? (c / peak) * plotH : 0;
    if (bh > 0)
      parts.push(
        `<rect x="${(left + i * bw).toFixed(2)}" y="${(bottom - bh).toFixed(2)}" width="${Math.max(0.6, bw - 0.4).toFixed(2)}" height="${bh.toFixed(2)}" fill="${BAR}"/>`,
      );
  });
  // Zero marker, when zero lies inside the range.
  if (t.min < 0 && t.max > 0) {
    const zx = left + ((0 - t.min) / (t.max - t.min)) * plotW;
    parts.push(
      `<line x1="${zx.toFixed(1)}" x2="${zx.toFixed(1)}" y1="${top}" y2="${bottom}" stroke="#c62828" stroke-dasharray="3,2" stroke-width="1"/>`,
    );
  }
  parts.push(`<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="${INK}"/>`);
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${bottom}" stroke="${INK}"/>`);
  parts.push(text(left - 4, top + 8, formatNumber(peak), { size: 10, anchor: 'end', fill: MUTED }));
  parts.push(text(left - 4, bottom, '0', { size: 10, anchor: 'end', fill: MUTED }));
  parts.push(text(x0 + 10, top + plotH / 2, 'count', { size: 10, anchor: 'middle', fill: MUTED, rotate: -90 }));
  parts.push(text(left, bottom + 14, formatNumber(t.min), { size: 10, fill: MUTED }));
  parts.push(text(right, bottom + 14, formatNumber(t.max), { size: 10, anchor: 'end', fill: MUTED }));
  if (t.min < 0 && t.max > 0)
    parts.push(
      text(left + ((0 - t.min) / (t.max - t.min)) * plotW, bottom + 14, '0', {
        size: 10,
        anchor: 'middle',
        fill: '#c62828',
      }),
    );
  parts.push(text((left + right) / 2, bottom + 28, 'value', { size: 10, anchor: 'middle', fill: MUTED }));
  return parts.join('');
}

/** The first convolution with 3 input channels (RGB): the tensor its filters are drawn from. */
export function firstConvWeight(params: Parameter[]): Parameter {
  const p = params.find((q) => q.kind === 'parameter' && q.shape.length === 4 && q.shape[1] === 3);
  if (!p)
    throw new FeatscopeError(
      'NO_RGB_CONV',
      'the model has no convolution with 3 input channels (RGB) whose filters could be drawn as colour tiles',
    );
  return p;
}

export interface FirstConvFilterOptions {
  /** Pixels per filter tap; default: filters drawn at about 56 px. */
  scale?: number;
  columns?: number;
}

/**
 * The first convolution's filters as RGB tiles: each filter min-max normalised on its own over
 * its three channels (so its colours, not its scale, are shown), nearest-neighbour enlarged.
 */
export async function renderFirstConvFilters(
  model: Model,
  options: FirstConvFilterOptions = {},
): Promise<{ png: Buffer; width: number; height: number; layer: string }> {
  checkKnownKeys('renderFirstConvFilters', options, ['scale', 'columns']);
  const p = firstConvWeight(model.parameters());
  const [count, , kh, kw] = p.shape;
  const scale = options.scale ?? Math.max(2, Math.round(56 / Math.max(kh, kw)));
  if (!Number.isInteger(scale) || scale < 1 || scale > 64)
    throw invalidParameter('scale', 'an integer from 1 to 64', scale);
  const columns = options.columns ?? Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / columns);
  const tileW = kw * scale,
    tileH = kh * scale,
    gap = 4,
    margin = 12;
  const gridW = columns * tileW + (columns - 1) * gap;
  const width = Math.max(gridW + 2 * margin, 420);
  const head = BANNER_HEIGHT + 56;
  const height = head + rows * tileH + (rows - 1) * gap + margin + 22;
  const gridLeft = Math.floor((width - gridW) / 2);
  const canvas = Buffer.alloc(width * height * 3, 255);
  const plane = kh * kw;
  for (let f = 0; f < count; f++) {
    const base = f * 3 * plane;
    let lo = Infinity,
      hi = -Infinity;
    for (let i = 0; i < 3 * plane; i++) {
      const v = p.data[base + i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const span = hi - lo;
    const tx = gridLeft + (f % columns) * (tileW + gap);
    const ty = head + Math.floor(f / columns) * (tileH + gap);
    for (let y = 0; y < tileH; y++) {
      for (let x = 0; x < tileW; x++) {
        const tap = Math.floor(y / scale) * kw + Math.floor(x / scale);
        const o = ((ty + y) * width + tx + x) * 3;
        for (let c = 0; c < 3; c++) {
          const v = p.data[base + c * plane + tap];
          canvas[o + c] = span > 0 ? Math.round(((v - lo) / span) * 255) : 128;
        }
      }
    }
  }
  const layer = p.name.replace(/\.weight$/, '');
  const overlay = svgDocument(
    width,
    height,
    [
      weightsBanner(model.metadata, width),
      text(
        margin,
        BANNER_HEIGHT + 22,
        fitText(`First convolution filters · ${layer} [${p.shape.join('×')}]`, 16, width - 2 * margin),
        { size: 16, weight: 'bold' },
      ),
      text(
        margin,
        BANNER_HEIGHT + 43,
        fitText(`${count} filters, ${kh}×${kw} taps, RGB · each filter min-max scaled alone`, 12, width - 2 * margin),
        { size: 12, fill: MUTED },
      ),
      text(
        margin,
        height - 10,
        fitText(`filters in index order, left to right, ${columns} per row`, 11, width - 2 * margin),
        { size: 11, fill: MUTED },
      ),
    ].join(''),
  ).replace(/<rect width="\d+" height="\d+" fill="#ffffff"\/>/, '');
  const png = await sharp(canvas, { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(overlay), top: 0, left: 0 }])
    .removeAlpha()
    .png({ compressionLevel: 6 })
    .toBuffer();
  return { png, width, height, layer };
}
