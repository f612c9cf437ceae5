/**
 * The viewer's state: its models, its images (given and uploaded), and what it has computed for
 * them, in one byte-bounded cache. A layer's maps come from a capture that stops at that layer
 * (model.capture: the rest of the network does not run), once per (model, image, layer); the
 * logits from one whole forward per (model, image); compare mode's every-layer forward gives
 * both. Image decodes run at most two at a time.
 */
import * as path from 'path';
import { type Prediction, className, topPredictions } from '../analysis/common';
import { maskClassShares } from '../analysis/predictions';
import {
  type OutputValue,
  argmaxMask,
  detectionOrder,
  detectionsOf,
  isTensorValue,
  segmentationLogitsOf,
} from '../structured';
import { type LayerInfo, type Model, loadModel } from '../model';
import { DEFAULT_MAX_INPUT_PIXELS, type PreprocessResult, preprocess } from '../preprocess';
import type { Capture } from '../types';
import { channelStats } from '../render/capture';
import { BoundedCache } from './cache';
import { ViewerError, bad } from './codes';

export interface ViewerImage {
  id: string;
  name: string;
  source: string | Buffer;
  uploaded: boolean;
}

export type Logits = { shape: number[]; data: Float32Array } | null;

/** Per channel of image 0 of a layer: min, max, mean, and the layer's min and max. */
export interface ChannelStatistics {
  min: Float32Array;
  max: Float32Array;
  mean: Float32Array;
  layerMin: number;
  layerMax: number;
}

export interface LayerMaps extends ChannelStatistics {
  capture: Capture;
}

/** Uploads are kept in memory for the session: at most this many, and this many bytes in all. */
export const MAX_UPLOADS = 200;
export const MAX_UPLOADED_BYTES = 512 * 1024 * 1024;

/** At most this many image decodes at a time (uploads, inputs, thumbnails): bounds their memory. */
const MAX_DECODES = 2;

/** A counting semaphore: `run` waits for one of `limit` slots. */
export class Slots {
  private free: number;
  private waiting: (() => void)[] = [];
  peak = 0;
  constructor(private readonly limit: number) {
    this.free = limit;
  }
  async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.free === 0) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.free--;
    this.peak = Math.max(this.peak, this.limit - this.free);
    try {
      return await f();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/** Per-channel statistics of image 0 of an [N, C, H, W] capture: the library's channelStats, as render and stats compute them. */
export function channelStatistics(capture: Capture): ChannelStatistics {
  const stats = channelStats(capture, 0);
  const c = stats.length;
  const min = new Float32Array(c);
  const max = new Float32Array(c);
  const mean = new Float32Array(c);
  let layerMin = Infinity;
  let layerMax = -Infinity;
  for (const s of stats) {
    min[s.channel] = s.min;
    max[s.channel] = s.max;
    mean[s.channel] = s.mean;
    if (s.min < layerMin) layerMin = s.min;
    if (s.max > layerMax) layerMax = s.max;
  }
  return { max, mean, min, layerMin, layerMax };
}

export class ViewerState {
  readonly images = new Map<string, ViewerImage>();
  readonly cache: BoundedCache;
  readonly decodes = new Slots(MAX_DECODES);
  readonly maxInputPixels: number;
  /** Forwards run so far (captures, whole forwards, Grad-CAM and saliency passes are counted where the viewer starts them). */
  forwardCount = 0;
  private uploads = 0;
  private uploadedBytes = 0;
  private readonly layerInfo = new Map<number, Promise<LayerInfo[]>>();

  private constructor(
    readonly models: Model[],
    readonly modelFiles: string[],
    imageFiles: string[],
    options: { maxInputPixels?: number; cacheBytes?: number },
  ) {
    this.maxInputPixels = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
    this.cache = new BoundedCache(options.cacheBytes ?? 512 * 1024 * 1024);
    imageFiles.forEach((file, i) =>
      this.images.set(`i${i}`, { id: `i${i}`, name: path.basename(file), source: file, uploaded: false }),
    );
  }

  /** Loads the models (all or none: a failure disposes those already loaded). */
  static async open(
    modelFiles: string[],
    imageFiles: string[],
    options: { device?: 'auto' | 'cpu' | 'cuda' | `cuda:${number}`; maxInputPixels?: number; cacheBytes?: number },
  ): Promise<ViewerState> {
    const models: Model[] = [];
    try {
      for (const m of modelFiles) models.push(await loadModel(m, { device: options.device ?? 'auto' }));
    } catch (err) {
      for (const m of models) m.dispose();
      throw err;
    }
    return new ViewerState(models, modelFiles, imageFiles, options);
  }

  dispose(): void {
    this.cache.clear();
    for (const m of this.models) m.dispose();
  }

  image(id: string): ViewerImage {
    const img = this.images.get(id);
    if (!img)
      throw bad(
        'IMAGE_NOT_FOUND',
        `no image with id ${JSON.stringify(id.slice(0, 40))}; the session's images are listed by /api/session`,
      );
    return img;
  }

  /** Keeps an upload once preprocess (the CLI's decoding limits) accepts it. */
  async addUpload(name: string, body: Buffer): Promise<ViewerImage> {
    if (body.length === 0) throw bad('IMAGE_DECODE', 'the upload is empty; send the image file as the request body');
    await this.decodes.run(() => preprocess(body, { model: this.models[0], maxInputPixels: this.maxInputPixels }));
    if (this.uploads >= MAX_UPLOADS || this.uploadedBytes + body.length > MAX_UPLOADED_BYTES) {
      throw new ViewerError(
        'UPLOAD_LIMIT',
        `this session holds ${this.uploads} uploads (${this.uploadedBytes} bytes), its limit is ${MAX_UPLOADS} uploads or ${MAX_UPLOADED_BYTES} bytes; restart \`featscope view\` with the images as arguments instead`,
      );
    }
    this.uploadedBytes += body.length;
    const id = `u${this.uploads++}`;
    const img = { id, name, source: body, uploaded: true };
    this.images.set(id, img);
    return img;
  }

  layers(index: number): Promise<LayerInfo[]> {
    let p = this.layerInfo.get(index);
    if (!p) {
      const size = this.models[index].metadata.input?.size?.[0] ?? 224;
      p = this.models[index].layers({ inputSize: size });
      p.catch(() => this.layerInfo.delete(index));
      this.layerInfo.set(index, p);
    }
    return p;
  }

  /** The model's input for an image (decoded within the session's pixel limit), cached. */
  input(index: number, img: Pick<ViewerImage, 'id' | 'source'>): Promise<PreprocessResult> {
    return this.cache.get(`input|${index}|${img.id}`, async () => {
      const x = await this.decodes.run(() =>
        preprocess(img.source, { model: this.models[index], maxInputPixels: this.maxInputPixels }),
      );
      return { value: x, bytes: x.data.byteLength + x.images[0].rgb.length };
    });
  }

  /** A layer's maps with their statistics (channelStats): a capture that stops at the layer, once per (model, image, layer). */
  layerMaps(index: number, img: ViewerImage, layer: string): Promise<LayerMaps> {
    return this.cache.get(`layer|${index}|${img.id}|${layer}`, async () => {
      const x = await this.input(index, img);
      this.forwardCount++;
      const captures = await this.models[index].capture(x, [layer]);
      if (captures.length > 1)
        throw bad(
          'INVALID_ARGUMENT',
          `layer ${layer} returns ${captures.length} tensors (${captures.map((c) => c.name).join(', ')}); pick one of its parts in the layer tree`,
        );
      const [capture] = captures;
      if (capture.shape.length !== 4) {
        throw bad(
          'NOT_FEATURE_MAPS',
          `layer ${layer} gives [${capture.shape.join(', ')}], not [N, C, H, W] feature maps; choose a layer with spatial output`,
        );
      }
      const value = { capture, ...channelStatistics(capture) };
      return { value, bytes: capture.data.byteLength + capture.shape[1] * 12 };
    });
  }

  /** The model's output, from one whole forward per (model, image) (or compare mode's forward). */
  async logits(index: number, img: ViewerImage): Promise<Logits> {
    return (await this.outputs(index, img)).output;
  }

  /** One whole forward per (model, image): the [N, classes] logits (null if none) and the structured value. */
  private outputs(index: number, img: ViewerImage): Promise<{ output: Logits; value: OutputValue }> {
    return this.cache.get(`output|${index}|${img.id}`, async () => {
      const x = await this.input(index, img);
      this.forwardCount++;
      const { output, value } = await this.models[index].forward(x);
      return { value: { output, value }, bytes: (output?.data.byteLength ?? 0) + tensorBytes(value) };
    });
  }

  /** One forward per (model, image) over every feature-map layer, for compare mode; its logits are kept too. */
  allLayers(index: number, img: ViewerImage): Promise<Capture[]> {
    return this.cache.get(`all|${index}|${img.id}`, async () => {
      const info = await this.layers(index);
      const names = info
        .filter((l) => l.calls > 0 && !l.inLoop && (l.mapShapes ?? l.outputShapes)?.[0]?.length === 4)
        .map((l) => l.name);
      const x = await this.input(index, img);
      this.forwardCount++;
      const r = await this.models[index].forward(x, { layers: names });
      const captures = names.map((n) => r.get(n));
      void this.cache.get(`output|${index}|${img.id}`, async () => ({
        value: { output: r.output, value: r.value },
        bytes: (r.output?.data.byteLength ?? 0) + tensorBytes(r.value),
      }));
      const bytes = captures.reduce((s, c) => s + c.data.byteLength, 0);
      return { value: captures, bytes };
    });
  }

  /**
   * The top 5 of the model's prediction: a classifier's classes by probability; a segmentation
   * model's classes by their share of the argmax mask; a detector's boxes by score (as `probability`).
   */
  async predictions(index: number, img: ViewerImage): Promise<Prediction[]> {
    const model = this.models[index];
    const { output, value } = await this.outputs(index, img);
    if (output && output.shape.length === 2) return topPredictions(model, output, 0, 5);
    const seg = segmentationLogitsOf(value);
    if (seg)
      return maskClassShares(model, argmaxMask(seg, 0).mask)
        .slice(0, 5)
        .map((c) => ({ class: c.class, name: c.name, probability: c.share }));
    const d = detectionsOf(value)?.[0];
    if (d)
      return detectionOrder(d)
        .slice(0, 5)
        .map((i) => ({
          class: d.labels.data[i],
          name: className(model, d.labels.data[i]),
          probability: d.scores.data[i],
        }));
    return [];
  }
}

/** Bytes of the tensors in a structured output (for the cache's budget). */
function tensorBytes(v: OutputValue): number {
  if (isTensorValue(v)) return v.data.byteLength;
  if (Array.isArray(v)) return v.reduce((s: number, e) => s + tensorBytes(e), 0);
  if (v && typeof v === 'object')
    return Object.values(v).reduce((s: number, e) => s + tensorBytes(e as OutputValue), 0);
  return 0;
}
