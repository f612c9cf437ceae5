/**
 * Channel grids: one colour-mapped cell per channel of a feature map, optionally labelled
 * ("ch 12 · max 3.41"), encoded as PNG by sharp. Also the channel ranking behind `{ top: k }`.
 */
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import { captureOrigin } from '../provenance';
import { type ColorInput, type RGB, luminance, parseColor } from './color';
import { type ColormapName, applyColormap, checkColormap } from './colormaps';
import {
  type CaptureDims,
  type ChannelStats,
  type FeatureMaps,
  channelPlane,
  checkBatchIndex,
  checkCapture,
  channelStats,
  realChannel,
} from './capture';
import { type UpsampleMode, nearestIndices, resampleMap } from './resample';
import { type RgbCanvas, encodePng } from './canvas';
import { formatNumber } from './format';
import { FRAME_CAPTION_HEIGHT, frameCanvas } from './frame';
import { MONO_ADVANCE_EM, drawText } from './text';

export type RankBy = 'max' | 'mean';

export interface RankOptions {
  /** Score: the channel's maximum activation (default) or its mean. */
  by?: RankBy;
  /** How many channels to return; default all. */
  k?: number;
  /** Which image of the batch; default 0. */
  batchIndex?: number;
}

export interface RankedChannel {
  channel: number;
  score: number;
  /** Row and column of the channel's maximum (its first occurrence). */
  maxAt: { y: number; x: number };
  max: number;
  mean: number;
}

export type ChannelSelection = number | { top: number; by?: RankBy } | readonly number[];

export interface ChannelGridOptions {
  /** First N channels (default 16, or all if fewer), `{ top: k, by }` ranked, or an explicit list. */
  channels?: ChannelSelection;
  /** Cells per row; default ceil(sqrt(count)) (16 channels make the blog's 4 x 4), one row up to 3. */
  columns?: number;
  /** Longer side of a cell in pixels; default an integer multiple of the map size, at least 128. */
  cellSize?: number;
  /** 'nearest' (default: shows the real activation grid) or 'bilinear'. */
  upsample?: UpsampleMode;
  /** 'channel' (default): each cell spans its own min..max. 'shared': one range for all cells. */
  normalize?: 'channel' | 'shared';
  /** Draw "ch 12 · max 3.41" under each cell; default true. */
  labels?: boolean;
  /** Pixels between cells and around the grid; default 4. */
  gap?: number;
  /** '#rrggbb', '#rgb' or [r, g, b]; default white. */
  background?: ColorInput;
  /** Which image of the batch; default 0. */
  batchIndex?: number;
  /** default 'viridis'. */
  colormap?: ColormapName;
}

export interface GridCell {
  channel: number;
  /** The cell's image area (labels sit below it). */
  x: number;
  y: number;
  width: number;
  height: number;
  /** The channel's own value range and mean. */
  min: number;
  max: number;
  mean: number;
  /** The values drawn with the colour map's first and last colours. */
  vmin: number;
  vmax: number;
}

export interface ChannelGrid {
  png: Buffer;
  width: number;
  height: number;
  layout: GridCell[];
}

const GRID_OPTIONS = [
  'channels',
  'columns',
  'cellSize',
  'upsample',
  'normalize',
  'labels',
  'gap',
  'background',
  'batchIndex',
  'colormap',
] as const;
const MAX_CANVAS_PIXELS = 100_000_000;

function compareScores(a: RankedChannel, b: RankedChannel): number {
  const an = Number.isNaN(a.score);
  const bn = Number.isNaN(b.score);
  if (an !== bn) return an ? 1 : -1;
  if (a.score !== b.score && !an) return b.score - a.score;
  return a.channel - b.channel;
}

/** Channels ordered by their maximum (or mean) activation, highest first; ties by channel index. */
export function rankChannels(capture: FeatureMaps, options: RankOptions = {}): RankedChannel[] {
  const dims = checkCapture(capture);
  if (options === null || typeof options !== 'object')
    throw invalidParameter('rankChannels options', 'an object', options);
  checkKnownKeys('rankChannels', options, ['by', 'k', 'batchIndex']);
  const by = options.by ?? 'max';
  if (by !== 'max' && by !== 'mean') throw invalidParameter('by', "'max' or 'mean'", by);
  const k = options.k ?? dims.c;
  if (!Number.isInteger(k) || k < 1 || k > dims.c) {
    throw invalidParameter('k', `an integer from 1 to ${dims.c} (the layer's channel count)`, k);
  }
  const b = checkBatchIndex(options.batchIndex, dims);
  const ranked: RankedChannel[] = channelStats(capture, b).map((s) => ({
    channel: s.channel,
    score: by === 'max' ? s.max : s.mean,
    maxAt: s.maxAt,
    max: s.max,
    mean: s.mean,
  }));
  return ranked.sort(compareScores).slice(0, k);
}

interface Selected {
  channels: number[];
  metric: RankBy;
}

function selectChannels(capture: FeatureMaps, dims: CaptureDims, selection: unknown, batchIndex: number): Selected {
  if (selection === undefined) {
    return { channels: range(Math.min(16, dims.c)), metric: 'max' };
  }
  if (typeof selection === 'number') {
    if (!Number.isInteger(selection) || selection < 1 || selection > dims.c) {
      throw invalidParameter('channels', `a count from 1 to ${dims.c} (the layer's channel count)`, selection);
    }
    return { channels: range(selection), metric: 'max' };
  }
  if (Array.isArray(selection)) {
    if (selection.length === 0) throw invalidParameter('channels', 'a non-empty list of channel indices', selection);
    for (const ch of selection) {
      if (!Number.isInteger(ch) || ch < 0 || ch >= dims.c) {
        throw invalidParameter('channels', `channel indices from 0 to ${dims.c - 1}`, ch);
      }
    }
    return { channels: [...selection], metric: 'max' };
  }
  if (selection !== null && typeof selection === 'object' && 'top' in selection) {
    const { top, by, ...rest } = selection as { top: number; by?: RankBy };
    checkKnownKeys('channels', rest, []);
    const ranked = rankChannels(capture, { k: top, by, batchIndex });
    return { channels: ranked.map((r) => r.channel), metric: by ?? 'max' };
  }
  throw invalidParameter(
    'channels',
    'a count, { top: k, by: "max" | "mean" }, or a list of channel indices',
    selection,
  );
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function checkInt(option: string, value: unknown, min: number, max: number, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) {
    throw invalidParameter(option, `an integer from ${min} to ${max}`, value);
  }
  return v as number;
}

interface LabelPlan {
  /** Lines per cell. */
  lines: (cell: GridCell, metricValue: number) => string[];
  fontSize: number;
  lineHeight: number;
  height: number;
}

/** Pick the most informative label form that fits the cell width at a readable size (>= 9 px). */
function planLabels(
  cells: GridCell[],
  metric: RankBy,
  metricOf: (c: GridCell) => number,
  cellWidth: number,
): LabelPlan | null {
  const forms: Array<(c: GridCell, v: number) => string[]> = [
    (c, v) => [`ch ${c.channel} · ${metric} ${formatNumber(v, 'cell')}`],
    (c, v) => [`ch ${c.channel}`, `${metric} ${formatNumber(v, 'cell')}`],
    (c) => [`ch ${c.channel}`],
    (c) => [`${c.channel}`],
  ];
  const preferred = Math.max(9, Math.min(14, Math.round(cellWidth / 11)));
  for (const form of forms) {
    const longest = Math.max(...cells.map((c) => Math.max(...form(c, metricOf(c)).map((l) => [...l].length))));
    for (let size = preferred; size >= 9; size--) {
      if (longest * MONO_ADVANCE_EM * size <= cellWidth - 2) {
        const lineHeight = Math.ceil(size * 1.3);
        const count = form(cells[0], metricOf(cells[0])).length;
        return { lines: form, fontSize: size, lineHeight, height: count * lineHeight + Math.ceil(size * 0.5) };
      }
    }
  }
  return null; // cells too narrow for any text
}

export interface FramedChannelGridOptions extends ChannelGridOptions {
  /** Banner and title above the grid; default true for captures from a model (others have no model to name). */
  frame?: boolean;
}

/**
 * Render channels of one image of a capture as a PNG grid. Each cell keeps the map's aspect
 * ratio; `layout` says which channel sits where and which values its colours span. A capture
 * that came from a featscope model is framed with the model's weights banner and a title (layer
 * name and channel-selection rule), as every picture featscope draws is; `layout` then gives the
 * cells' positions in the framed picture. `frame: false`, or a capture not from a model, gives
 * the bare grid.
 */
export async function renderChannelGrid(
  capture: FeatureMaps,
  options: FramedChannelGridOptions = {},
): Promise<ChannelGrid> {
  if (options === null || typeof options !== 'object')
    throw invalidParameter('renderChannelGrid options', 'an object', options);
  const { frame, ...gridOptions } = options;
  if (frame !== undefined && typeof frame !== 'boolean') throw invalidParameter('frame', 'a boolean', frame);
  const { canvas, layout } = await drawChannelGrid(capture, gridOptions);
  const from = frame === false ? undefined : captureOrigin(capture);
  if (!from) return { png: await encodePng(canvas), width: canvas.width, height: canvas.height, layout };
  const channels = capture.shape.length === 4 ? capture.shape[1] : capture.shape[0];
  // A capture reduced on the device: say the rule it was reduced by ("top 6 by mean, at capture").
  const rule =
    from.selection && gridOptions.channels === undefined
      ? `${from.selection}, at capture`
      : `${selectionRule(gridOptions.channels ?? Math.min(16, channels), channels)}${from.selection ? ` (of ${from.selection}, at capture)` : ''}`;
  const framed = await frameCanvas(canvas, from.metadata, `${capture.name ?? 'capture'} · ${rule}`, []);
  const dx = Math.floor((framed.width - canvas.width) / 2);
  const dy = framed.height - canvas.height - FRAME_CAPTION_HEIGHT;
  return {
    png: await encodePng(framed),
    width: framed.width,
    height: framed.height,
    layout: layout.map((c) => ({ ...c, x: c.x + dx, y: c.y + dy })),
  };
}

/**
 * The picture title's account of which channels it shows: "first 16 of 64 channels",
 * "top 16 of 512 channels by mean", "channels 3, 7, 9 of 64". For a capture reduced on the device
 * the count is the capture's; the rule is then the selection made at capture time.
 */
export function selectionRule(
  selection: ChannelSelection,
  channels: number,
  capture?: Pick<FeatureMaps, 'channels'>,
): string {
  const reduced = capture?.channels !== undefined ? ' (as captured)' : '';
  if (typeof selection === 'number')
    return selection >= channels
      ? `all ${channels} channels${reduced}`
      : `first ${selection} of ${channels} channels${reduced}`;
  if (Array.isArray(selection)) {
    const list =
      selection.length > 8 ? `${selection.slice(0, 8).join(', ')}, … (${selection.length})` : selection.join(', ');
    return `channels ${list} of ${channels}${reduced}`;
  }
  const { top, by } = selection as { top: number; by?: string };
  return `top ${top} of ${channels} channels by ${by ?? 'max'}${reduced}`;
}

/** renderChannelGrid before PNG encoding: the RGB canvas and the layout. */
export async function drawChannelGrid(
  capture: FeatureMaps,
  options: ChannelGridOptions = {},
): Promise<{ canvas: RgbCanvas; layout: GridCell[] }> {
  const dims = checkCapture(capture);
  if (options === null || typeof options !== 'object')
    throw invalidParameter('renderChannelGrid options', 'an object', options);
  checkKnownKeys('renderChannelGrid', options, GRID_OPTIONS);
  const batchIndex = checkBatchIndex(options.batchIndex, dims);
  const colormap = checkColormap(options.colormap ?? 'viridis');
  const upsample = options.upsample ?? 'nearest';
  if (upsample !== 'nearest' && upsample !== 'bilinear')
    throw invalidParameter('upsample', "'nearest' or 'bilinear'", upsample);
  const normalize = options.normalize ?? 'channel';
  if (normalize !== 'channel' && normalize !== 'shared')
    throw invalidParameter('normalize', "'channel' or 'shared'", normalize);
  const labels = options.labels ?? true;
  if (typeof labels !== 'boolean') throw invalidParameter('labels', 'a boolean', labels);
  const gap = checkInt('gap', options.gap, 0, 256, 4);
  const background = parseColor(options.background ?? '#ffffff', 'background');
  const { channels, metric } = selectChannels(capture, dims, options.channels, batchIndex);
  const columns = Math.min(
    checkInt(
      'columns',
      options.columns,
      1,
      1024,
      channels.length <= 3 ? channels.length : Math.ceil(Math.sqrt(channels.length)),
    ),
    channels.length,
  );
  const longer = Math.max(dims.h, dims.w);
  const cellSize = checkInt('cellSize', options.cellSize, 1, 4096, longer * Math.max(1, Math.ceil(128 / longer)));
  const cellW = dims.w >= dims.h ? cellSize : Math.max(1, Math.round((cellSize * dims.w) / dims.h));
  const cellH = dims.h >= dims.w ? cellSize : Math.max(1, Math.round((cellSize * dims.h) / dims.w));

  const stats: ChannelStats[] = channelStats(capture, batchIndex, channels);
  let sharedMin = Infinity;
  let sharedMax = -Infinity;
  for (const s of stats) {
    if (s.min < sharedMin) sharedMin = s.min;
    if (s.max > sharedMax) sharedMax = s.max;
  }
  // Cells are labelled with the layer's real channel indices (a capture reduced on the device
  // holds k maps of other channels); `channels` holds the positions in the capture.
  const cells: GridCell[] = stats.map((s) => ({
    channel: realChannel(capture, dims, batchIndex, s.channel),
    x: 0,
    y: 0,
    width: cellW,
    height: cellH,
    min: s.min,
    max: s.max,
    mean: s.mean,
    vmin: normalize === 'shared' ? sharedMin : s.min,
    vmax: normalize === 'shared' ? sharedMax : s.max,
  }));
  const metricOf = (c: GridCell) => (metric === 'mean' ? c.mean : c.max);
  const plan = labels ? planLabels(cells, metric, metricOf, cellW) : null;
  const labelH = plan ? plan.height : 0;

  const rows = Math.ceil(channels.length / columns);
  const width = columns * cellW + (columns + 1) * gap;
  const height = rows * (cellH + labelH) + (rows + 1) * gap;
  if (width * height > MAX_CANVAS_PIXELS) {
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `A ${width}x${height} grid is above the ${MAX_CANVAS_PIXELS}-pixel limit; use fewer channels or a smaller cellSize`,
    );
  }

  const canvas = Buffer.alloc(width * height * 3);
  if (background[0] === background[1] && background[1] === background[2]) {
    canvas.fill(background[0]);
  } else {
    for (let i = 0; i < width * height; i++) {
      canvas[i * 3] = background[0];
      canvas[i * 3 + 1] = background[1];
      canvas[i * 3 + 2] = background[2];
    }
  }
  const colIndex = nearestIndices(dims.w, cellW);
  const rowIndex = nearestIndices(dims.h, cellH);
  cells.forEach((cell, i) => {
    cell.x = gap + (i % columns) * (cellW + gap);
    cell.y = gap + Math.floor(i / columns) * (cellH + labelH + gap);
    const plane = channelPlane(capture.data, dims, batchIndex, channels[i]);
    if (upsample === 'nearest') {
      // Colour the small map, then repeat its pixels: the same picture as colouring the enlarged one.
      const rgb = applyColormap(plane, cell.vmin, cell.vmax, colormap);
      const row = new Uint8Array(cellW * 3);
      let built = -1;
      for (let y = 0; y < cellH; y++) {
        const sy = rowIndex[y];
        if (sy !== built) {
          const base = sy * dims.w * 3;
          for (let x = 0; x < cellW; x++) {
            const s = base + colIndex[x] * 3;
            row[x * 3] = rgb[s];
            row[x * 3 + 1] = rgb[s + 1];
            row[x * 3 + 2] = rgb[s + 2];
          }
          built = sy;
        }
        canvas.set(row, ((cell.y + y) * width + cell.x) * 3);
      }
      return;
    }
    const rgb = applyColormap(
      resampleMap(plane, dims.w, dims.h, cellW, cellH, upsample),
      cell.vmin,
      cell.vmax,
      colormap,
    );
    for (let y = 0; y < cellH; y++) {
      canvas.set(rgb.subarray(y * cellW * 3, (y + 1) * cellW * 3), ((cell.y + y) * width + cell.x) * 3);
    }
  });

  if (plan) {
    const textColour: RGB = luminance(background) > 0.5 ? [26, 26, 26] : [240, 240, 240];
    const texts = cells.flatMap((cell) =>
      plan
        .lines(cell, metricOf(cell))
        .map((line, l) => ({ text: line, x: cell.x + cellW / 2, y: cell.y + cellH + (l + 1) * plan.lineHeight })),
    );
    await drawText({ data: canvas, width, height }, texts, { size: plan.fontSize, colour: textColour });
  }
  return { canvas: { data: canvas, width, height }, layout: cells };
}
