/**
 * Heatmaps over photos: a 2-D map (one channel, the channel mean, later Grad-CAM) upsampled
 * bilinearly to the image, colour-mapped and alpha-blended; and a per-layer summary image.
 */
import { types } from 'util';
import sharp from 'sharp';
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { PreprocessedImage } from '../preprocess';
import { type RgbCanvas, encodePng } from './canvas';
import { type ColormapName, applyColormap, checkColormap } from './colormaps';
import { type FeatureMaps, checkBatchIndex, checkCapture } from './capture';
import { type UpsampleMode, resampleMap } from './resample';

/** A 2-D float map, row-major. */
export interface Map2D {
  data: Float32Array;
  width: number;
  height: number;
}

/** The photo to draw on: preprocess()'s image (or any { rgb, width, height }), a path, or an encoded Buffer. */
export type OverlayImage = Pick<PreprocessedImage, 'rgb' | 'width' | 'height'> | string | Buffer;

export interface OverlayOptions {
  /** default 'turbo'. */
  colormap?: ColormapName;
  /** Weight of the heatmap, 0 (photo only) to 1 (heatmap only); default 0.5. */
  alpha?: number;
  /** Values drawn with the first and last colours; default the map's own min and max. */
  range?: readonly [number, number];
}

export interface RenderedImage {
  png: Buffer;
  width: number;
  height: number;
}

export interface LayerSummaryOptions {
  batchIndex?: number;
  /** default 'viridis'. */
  colormap?: ColormapName;
  /** Longer side of the output in pixels; default 224 (the usual input size). */
  size?: number;
  /** default 'bilinear'. */
  upsample?: UpsampleMode;
}

export interface LayerSummary extends RenderedImage {
  /** Range of the mean map (the values of the first and last colours). */
  min: number;
  max: number;
}

export function checkMap(map: unknown, where = 'map'): Map2D {
  const m = map as Map2D | null;
  if (
    m === null ||
    typeof m !== 'object' ||
    !types.isFloat32Array(m.data) ||
    !Number.isInteger(m.width) ||
    !Number.isInteger(m.height) ||
    m.width < 1 ||
    m.height < 1
  ) {
    throw invalidParameter(where, 'a map { data: Float32Array, width, height } with positive integer sizes', map);
  }
  if (m.data.length !== m.width * m.height) {
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `Expected ${m.width * m.height} values for a ${m.width}x${m.height} ${where} but its data holds ${m.data.length}`,
    );
  }
  return m;
}

async function loadRGB(image: OverlayImage): Promise<{ rgb: Uint8Array; width: number; height: number }> {
  if (typeof image === 'string' || Buffer.isBuffer(image)) {
    const name = typeof image === 'string' ? JSON.stringify(image) : `a Buffer of ${image.length} bytes`;
    try {
      const { data, info } = await sharp(image, { autoOrient: true, ignoreIcc: true })
        .removeAlpha()
        .toColourspace('srgb')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      return { rgb: data, width: info.width, height: info.height };
    } catch (err) {
      const reason = err instanceof Error ? err.message.trim() : String(err);
      const missing = typeof image === 'string' && /missing|no such file/i.test(reason);
      throw new FeatscopeError(
        missing ? 'IMAGE_NOT_FOUND' : 'IMAGE_DECODE',
        `Cannot read the overlay image ${name}: ${reason}`,
        { cause: err },
      );
    }
  }
  const img = image as { rgb?: unknown; width?: unknown; height?: unknown } | null;
  if (
    img === null ||
    typeof img !== 'object' ||
    !(img.rgb instanceof Uint8Array) ||
    !Number.isInteger(img.width) ||
    !Number.isInteger(img.height) ||
    img.rgb.length !== (img.width as number) * (img.height as number) * 3
  ) {
    throw invalidParameter(
      'image',
      "preprocess()'s image { rgb, width, height } (rgb: width x height x 3 bytes), a path or a Buffer",
      image,
    );
  }
  return { rgb: img.rgb, width: img.width as number, height: img.height as number };
}

export function finiteRange(data: Float32Array): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (const v of data) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min <= max ? [min, max] : [0, 0];
}

/** Draw `map` over `image`: bilinear upsampling to the image size, colour map, alpha blend, PNG. */
export async function renderOverlay(
  image: OverlayImage,
  map: Map2D,
  options: OverlayOptions = {},
): Promise<RenderedImage> {
  const canvas = await drawOverlay(image, map, options);
  return { png: await encodePng(canvas), width: canvas.width, height: canvas.height };
}

/** renderOverlay before PNG encoding. */
export async function drawOverlay(image: OverlayImage, map: Map2D, options: OverlayOptions = {}): Promise<RgbCanvas> {
  if (options === null || typeof options !== 'object')
    throw invalidParameter('renderOverlay options', 'an object', options);
  checkKnownKeys('renderOverlay', options, ['colormap', 'alpha', 'range']);
  checkMap(map);
  const colormap = checkColormap(options.colormap ?? 'turbo');
  const alpha = options.alpha ?? 0.5;
  if (typeof alpha !== 'number' || !(alpha >= 0 && alpha <= 1))
    throw invalidParameter('alpha', 'a number from 0 to 1', alpha);
  let range: [number, number];
  if (options.range === undefined) {
    range = finiteRange(map.data);
  } else {
    const r = options.range;
    if (!Array.isArray(r) || r.length !== 2 || !r.every(Number.isFinite) || !(r[0] <= r[1])) {
      throw invalidParameter('range', 'two finite numbers [min, max] with min <= max', r);
    }
    range = [r[0], r[1]];
  }
  const photo = await loadRGB(image);
  const up = resampleMap(map.data, map.width, map.height, photo.width, photo.height, 'bilinear');
  const heat = applyColormap(up, range[0], range[1], colormap);
  const out = Buffer.alloc(photo.width * photo.height * 3);
  for (let i = 0; i < out.length; i++) out[i] = Math.round((1 - alpha) * photo.rgb[i] + alpha * heat[i]);
  return { data: out, width: photo.width, height: photo.height };
}

/** Mean over channels of one image of a capture, as a 2-D map (H x W). */
export function channelMean(capture: FeatureMaps, batchIndex = 0): Map2D {
  const dims = checkCapture(capture);
  const b = checkBatchIndex(batchIndex, dims);
  const plane = dims.h * dims.w;
  const sum = new Float64Array(plane);
  const base = b * dims.c * plane;
  for (let ch = 0; ch < dims.c; ch++) {
    const off = base + ch * plane;
    for (let i = 0; i < plane; i++) sum[i] += capture.data[off + i];
  }
  const data = new Float32Array(plane);
  for (let i = 0; i < plane; i++) data[i] = sum[i] / dims.c;
  return { data, width: dims.w, height: dims.h };
}

/** The layer's mean activation over channels, colour-mapped and upsampled: a picture for reports. */
export async function renderLayerSummary(
  capture: FeatureMaps,
  options: LayerSummaryOptions = {},
): Promise<LayerSummary> {
  if (options === null || typeof options !== 'object')
    throw invalidParameter('renderLayerSummary options', 'an object', options);
  checkKnownKeys('renderLayerSummary', options, ['batchIndex', 'colormap', 'size', 'upsample']);
  const dims = checkCapture(capture);
  const colormap = checkColormap(options.colormap ?? 'viridis');
  const size = options.size ?? 224;
  if (!Number.isInteger(size) || size < 1 || size > 8192)
    throw invalidParameter('size', 'an integer from 1 to 8192', size);
  const upsample = options.upsample ?? 'bilinear';
  if (upsample !== 'nearest' && upsample !== 'bilinear')
    throw invalidParameter('upsample', "'nearest' or 'bilinear'", upsample);
  const mean = channelMean(capture, checkBatchIndex(options.batchIndex, dims));
  const width = dims.w >= dims.h ? size : Math.max(1, Math.round((size * dims.w) / dims.h));
  const height = dims.h >= dims.w ? size : Math.max(1, Math.round((size * dims.h) / dims.w));
  const [min, max] = finiteRange(mean.data);
  const rgb = applyColormap(
    resampleMap(mean.data, mean.width, mean.height, width, height, upsample),
    min,
    max,
    colormap,
  );
  const png = await encodePng({ data: rgb, width, height });
  return { png, width, height, min, max };
}
