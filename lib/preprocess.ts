/**
 * Image -> normalised NCHW float tensor, equal to torchvision's PIL pipeline:
 *
 *   resize: 'squash'  Resize((size, size))                          -> ToTensor -> Normalize
 *   resize: 'crop'    Resize(round(size * 256 / 224)) + CenterCrop(size) -> ToTensor -> Normalize
 *
 * sharp decodes (EXIF orientation applied, first frame, embedded ICC profile ignored as PIL does,
 * everything converted to 8-bit RGB, alpha dropped without compositing as PIL's convert('RGB')
 * does). The resize itself is a port of Pillow's bilinear resampler (`bilinearResize` below), not
 * sharp's: libvips' linear kernel matches PIL when shrinking but not when enlarging (p99 error
 * above 1.0 on a 200x200 input), and the port is bit-exact in both directions. See
 * docs/preprocessing.md for the measurements.
 */
import { IMAGENET_MEAN, IMAGENET_STD, inputNormalisation, type ModelMetadata } from './metadata';
import { types } from 'util';
import { promises as fs } from 'fs';
import * as path from 'path';
import sharp, { type Sharp, type SharpOptions } from 'sharp';
import { FeatscopeError, checkKnownKeys, describe, invalidParameter } from './errors';

/** One image: a file path, an encoded image in a Buffer, or a sharp instance (used as configured). */
export type ImageSource = string | Buffer | Uint8Array | Sharp;

export interface PreprocessOptions {
  /** 'squash' (default, as in the blog): Resize((size, size)). 'crop': Resize(256) + CenterCrop(224). */
  resize?: 'squash' | 'crop';
  /** Output height and width. Default 224. */
  size?: number;
  /** Per-channel mean of RGB in [0, 1]. Default ImageNet's [0.485, 0.456, 0.406]. */
  mean?: readonly number[];
  /** Per-channel standard deviation. Default ImageNet's [0.229, 0.224, 0.225]. */
  std?: readonly number[];
  /** Refuse inputs with more pixels than this (IMAGE_TOO_LARGE). Default 100,000,000. */
  maxInputPixels?: number;
  /**
   * A loaded model (or anything with its `metadata`): size, mean and std default to what the
   * model file stores (scripts/export-model.py writes them); explicit options still win.
   */
  model?: { metadata: ModelMetadata };
  /**
   * 'float32' (default): the normalised tensor. 'uint8': the resized pixels (NCHW bytes) plus the
   * mean and std; the model normalises them on its device ((x / 255 - mean) / std, equal to the
   * float path within 1e-6), so 4x fewer bytes are copied into it.
   */
  output?: 'float32' | 'uint8';
}

/** The resized (and cropped) 8-bit RGB image that went into the tensor, for overlays. */
export interface PreprocessedImage {
  /** height x width x 3, row-major, uint8. */
  rgb: Buffer;
  width: number;
  height: number;
  /** The file path, or a description such as "input[1] (a Buffer of 5120 bytes)". */
  source: string;
}

export interface PreprocessResult {
  data: Float32Array;
  shape: [number, number, number, number];
  images: PreprocessedImage[];
}

/** preprocess(..., { output: 'uint8' }): pixels, normalised by the model (forward and capture). */
export interface PixelPreprocessResult {
  /** NCHW bytes, 0..255. */
  data: Uint8Array;
  shape: [number, number, number, number];
  /** Per-channel mean and std the model applies: (x / 255 - mean) / std. */
  mean: number[];
  std: number[];
  images: PreprocessedImage[];
}

export { IMAGENET_MEAN, IMAGENET_STD };
export const DEFAULT_MAX_INPUT_PIXELS = 100_000_000;

const KNOWN_OPTIONS = ['resize', 'size', 'mean', 'std', 'maxInputPixels', 'model', 'output'] as const;

/**
 * Preprocess one image or a batch (array) into one normalised NCHW Float32Array.
 * Errors are FeatscopeErrors: INVALID_ARGUMENT / UNKNOWN_OPTION for bad arguments,
 * IMAGE_NOT_FOUND, IMAGE_DECODE (empty, corrupt, unsupported or not an image) and IMAGE_TOO_LARGE.
 */
export async function preprocess(
  input: ImageSource | readonly ImageSource[],
  options: PreprocessOptions & { output: 'uint8' },
): Promise<PixelPreprocessResult>;
export async function preprocess(
  input: ImageSource | readonly ImageSource[],
  options?: PreprocessOptions & { output?: 'float32' },
): Promise<PreprocessResult>;
export async function preprocess(
  input: ImageSource | readonly ImageSource[],
  options?: PreprocessOptions,
): Promise<PreprocessResult | PixelPreprocessResult>;
export async function preprocess(
  input: ImageSource | readonly ImageSource[],
  options: PreprocessOptions = {},
): Promise<PreprocessResult | PixelPreprocessResult> {
  const opts = validateOptions(options);
  const items = Array.isArray(input) ? (input as readonly ImageSource[]) : [input as ImageSource];
  if (items.length === 0) {
    throw invalidParameter(
      'preprocess input',
      'an image (path, Buffer or sharp instance) or a non-empty array of them',
      input,
    );
  }
  items.forEach((item, i) => checkSource(item, Array.isArray(input) ? `input[${i}]` : 'input'));

  const { size, mean, std } = opts;
  const plane = size * size;
  const pixels = opts.output === 'uint8' ? new Uint8Array(items.length * 3 * plane) : null;
  const data = pixels ? new Float32Array(0) : new Float32Array(items.length * 3 * plane);
  const images: PreprocessedImage[] = [];
  // Float32 arithmetic in torchvision's order: ToTensor divides by 255, Normalize subtracts and divides.
  // The result depends only on the byte and the channel: a 3 x 256 table.
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c]);
    const sd = Math.fround(std[c]);
    for (let v = 0; v < 256; v++) table[c * 256 + v] = Math.fround(Math.fround(Math.fround(v / 255) - m) / sd);
  }
  // Decoded a few at a time (sharp works off the event loop); the first failure, in input order, is thrown.
  const decodedAll = await mapLimited(items, PREPROCESS_CONCURRENCY, async (item, n) => {
    try {
      return { image: await decodeRGB(item, describeSource(item, Array.isArray(input) ? n : -1), opts.maxInputPixels) };
    } catch (error) {
      return { error };
    }
  });
  for (let n = 0; n < items.length; n++) {
    const label = describeSource(items[n], Array.isArray(input) ? n : -1);
    const { image: decoded, error } = decodedAll[n];
    if (!decoded) throw error;
    const rgb = resizeAndCrop(decoded, opts.resize, size);
    const base = n * 3 * plane;
    for (let c = 0; c < 3; c++) {
      const out = base + c * plane;
      const t = c * 256;
      if (pixels) for (let i = 0; i < plane; i++) pixels[out + i] = rgb[i * 3 + c];
      else for (let i = 0; i < plane; i++) data[out + i] = table[t + rgb[i * 3 + c]];
    }
    images.push({ rgb, width: size, height: size, source: label });
  }
  if (pixels) return { data: pixels, shape: [items.length, 3, size, size], mean: [...mean], std: [...std], images };
  return { data, shape: [items.length, 3, size, size], images };
}

/** Images decoded at once: enough to keep sharp's threads busy, few enough to bound memory. */
const PREPROCESS_CONCURRENCY = 4;

/** `fn` over `items` with at most `limit` calls in flight; results in input order. */
async function mapLimited<T, U>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<U>,
): Promise<U[]> {
  const out = new Array<U>(items.length);
  let nextIndex = 0;
  const worker = async () => {
    while (nextIndex < items.length) {
      const i = nextIndex++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Preprocess each image on its own (a few at a time): one result or one error per item, in
 * input order, so that a bad file fails alone and the rest can still run as a batch.
 */
export async function preprocessEach(
  items: readonly ImageSource[],
  options: PreprocessOptions = {},
): Promise<Array<PreprocessResult | { error: unknown }>> {
  return mapLimited(items, PREPROCESS_CONCURRENCY, async (item) => {
    try {
      // Float32 results (its callers batch them); `output` is not an option here.
      return await preprocess(item, { ...options, output: 'float32' });
    } catch (error) {
      return { error };
    }
  });
}

interface ValidOptions {
  resize: 'squash' | 'crop';
  size: number;
  mean: number[];
  std: number[];
  maxInputPixels: number;
  output: 'float32' | 'uint8';
}

function validateOptions(options: PreprocessOptions): ValidOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidParameter('preprocess options', 'an object', options);
  }
  checkKnownKeys('preprocess', options, KNOWN_OPTIONS);
  const resize = options.resize ?? 'squash';
  if (resize !== 'squash' && resize !== 'crop') {
    throw invalidParameter(
      'resize',
      "one of 'squash' (Resize((224, 224))) or 'crop' (Resize(256) + CenterCrop(224))",
      resize,
    );
  }
  if (
    options.model !== undefined &&
    (options.model === null || typeof options.model !== 'object' || typeof options.model.metadata !== 'object')
  ) {
    throw invalidParameter('model', 'a Model from loadModel() (an object with metadata)', options.model);
  }
  const fromModel = options.model ? inputNormalisation(options.model.metadata) : undefined;
  const size = options.size ?? fromModel?.size ?? 224;
  if (!Number.isInteger(size) || size < 1 || size > 8192) {
    throw invalidParameter('size', 'an integer between 1 and 8192', size);
  }
  const mean = checkTriple('mean', options.mean ?? fromModel?.mean ?? IMAGENET_MEAN, false);
  const std = checkTriple('std', options.std ?? fromModel?.std ?? IMAGENET_STD, true);
  const maxInputPixels = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  if (!Number.isInteger(maxInputPixels) || maxInputPixels < 1) {
    throw invalidParameter('maxInputPixels', 'a positive integer', maxInputPixels);
  }
  const output = options.output ?? 'float32';
  if (output !== 'float32' && output !== 'uint8') throw invalidParameter('output', "'float32' or 'uint8'", output);
  return { resize, size, mean, std, maxInputPixels, output };
}

function checkTriple(option: string, value: unknown, positive: boolean): number[] {
  const ok =
    (Array.isArray(value) || types.isFloat32Array(value) || types.isFloat64Array(value)) &&
    value.length === 3 &&
    Array.from(value as ArrayLike<number>).every(
      (v) => typeof v === 'number' && Number.isFinite(v) && (!positive || v > 0),
    );
  if (!ok) {
    throw invalidParameter(
      option,
      `an array of 3 finite${positive ? ' positive' : ''} numbers (one per RGB channel)`,
      value,
    );
  }
  return Array.from(value as ArrayLike<number>);
}

function isSharp(value: unknown): value is Sharp {
  return value instanceof sharp;
}

function checkSource(item: unknown, where: string): void {
  if (typeof item === 'string') {
    if (item.length === 0) throw invalidParameter(where, 'a non-empty file path', item);
    return;
  }
  if (Buffer.isBuffer(item) || item instanceof Uint8Array || isSharp(item)) return;
  throw invalidParameter(where, 'an image file path, a Buffer with an encoded image, or a sharp instance', item);
}

function describeSource(item: ImageSource, index: number): string {
  if (typeof item === 'string') return item;
  const prefix = index >= 0 ? `input[${index}]` : 'input';
  return `${prefix} (${Buffer.isBuffer(item) ? `a Buffer of ${item.length} bytes` : describe(item)})`;
}

interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
}

async function decodeRGB(item: ImageSource, label: string, maxInputPixels: number): Promise<RawImage> {
  let pipeline: Sharp;
  const inputOptions: SharpOptions = {
    ignoreIcc: true, // PIL does not apply embedded profiles; neither does torchvision.
    autoOrient: true,
    limitInputPixels: maxInputPixels,
    pages: 1,
    page: 0,
  };
  if (typeof item === 'string') {
    let stat;
    try {
      stat = await fs.stat(item);
    } catch (err) {
      throw new FeatscopeError(
        'IMAGE_NOT_FOUND',
        `Image file not found: ${JSON.stringify(item)} (resolved to ${path.resolve(item)}); check the path and the working directory`,
        { cause: err },
      );
    }
    if (!stat.isFile()) {
      throw new FeatscopeError(
        'IMAGE_NOT_FOUND',
        `Expected an image file but ${JSON.stringify(item)} is not a regular file (a directory?)`,
      );
    }
    if (stat.size === 0) {
      throw new FeatscopeError(
        'IMAGE_DECODE',
        `Cannot decode image ${JSON.stringify(item)}: the file is empty (0 bytes)`,
      );
    }
    pipeline = sharp(item, inputOptions);
  } else if (isSharp(item)) {
    // Used as configured (its own input options and operations apply); only orientation is added.
    pipeline = item.clone().autoOrient();
  } else {
    if (item.length === 0) {
      throw new FeatscopeError('IMAGE_DECODE', `Cannot decode image ${label}: the buffer is empty`);
    }
    pipeline = sharp(item, inputOptions);
  }

  const name = typeof item === 'string' ? JSON.stringify(item) : label;
  try {
    const meta = await pipeline.metadata();
    const height = meta.pageHeight ?? meta.height ?? 0;
    const width = meta.width ?? 0;
    if (width * height > maxInputPixels) throw tooLarge(name, width, height, maxInputPixels);
    // removeAlpha drops alpha without compositing, as PIL's convert('RGB') does; grey, palette,
    // CMYK and 16-bit inputs all come out as 8-bit sRGB.
    const { data, info } = await pipeline
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) {
      throw new FeatscopeError(
        'IMAGE_DECODE',
        `Cannot decode image ${name}: got ${info.channels} channels after conversion to RGB`,
      );
    }
    if (info.width * info.height > maxInputPixels) throw tooLarge(name, info.width, info.height, maxInputPixels);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    if (err instanceof FeatscopeError) throw err;
    const reason = sharpReason(err);
    if (/pixel limit/i.test(reason) && !isSharp(item)) {
      // sharp refused at the header; read the header again without the limit to name the size.
      const meta = await sharp(item, { limitInputPixels: false })
        .metadata()
        .catch(() => undefined);
      throw tooLarge(name, meta?.width ?? 0, meta?.pageHeight ?? meta?.height ?? 0, maxInputPixels, err);
    }
    throw new FeatscopeError(
      'IMAGE_DECODE',
      `Cannot decode image ${name}: ${reason}. Expected a JPEG, PNG, WebP, GIF, TIFF or AVIF image that is not truncated or corrupt`,
      { cause: err },
    );
  }
}

/** sharp's message, with libvips' repeated warning lines folded into one line. */
function sharpReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const lines = [
    ...new Set(
      text
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean),
    ),
  ];
  return lines.slice(0, 3).join('; ').replace(/\.$/, '');
}

function tooLarge(name: string, width: number, height: number, limit: number, cause?: unknown): FeatscopeError {
  const dims = width && height ? `${width}x${height} = ${width * height} pixels` : 'more pixels than allowed';
  return new FeatscopeError(
    'IMAGE_TOO_LARGE',
    `Image ${name} has ${dims}, above the limit of ${limit}; pass a larger maxInputPixels if you trust the input, or shrink it first`,
    cause === undefined ? undefined : { cause },
  );
}

/** Resize (and crop) as torchvision does, returning size x size x 3 uint8 RGB. */
function resizeAndCrop(image: RawImage, mode: 'squash' | 'crop', size: number): Buffer {
  if (mode === 'squash') {
    return Buffer.from(bilinearResize(image.data, image.width, image.height, 3, size, size).buffer);
  }
  // Resize(s): shorter side to s, longer side truncated: int(s * long / short).
  const s = Math.round((size * 256) / 224);
  const { width: w, height: h } = image;
  const [outW, outH] = w <= h ? [s, Math.trunc((s * h) / w)] : [Math.trunc((s * w) / h), s];
  const resized = bilinearResize(image.data, w, h, 3, outW, outH);
  // CenterCrop: offsets are int(round((dim - crop) / 2.0)) with Python's half-to-even round.
  const top = roundHalfEven((outH - size) / 2);
  const left = roundHalfEven((outW - size) / 2);
  const out = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++) {
    const from = ((top + y) * outW + left) * 3;
    out.set(resized.subarray(from, from + size * 3), y * size * 3);
  }
  return out;
}

/** Python 3's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// Pillow's fixed-point precision for 8-bit resampling (libImaging/Resample.c).
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

interface Coefficients {
  ksize: number;
  /** Per output pixel: first input index and number of taps. */
  bounds: Int32Array;
  /** Per output pixel: ksize fixed-point weights. */
  weights: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter. */
function bilinearCoefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      k[x] = t < 1 ? 1 - t : 0;
      total += k[x];
    }
    for (let x = 0; x < xmax; x++) {
      const w = total !== 0 ? k[x] / total : k[x];
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

// Accumulators stay int32 (weights are >= 0 and sum to about ONE, so 255 * ONE + ONE / 2 < 2^31),
// which keeps V8 on integer arithmetic.
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v > 255 ? 255 : v < 0 ? 0 : v;
}

/**
 * Bilinear resize of interleaved uint8 pixels, bit-exact with Pillow's Image.resize(BILINEAR)
 * (antialiased when shrinking): a horizontal pass, then a vertical one, each rounding to 8 bits.
 */
export function bilinearResize(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  let current = src;
  let curWidth = width;
  const vertical = outHeight !== height ? bilinearCoefficients(height, outHeight) : null;
  // Like Pillow, the horizontal pass only computes the rows the vertical pass will read.
  let firstRow = 0;
  let rows = height;
  if (vertical) {
    firstRow = vertical.bounds[0];
    rows = vertical.bounds[(outHeight - 1) * 2] + vertical.bounds[(outHeight - 1) * 2 + 1] - firstRow;
  }
  if (outWidth !== width) {
    const { ksize, bounds, weights } = bilinearCoefficients(width, outWidth);
    const out = new Uint8Array(outWidth * rows * channels);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + firstRow) * width * channels;
      const outRow = y * outWidth * channels;
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = bounds[xx * 2];
        const taps = bounds[xx * 2 + 1];
        const kOff = xx * ksize;
        if (channels === 3) {
          let r = ONE / 2;
          let g = r;
          let b = r;
          for (let x = 0, j = inRow + xmin * 3; x < taps; x++, j += 3) {
            const k = weights[kOff + x];
            r = (r + src[j] * k) | 0;
            g = (g + src[j + 1] * k) | 0;
            b = (b + src[j + 2] * k) | 0;
          }
          const o = outRow + xx * 3;
          out[o] = clip8(r);
          out[o + 1] = clip8(g);
          out[o + 2] = clip8(b);
          continue;
        }
        for (let c = 0; c < channels; c++) {
          let acc = ONE / 2;
          for (let x = 0; x < taps; x++) acc = (acc + src[inRow + (x + xmin) * channels + c] * weights[kOff + x]) | 0;
          out[outRow + xx * channels + c] = clip8(acc);
        }
      }
    }
    current = out;
    curWidth = outWidth;
  } else {
    firstRow = 0;
  }
  if (!vertical) return current === src ? new Uint8Array(src) : current;
  const { ksize, bounds, weights } = vertical;
  const out = new Uint8Array(outWidth * outHeight * channels);
  const stride = curWidth * channels;
  // Row by row (tap-major), so that every pass reads memory in order.
  const acc = new Int32Array(stride);
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2] - firstRow;
    const taps = bounds[yy * 2 + 1];
    const kOff = yy * ksize;
    const outRow = yy * stride;
    acc.fill(ONE / 2);
    for (let y = 0; y < taps; y++) {
      const k = weights[kOff + y];
      const inRow = (y + ymin) * stride;
      for (let i = 0; i < stride; i++) acc[i] = (acc[i] + current[inRow + i] * k) | 0;
    }
    for (let i = 0; i < stride; i++) out[outRow + i] = clip8(acc[i]);
  }
  return out;
}
