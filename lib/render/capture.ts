/** Validation of feature-map captures and per-channel statistics, shared by the renderers. */
import { types } from 'util';
import { FeatscopeError, invalidParameter } from '../errors';
import type { Capture } from '../types';

export interface CaptureDims {
  n: number;
  c: number;
  h: number;
  w: number;
}

/** A capture-like value: a Capture, or anything with an NCHW (or CHW) shape and Float32Array data. */
export type FeatureMaps = Pick<Capture, 'shape' | 'data'> & Partial<Pick<Capture, 'name' | 'channels'>>;

/**
 * The real channel index of position `pos` of image `batchIndex`: a capture reduced on the device
 * (`channels: [3, 7, 9]` or `{ top: k }`) holds k maps and, in `channels`, the layer's own index
 * of each ([N, k]); a full capture's positions are its channels.
 */
export function realChannel(capture: FeatureMaps, dims: CaptureDims, batchIndex: number, pos: number): number {
  const map = capture.channels;
  if (!map || map.length !== dims.n * dims.c) return pos;
  return map[batchIndex * dims.c + pos];
}

/** Check a capture's shape (NCHW, or CHW taken as N = 1) against its data; return the dims. */
export function checkCapture(capture: unknown, where = 'capture'): CaptureDims {
  const cap = capture as FeatureMaps | null;
  if (cap === null || typeof cap !== 'object' || !Array.isArray(cap.shape) || !types.isFloat32Array(cap.data)) {
    throw invalidParameter(where, 'a capture with shape (number[], NCHW) and data (Float32Array)', capture);
  }
  const shape = cap.shape;
  if ((shape.length !== 4 && shape.length !== 3) || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `Expected a feature map of shape [N, C, H, W] for ${where} but received shape [${shape.join(', ')}]` +
        (shape.length === 2 ? '; this looks like a linear layer output, pick a convolutional layer' : ''),
    );
  }
  const [n, c, h, w] = shape.length === 4 ? shape : [1, ...shape];
  if (cap.data.length !== n * c * h * w) {
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `Expected ${n * c * h * w} values for ${where} of shape [${shape.join(', ')}] but its data holds ${cap.data.length}`,
    );
  }
  return { n, c, h, w };
}

export function checkBatchIndex(batchIndex: unknown, dims: CaptureDims): number {
  const b = batchIndex ?? 0;
  if (!Number.isInteger(b) || (b as number) < 0 || (b as number) >= dims.n) {
    throw invalidParameter('batchIndex', `an integer from 0 to ${dims.n - 1} (the batch holds ${dims.n})`, batchIndex);
  }
  return b as number;
}

/** One channel's H x W plane (a view, not a copy). */
export function channelPlane(data: Float32Array, dims: CaptureDims, batchIndex: number, channel: number): Float32Array {
  const plane = dims.h * dims.w;
  const start = (batchIndex * dims.c + channel) * plane;
  return data.subarray(start, start + plane);
}

export interface ChannelStats {
  channel: number;
  /** Smallest and largest value, NaNs skipped; NaN when the map holds no number. */
  min: number;
  max: number;
  /** Mean over the map (NaN if any value is NaN). */
  mean: number;
  /** Row and column of the (first) maximum. */
  maxAt: { y: number; x: number };
  /** Sum of the map's values (NaN if any is NaN): the layer's mean is the channels' sum over all values. */
  sum: number;
  /** How many of the map's values are exactly 0. */
  zeros: number;
}

/**
 * min / max / mean / position of the max / sum / count of zeros of one plane, in one pass; NaNs are
 * skipped for min and max. The per-plane code of every channel statistic featscope computes in JS.
 */
export function planeStats(plane: Float32Array, width: number, channel: number): ChannelStats {
  let min = Infinity;
  let max = -Infinity;
  let arg = 0;
  let sum = 0;
  let zeros = 0;
  for (let i = 0; i < plane.length; i++) {
    const v = plane[i];
    sum += v;
    if (v > max) {
      max = v;
      arg = i;
    }
    if (v < min) min = v;
    if (v === 0) zeros++;
  }
  if (max === -Infinity && min === Infinity) {
    // all NaN
    min = NaN;
    max = NaN;
  }
  return {
    channel,
    min,
    max,
    mean: sum / plane.length,
    maxAt: { y: Math.floor(arg / width), x: arg % width },
    sum,
    zeros,
  };
}

/**
 * Statistics of the channels of one image of the batch: every channel, or the capture positions in
 * `channels` (in that order). `channel` is the position in the capture. The one channel-statistics
 * function: grids, ranking, layerStatistics (render, visualize, the report) use it.
 */
export function channelStats(capture: FeatureMaps, batchIndex = 0, channels?: readonly number[]): ChannelStats[] {
  const dims = checkCapture(capture);
  const b = checkBatchIndex(batchIndex, dims);
  if (channels !== undefined) {
    if (!Array.isArray(channels) || !channels.every((c) => Number.isInteger(c) && c >= 0 && c < dims.c))
      throw invalidParameter('channels', `an array of channel positions from 0 to ${dims.c - 1}`, channels);
  }
  const list = channels ?? Array.from({ length: dims.c }, (_, ch) => ch);
  return list.map((ch) => planeStats(channelPlane(capture.data, dims, b, ch), dims.w, ch));
}
