/**
 * The blog's whole script in one call: preprocess a photo, capture layers, render one channel
 * grid per layer plus a heatmap overlay, write the PNGs, return their paths and statistics.
 * The per-image steps are shared with `featscope render` (renderImageLayers, layerStatistics).
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { FeatscopeError, checkKnownKeys, invalidParameter } from './errors';
import { loadModel, Model } from './model';
import { preprocess, type ImageSource, type PreprocessedImage } from './preprocess';
import {
  channelStats,
  rankChannels,
  type ChannelGrid,
  type ChannelSelection,
  type ColormapName,
  type RenderedImage,
} from './render';
import { type RgbCanvas, encodePng } from './render/canvas';
import { drawChannelGrid, selectionRule } from './render/grid';
import type { Capture } from './types';
import type { ModelMetadata } from './metadata';
import { withColourBar } from './render/colour-bar';
import { drawMeanOverlay, frameCanvas, FRAME_CAPTION_HEIGHT } from './render/frame';

/** Whole-layer statistics for one image: what a report shows next to the grid. */
export interface LayerStatistics {
  min: number;
  max: number;
  mean: number;
  /** Share of activations that are exactly 0 (after a ReLU: the inactive ones). */
  zeroFraction: number;
  /** Channels whose map is never positive: dead after a ReLU. */
  deadChannels: number[];
}

/** Per-channel columns, index = channel. */
export interface ChannelColumns {
  max: number[];
  mean: number[];
  zeroFraction: number[];
}

export interface TopChannel {
  channel: number;
  score: number;
  /** Where the channel fires most, in map coordinates. */
  maxAt: { y: number; x: number };
}

export interface RenderedLayer {
  /** Capture name (`layer1.0.conv1`, `layer1.0.relu#1`). */
  name: string;
  /** [C, H, W] of this image's maps. */
  shape: number[];
  grid: ChannelGrid;
  overlay?: RenderedImage;
  top: TopChannel[];
  /**
   * The maps of the `top` channels, in the same order: one row of cells (the map's own size, at
   * most TOP_MAP_SIZE px) drawn
   * like the grid (same colour map, each cell its own range), no labels or frame. The layout
   * gives each cell's real channel index and place (the report crops its thumbnails from it).
   */
  topMaps: ChannelGrid;
  stats: LayerStatistics;
  channels: ChannelColumns;
}

/** Longer side of a top-channel thumbnail, in pixels. */
export const TOP_MAP_SIZE = 24;

export interface RenderLayersOptions {
  channels?: ChannelSelection;
  colormap?: ColormapName;
  overlay?: boolean;
  overlayColormap?: ColormapName;
  /**
   * Grid colours: 'channel' (default) spans each cell's own min..max; 'shared' one range for all
   * shown channels, stated in the title and drawn as a colour bar in real values (with `label`).
   */
  normalize?: 'channel' | 'shared';
  /** How many top channels (by max) to list; default 8. */
  top?: number;
  /**
   * Frame each PNG with the model's weights banner (red UNTRAINED for random weights) and a
   * title naming the image and layer, so a picture is never mistaken for a trained network's.
   */
  label?: { metadata: ModelMetadata; source: string };
}

/** Statistics of every channel of one image of a capture (channelStats), and of the whole layer. */
export function layerStatistics(
  capture: Pick<Capture, 'shape' | 'data'>,
  batchIndex = 0,
): { stats: LayerStatistics; channels: ChannelColumns } {
  const [, c, h, w] = capture.shape;
  const plane = h * w;
  const columns: ChannelColumns = { max: [], mean: [], zeroFraction: [] };
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let zeros = 0;
  const dead: number[] = [];
  for (const s of channelStats(capture, batchIndex)) {
    // A map with no number: channelStats says NaN, the layer's columns have always said -Infinity.
    const cmax = Number.isNaN(s.max) ? -Infinity : s.max;
    if (s.min < min) min = s.min;
    if (cmax > max) max = cmax;
    if (!(cmax > 0)) dead.push(s.channel);
    sum += s.sum;
    zeros += s.zeros;
    columns.max.push(cmax);
    columns.mean.push(s.mean);
    columns.zeroFraction.push(s.zeros / plane);
  }
  const n = c * plane;
  return { stats: { min, max, mean: sum / n, zeroFraction: zeros / n, deadChannels: dead }, channels: columns };
}

/** Grid, overlay, top channels and statistics of image `batchIndex` for each 4-D capture. */
export async function renderImageLayers(
  image: Pick<PreprocessedImage, 'rgb' | 'width' | 'height'>,
  captures: Capture[],
  batchIndex: number,
  options: RenderLayersOptions = {},
): Promise<RenderedLayer[]> {
  const out: RenderedLayer[] = [];
  let overlayBase: { rgb: Buffer; width: number; height: number } | undefined;
  for (const capture of captures) {
    if (capture.shape.length !== 4) {
      throw new FeatscopeError(
        'NOT_FEATURE_MAPS',
        `layer ${capture.name} outputs shape [${capture.shape.join(', ')}], not feature maps [N, C, H, W]; pick a convolutional layer (\`featscope layers\` shows shapes) or save it with \`featscope export\``,
      );
    }
    const normalize = options.normalize ?? 'channel';
    const drawn = await drawChannelGrid(capture, {
      channels: fitChannels(options.channels ?? 16, capture.shape[1]),
      colormap: options.colormap ?? 'viridis',
      batchIndex,
      normalize,
    });
    const { stats, channels } = layerStatistics(capture, batchIndex);
    const k = Math.min(options.top ?? 8, capture.shape[1]);
    const top = rankChannels(capture, { by: 'max', k, batchIndex }).map((r) => ({
      channel: r.channel,
      score: r.score,
      maxAt: r.maxAt,
    }));
    const topDrawn = await drawChannelGrid(capture, {
      channels: top.map((t) => t.channel),
      columns: Math.max(1, top.length),
      // Small maps at their own size (the report enlarges them, pixelated); larger ones shrink to TOP_MAP_SIZE.
      cellSize: Math.min(TOP_MAP_SIZE, Math.max(capture.shape[2], capture.shape[3])),
      labels: false,
      gap: 2,
      colormap: options.colormap ?? 'viridis',
      batchIndex,
    });
    let topCanvas = topDrawn.canvas;
    let topLayout = topDrawn.layout;
    if (options.label) {
      // The strip carries the weights banner too; its cells move by the frame's offset.
      const { metadata, source } = options.label;
      const framed = await frameCanvas(topCanvas, metadata, `${source} · ${capture.name} · top ${k} by max`, []);
      const dx = Math.floor((framed.width - topCanvas.width) / 2),
        dy = framed.height - topCanvas.height - FRAME_CAPTION_HEIGHT;
      topLayout = topLayout.map((c) => ({ ...c, x: c.x + dx, y: c.y + dy }));
      topCanvas = framed;
    }
    const topMaps: ChannelGrid = {
      png: await encodePng(topCanvas),
      width: topCanvas.width,
      height: topCanvas.height,
      layout: topLayout,
    };
    let gridCanvas = drawn.canvas;
    let layout = drawn.layout;
    let overlayCanvas: RgbCanvas | undefined;
    if (options.overlay ?? true) {
      // Twice the model's input size: the heatmap is smooth, and 224 px is small on a laptop screen.
      overlayBase ??= await upscale(image, 2);
      const frame = options.label && {
        metadata: options.label.metadata,
        title: `${options.label.source} · ${capture.name} · channel mean`,
      };
      const colormap = options.overlayColormap ?? 'turbo';
      overlayCanvas = (await drawMeanOverlay(overlayBase, capture, { colormap, alpha: 0.5, batchIndex }, frame)).canvas;
    }
    if (options.label) {
      // Framed before encoding: each picture is encoded once.
      const { metadata, source } = options.label;
      const rule = selectionRule(fitChannels(options.channels ?? 16, capture.shape[1]), capture.shape[1], capture);
      let what = `${source} · ${capture.name} · ${rule}`;
      let barDx = 0;
      if (normalize === 'shared' && layout.length > 0) {
        // One scale for every cell: the title says so and a colour bar gives its real values.
        const [lo, hi] = [layout[0].vmin, layout[0].vmax];
        what += ' · one colour scale';
        const barred = await withColourBar(
          gridCanvas,
          options.colormap ?? 'viridis',
          lo,
          hi,
          `one scale for all ${layout.length} cells (normalize: shared), activation values`,
        );
        gridCanvas = barred.canvas;
        barDx = barred.dx;
      }
      const framed = await frameCanvas(gridCanvas, metadata, what, []);
      const dx = Math.floor((framed.width - gridCanvas.width) / 2) + barDx,
        dy = framed.height - gridCanvas.height - FRAME_CAPTION_HEIGHT;
      layout = layout.map((c) => ({ ...c, x: c.x + dx, y: c.y + dy }));
      gridCanvas = framed;
    }
    const grid: ChannelGrid = {
      png: await encodePng(gridCanvas),
      width: gridCanvas.width,
      height: gridCanvas.height,
      layout,
    };
    const overlay: RenderedImage | undefined = overlayCanvas && {
      png: await encodePng(overlayCanvas),
      width: overlayCanvas.width,
      height: overlayCanvas.height,
    };
    out.push({ name: capture.name, shape: capture.shape.slice(1), grid, overlay, top, topMaps, stats, channels });
  }
  return out;
}

/** A count or top-k larger than the layer is all its channels (16 by default, 8 for an 8-channel layer). */
function fitChannels(selection: ChannelSelection, channels: number): ChannelSelection {
  if (typeof selection === 'number') return Math.min(selection, channels);
  if (!Array.isArray(selection) && typeof selection === 'object' && selection !== null && 'top' in selection) {
    return { ...selection, top: Math.min(selection.top, channels) };
  }
  return selection;
}

async function upscale(image: Pick<PreprocessedImage, 'rgb' | 'width' | 'height'>, factor: number) {
  const width = image.width * factor;
  const height = image.height * factor;
  const rgb = await sharp(image.rgb, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { kernel: 'lanczos3' })
    .raw()
    .toBuffer();
  return { rgb, width, height };
}

export interface VisualizeOptions {
  /** A loaded Model or the path of a TorchScript file (loaded and disposed by this call). */
  model: Model | string;
  /** Layers to show; default ['layer1.0.conv1'], as in the blog. */
  layers?: string[];
  /** First N (default 16), { top: k, by } or a list of channel indices. */
  channels?: ChannelSelection;
  /** Grid colour map; default 'viridis'. */
  colormap?: ColormapName;
  /** Write a channel-mean heatmap over the photo per layer; default true. */
  overlay?: boolean;
  /** Folder for the PNGs (created); default './featscope-out'. */
  outDir?: string;
  /** Preprocessing resize mode; default 'squash' (as in the blog). */
  resize?: 'squash' | 'crop';
}

export interface VisualizedLayer {
  name: string;
  shape: number[];
  /** Path of the grid PNG and of the overlay PNG. */
  grid: string;
  overlay?: string;
  /** Which channel sits in which cell, in order. */
  gridChannels: number[];
  top: TopChannel[];
  stats: LayerStatistics;
  channels: ChannelColumns;
}

export interface VisualizeResult {
  /** Every PNG written, in order. */
  files: string[];
  layers: VisualizedLayer[];
}

const VISUALIZE_KEYS = ['model', 'layers', 'channels', 'colormap', 'overlay', 'outDir', 'resize'] as const;

/**
 * Preprocess `image`, capture `layers`, write `<stem>.<layer>.grid.png` (and `.overlay.png`)
 * into `outDir`, and return the paths with per-channel statistics.
 */
export async function visualize(image: ImageSource, options: VisualizeOptions): Promise<VisualizeResult> {
  if (options === null || typeof options !== 'object')
    throw invalidParameter('visualize options', 'an object with a model', options);
  checkKnownKeys('visualize', options, VISUALIZE_KEYS);
  if (!(options.model instanceof Model) && typeof options.model !== 'string') {
    throw invalidParameter('model', 'a Model from loadModel() or a TorchScript file path', options.model);
  }
  const layers = options.layers ?? ['layer1.0.conv1'];
  if (!Array.isArray(layers) || layers.length === 0)
    throw invalidParameter('layers', 'a non-empty array of layer names', layers);
  const outDir = options.outDir ?? 'featscope-out';
  if (typeof outDir !== 'string' || outDir === '') throw invalidParameter('outDir', 'a folder path', outDir);

  const owned = typeof options.model === 'string';
  const model = typeof options.model === 'string' ? await loadModel(options.model) : options.model;
  try {
    const pre = await preprocess(image, { resize: options.resize ?? 'squash', model });
    const captures = await model.capture(pre, layers);
    const rendered = await renderImageLayers(pre.images[0], captures, 0, {
      channels: options.channels,
      colormap: options.colormap,
      overlay: options.overlay,
      label: { metadata: model.metadata, source: stemOf(image) },
    });
    await fs.mkdir(outDir, { recursive: true });
    const stem = stemOf(image);
    const files: string[] = [];
    const result: VisualizedLayer[] = [];
    for (const r of rendered) {
      const base = path.join(outDir, `${stem}.${safe(r.name.replace(/#(\d+)$/, '_call$1'))}`);
      const grid = `${base}.grid.png`;
      await fs.writeFile(grid, r.grid.png);
      files.push(grid);
      let overlay: string | undefined;
      if (r.overlay) {
        overlay = `${base}.overlay.png`;
        await fs.writeFile(overlay, r.overlay.png);
        files.push(overlay);
      }
      result.push({
        name: r.name,
        shape: r.shape,
        grid,
        overlay,
        gridChannels: r.grid.layout.map((c) => c.channel),
        top: r.top,
        stats: r.stats,
        channels: r.channels,
      });
    }
    return { files, layers: result };
  } finally {
    if (owned) model.dispose();
  }
}

function safe(name: string): string {
  return (
    name
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^[._]+/, '')
      .slice(0, 80) || 'x'
  );
}

function stemOf(image: ImageSource): string {
  return typeof image === 'string' ? safe(path.basename(image, path.extname(image))) : 'image';
}
