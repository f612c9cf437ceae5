/**
 * `featscope view`: a local HTTP server (node:http) over the library's own functions. Every
 * request needs the session's random token (query `token` once, then an HttpOnly, SameSite=Strict
 * cookie); without it the answer is 401 and nothing is served. It serves its own assets (a fixed
 * list, never a path from the request) and the images it was given or received, by id only.
 * Bad requests get 4xx JSON `{ error: { code, message } }` with the library's codes.
 */
import { randomBytes, timingSafeEqual } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import sharp from 'sharp';
import { gradCamOverlays, gradCamOverlaysOf } from '../analysis/gradcam';
import { evaluateSaliency } from '../analysis/faithfulness';
import { renderCurvesChart } from '../analysis/faithfulness-chart';
import { saliencyOverlays } from '../analysis/saliency';
import { topPredictions } from '../analysis/common';
import { FeatscopeError, type ErrorCode } from '../errors';
import { weightsLabel } from '../metadata';
import { type LayerInfo, type Model, loadModel } from '../model';
import { packageRoot } from '../native';
import { DEFAULT_MAX_INPUT_PIXELS, type PreprocessResult, preprocess } from '../preprocess';
import { COLORMAP_NAMES, type ColormapName, colormapRGB, getColormap } from '../render/colormaps';
import { channelMean, drawOverlay } from '../render/overlay';
import { type RgbCanvas, blit, encodePng, fillRect } from '../render/canvas';
import { displayPhoto } from '../analysis/gradcam';
import { formatNumber } from '../render/format';
import { frameCanvas } from '../render/frame';
import type { Capture } from '../types';
import { BoundedCache } from './cache';
import { compareCaptures } from './divergence';
import { ViewerConcepts } from './concepts';

export interface ViewerOptions {
  /** Image files (already expanded from folders and globs). */
  images: string[];
  /** One model, or two for "one image through two models". */
  models: string[];
  host?: string;
  /** 0: a free port. */
  port?: number;
  device?: 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;
  /** Largest upload in bytes; default 20 MiB. */
  uploadLimit?: number;
  /** Decoding limit for every image, as in the CLI; default DEFAULT_MAX_INPUT_PIXELS. */
  maxInputPixels?: number;
  /** Bytes the forward cache may hold; default 512 MiB. */
  cacheBytes?: number;
  /** Fixed token (tests); default 24 random bytes. */
  token?: string;
}

export interface Viewer {
  url: string;
  token: string;
  host: string;
  port: number;
  /** Forwards run so far (each (model, image, layer set) once while cached). */
  forwards(): number;
  /** The most image decodes that ran at once (at most 2, whatever the number of uploads). */
  peakDecodes(): number;
  close(): Promise<void>;
}

interface ViewerImage {
  id: string;
  name: string;
  source: string | Buffer;
  uploaded: boolean;
}

interface LayerForward {
  capture: Capture;
  /** Per channel of image 0: max and mean computed on the device (`stats: true`), min on the host. */
  max: Float32Array;
  mean: Float32Array;
  min: Float32Array;
  layerMin: number;
  layerMax: number;
}

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/assets/viewer.js': { file: 'viewer.js', type: 'text/javascript; charset=utf-8' },
  '/assets/viewer.css': { file: 'viewer.css', type: 'text/css; charset=utf-8' },
};

/** Uploads are kept in memory for the session: at most this many, and this many bytes in all. */
const MAX_UPLOADS = 200;
const MAX_UPLOADED_BYTES = 512 * 1024 * 1024;

export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const STATUS: Record<string, number> = {
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UPLOAD_TOO_LARGE: 413,
  UPLOAD_LIMIT: 413,
  IMAGE_TOO_LARGE: 413,
};

function assetDir(): string {
  const candidates = [path.join(__dirname, 'assets'), path.join(packageRoot, 'lib', 'viewer', 'assets')];
  return candidates.find((d) => fs.existsSync(path.join(d, 'index.html'))) ?? candidates[1];
}

function bad(code: ErrorCode, message: string): FeatscopeError {
  return new FeatscopeError(code, message);
}

function intParam(q: URLSearchParams, name: string, fallback: number | undefined, min: number, max: number): number {
  const v = q.get(name);
  if (v === null || v === '') {
    if (fallback === undefined)
      throw bad('INVALID_ARGUMENT', `missing query parameter ${name} (an integer from ${min} to ${max})`);
    return fallback;
  }
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw bad(
      'INVALID_ARGUMENT',
      `${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(v.slice(0, 40))}`,
    );
  return Number(v);
}

function strParam(q: URLSearchParams, name: string): string {
  const v = q.get(name);
  if (v === null || v === '') throw bad('INVALID_ARGUMENT', `missing query parameter ${name}`);
  if (v.length > 500) throw bad('INVALID_ARGUMENT', `${name} is longer than 500 characters`);
  return v;
}

/**
 * The Host names a request may carry: IP literals (a DNS-rebinding page has a name, never an
 * address), `localhost` and the name the viewer was bound to. Anything else is refused with 421.
 */
export function hostAllowed(hostHeader: string | undefined, boundHost: string): boolean {
  if (!hostHeader) return false;
  let name: string;
  try {
    name = new URL(`http://${hostHeader}`).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (name.startsWith('[') && name.endsWith(']')) return true; // an IPv6 literal
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return true;
  const bound = boundHost.toLowerCase().replace(/^\[|\]$/g, '');
  return name === 'localhost' || name.endsWith('.localhost') || name === bound;
}

/**
 * Whether a request comes from another site or origin: `Sec-Fetch-Site` other than same-origin or
 * none (a typed URL), or an `Origin` that is not this viewer's own. A page on another localhost
 * port is same-site, so SameSite cookies alone do not stop it; this does. Requests with neither
 * header (curl, scripts with the token) pass.
 */
export function crossOrigin(req: http.IncomingMessage): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${site}`;
  const origin = req.headers.origin;
  if (typeof origin === 'string' && origin !== `http://${req.headers.host ?? ''}`)
    return `Origin: ${origin.slice(0, 100)}`;
  return undefined;
}

/** At most this many image decodes at a time (uploads, inputs, thumbnails): bounds their memory. */
const MAX_DECODES = 2;

/** A counting semaphore: `run` waits for one of `limit` slots. */
class Slots {
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

export async function startViewer(options: ViewerOptions): Promise<Viewer> {
  const host = options.host ?? '127.0.0.1';
  const uploadLimit = options.uploadLimit ?? 20 * 1024 * 1024;
  const maxInputPixels = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  const token = options.token ?? randomBytes(24).toString('base64url');
  const tokenBuf = Buffer.from(token);
  if (options.models.length < 1 || options.models.length > 2)
    throw bad('USAGE', `view takes one model or two (--model a.pt --model b.pt), not ${options.models.length}`);
  for (const file of options.images) {
    if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
      throw bad(
        'IMAGE_NOT_FOUND',
        `image ${JSON.stringify(file)} does not exist or is not a file; give image files, folders or globs`,
      );
    }
  }
  const models: Model[] = [];
  try {
    for (const m of options.models) models.push(await loadModel(m, { device: options.device ?? 'auto' }));
  } catch (err) {
    for (const m of models) m.dispose();
    throw err;
  }
  const images = new Map<string, ViewerImage>();
  options.images.forEach((file, i) =>
    images.set(`i${i}`, { id: `i${i}`, name: path.basename(file), source: file, uploaded: false }),
  );
  let uploads = 0;
  let uploadedBytes = 0;
  let forwardCount = 0;
  const cache = new BoundedCache(options.cacheBytes ?? 512 * 1024 * 1024);
  const layerInfo = new Map<number, Promise<LayerInfo[]>>();
  const dir = assetDir();
  const decodes = new Slots(MAX_DECODES);
  // Set once the port is known: one cookie per viewer, so two viewers on one host keep their sessions.
  let cookieName = 'featscope_token';
  const conceptFits = new ViewerConcepts(maxInputPixels);

  const modelAt = (q: URLSearchParams, name = 'model'): { model: Model; index: number } => {
    const index = intParam(q, name, 0, 0, models.length - 1);
    return { model: models[index], index };
  };
  const imageAt = (q: URLSearchParams, name = 'image'): ViewerImage => {
    const id = strParam(q, name);
    const img = images.get(id);
    if (!img)
      throw bad(
        'IMAGE_NOT_FOUND',
        `no image with id ${JSON.stringify(id.slice(0, 40))}; the session's images are listed by /api/session`,
      );
    return img;
  };
  const layersOf = (index: number): Promise<LayerInfo[]> => {
    let p = layerInfo.get(index);
    if (!p) {
      const size = models[index].metadata.input?.size?.[0] ?? 224;
      p = models[index].layers({ inputSize: size });
      p.catch(() => layerInfo.delete(index));
      layerInfo.set(index, p);
    }
    return p;
  };
  const input = (index: number, img: ViewerImage): Promise<PreprocessResult> =>
    cache.get(`input|${index}|${img.id}`, async () => {
      const x = await decodes.run(() => preprocess(img.source, { model: models[index], maxInputPixels }));
      return { value: x, bytes: x.data.byteLength + x.images[0].rgb.length };
    });

  /** One forward per (model, image, layer) with device statistics, cached. */
  const layerForward = (index: number, img: ViewerImage, layer: string): Promise<LayerForward> =>
    cache.get(`layer|${index}|${img.id}|${layer}`, async () => {
      const x = await input(index, img);
      forwardCount++;
      const r = await models[index].forward(x, { layers: [layer], stats: true });
      const capture = r.get(layer);
      if (capture.shape.length !== 4) {
        throw bad(
          'NOT_FEATURE_MAPS',
          `layer ${layer} gives [${capture.shape.join(', ')}], not [N, C, H, W] feature maps; choose a layer with spatial output`,
        );
      }
      const [, c, h, w] = capture.shape;
      const min = new Float32Array(c);
      let layerMin = Infinity;
      let layerMax = -Infinity;
      for (let ch = 0; ch < c; ch++) {
        let m = Infinity;
        const plane = capture.data.subarray(ch * h * w, (ch + 1) * h * w);
        for (const v of plane) if (v < m) m = v;
        min[ch] = m;
        if (m < layerMin) layerMin = m;
        if (capture.stats!.max[ch] > layerMax) layerMax = capture.stats!.max[ch];
      }
      const value = {
        capture,
        max: capture.stats!.max.slice(0, c),
        mean: capture.stats!.mean.slice(0, c),
        min,
        layerMin,
        layerMax,
      };
      return { value, bytes: capture.data.byteLength + c * 12 };
    });

  /** One forward per (model, image) over every feature-map layer, for compare mode. */
  const allForward = (
    index: number,
    img: ViewerImage,
  ): Promise<{ captures: Capture[]; logits: { shape: number[]; data: Float32Array } | null }> =>
    cache.get(`all|${index}|${img.id}`, async () => {
      const info = await layersOf(index);
      const names = info
        .filter((l) => l.calls > 0 && !l.inLoop && (l.mapShapes ?? l.outputShapes)?.[0]?.length === 4)
        .map((l) => l.name);
      const x = await input(index, img);
      forwardCount++;
      const r = await models[index].forward(x, { layers: names });
      const captures = names.map((n) => r.get(n));
      const bytes = captures.reduce((s, c) => s + c.data.byteLength, 0);
      return { value: { captures, logits: r.output }, bytes };
    });

  /** The logits alone (no captures), for the predictions. */
  const outputForward = (index: number, img: ViewerImage): Promise<{ shape: number[]; data: Float32Array } | null> =>
    cache.get(`output|${index}|${img.id}`, async () => {
      const x = await input(index, img);
      forwardCount++;
      const { output } = await models[index].forward(x);
      return { value: output, bytes: output?.data.byteLength ?? 0 };
    });

  const predictions = async (index: number, img: ViewerImage) => {
    const logits = await outputForward(index, img);
    if (!logits || logits.shape.length !== 2) return [];
    return topPredictions(models[index], logits, 0, 5);
  };

  /** The mean overlay (channelMean + drawOverlay, framed), Grad-CAM or saliency picture of one image. */
  const overlay = async (
    kind: string,
    index: number,
    img: ViewerImage,
    layer: string,
    classes: number | undefined,
  ): Promise<{ png: Buffer; info: Record<string, unknown> }> => {
    const model = models[index];
    if (kind === 'mean') {
      // The library's channelMean and drawOverlay on the photo, with a colour bar in real values and the weights banner.
      const f = await layerForward(index, img, layer);
      const mean = channelMean(f.capture);
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of mean.data) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const photo = await displayPhoto(img.source, 448);
      const drawn = await drawOverlay(photo, mean, { alpha: 0.5, range: [lo, hi], colormap: 'turbo' });
      const withBar: RgbCanvas = {
        data: Buffer.alloc(drawn.width * (drawn.height + 18) * 3, 255),
        width: drawn.width,
        height: drawn.height + 18,
      };
      blit(withBar, drawn, 0, 0);
      for (let x = 0; x < drawn.width; x++)
        fillRect(withBar, x, drawn.height + 6, 1, 12, colormapRGB('turbo', x / Math.max(1, drawn.width - 1)));
      const framed = await frameCanvas(withBar, model.metadata, `Layer mean · ${layer}`, [
        `colour bar: ${formatNumber(lo)} (left) to ${formatNumber(hi)} (right)`,
        `mean over the ${f.capture.shape[1]} channels, bilinear onto the photo`,
      ]);
      return { png: await encodePng(framed), info: { min: lo, max: hi } };
    }
    if (kind === 'gradcam') {
      const [r] = await gradCamOverlays(model, [img.source], { layer, classes, top: 3 });
      return { png: r.png, info: { target: r.target, rawMax: r.rawMax } };
    }
    if (kind === 'faithfulness') {
      // Grad-CAM with its deletion and insertion curves beside it, as `featscope gradcam --metrics` draws them.
      const x = await input(index, img);
      const [r] = await gradCamOverlaysOf(model, x, [img.source], { layer, classes, top: 3 });
      const { width: cw, height: ch } = r.heatmap;
      forwardCount++;
      const evaluation = await evaluateSaliency(
        model,
        x,
        { data: r.heatmap.data, shape: [1, ch, cw] },
        { classes: [r.target.class] },
      );
      const e = evaluation.images[0];
      const chart = await renderCurvesChart(model.metadata, [{ name: 'Grad-CAM', evaluation: e }], {
        subject: img.name,
        className: `${r.target.name} (${r.target.class})`,
        step: evaluation.step,
      });
      const left = await sharp(r.png).metadata();
      const height = Math.max(left.height ?? 0, chart.height);
      const png = await sharp({
        create: { width: (left.width ?? 0) + chart.width, height, channels: 3, background: '#ffffff' },
      })
        .composite([
          { input: r.png, left: 0, top: 0 },
          { input: chart.png, left: left.width ?? 0, top: 0 },
        ])
        .png()
        .toBuffer();
      const auc = Object.fromEntries((['deletion', 'insertion'] as const).map((m) => [m, e[m]?.auc ?? null]));
      return { png, info: { target: r.target, auc, step: evaluation.step } };
    }
    const [r] = await saliencyOverlays(model, [img.source], { method: 'gradient', classes, top: 3 });
    return { png: r.png, info: { target: r.target } };
  };

  const send = (
    res: http.ServerResponse,
    status: number,
    type: string,
    body: Buffer | string,
    extra: Record<string, string> = {},
  ) => {
    res.writeHead(status, {
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
      'Content-Security-Policy': CSP,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cache-Control': 'no-store',
      'Cross-Origin-Resource-Policy': 'same-origin',
      ...extra,
    });
    res.end(body);
  };
  const json = (res: http.ServerResponse, value: unknown, status = 200) =>
    send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
  const fail = (res: http.ServerResponse, err: unknown) => {
    const code = err instanceof FeatscopeError ? err.code : 'INTERNAL';
    const message = err instanceof Error ? err.message : String(err);
    const status = STATUS[code] ?? (err instanceof FeatscopeError ? 400 : 500);
    if (!res.headersSent) json(res, { error: { code, message } }, status);
    else res.destroy();
  };

  const authorised = (req: http.IncomingMessage, q: URLSearchParams): boolean => {
    const given =
      q.get('token') ??
      (req.headers.cookie ?? '')
        .split(';')
        .map((c) => c.trim())
        .find((c) => c.startsWith(`${cookieName}=`))
        ?.slice(cookieName.length + 1);
    if (!given) return false;
    const b = Buffer.from(given);
    return b.length === tokenBuf.length && timingSafeEqual(b, tokenBuf);
  };

  const readBody = (req: http.IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length'] ?? NaN);
      const tooLarge = () =>
        bad('UPLOAD_TOO_LARGE', `the upload is larger than the limit of ${uploadLimit} bytes; send a smaller image`);
      if (declared > uploadLimit) {
        req.resume(); // discard the body; the answer is 413
        return reject(tooLarge());
      }
      const parts: Buffer[] = [];
      let size = 0;
      req.on('data', (d: Buffer) => {
        size += d.length;
        if (size > uploadLimit) {
          req.removeAllListeners('data');
          req.resume();
          reject(tooLarge());
        } else parts.push(d);
      });
      req.on('end', () => resolve(Buffer.concat(parts)));
      req.on('error', reject);
    });

  const routes: Record<
    string,
    (req: http.IncomingMessage, res: http.ServerResponse, q: URLSearchParams) => Promise<void>
  > = {
    'GET /api/session': async (_req, res) => {
      json(res, {
        models: models.map((m, i) => ({
          index: i,
          name: path.basename(options.models[i]),
          architecture: m.metadata.architecture ?? null,
          weights: weightsLabel(m.metadata),
          classes: m.metadata.classes?.length ?? 0,
          inputSize: m.metadata.input?.size?.[0] ?? 224,
        })),
        images: [...images.values()].map((i) => ({ id: i.id, name: i.name, uploaded: i.uploaded })),
        colormaps: COLORMAP_NAMES,
        uploadLimit,
      });
    },
    'GET /api/layers': async (_req, res, q) => {
      const { index } = modelAt(q);
      const info = await layersOf(index);
      json(
        res,
        info.map((l) => ({
          name: l.name,
          type: l.type,
          calls: l.calls,
          inLoop: l.inLoop === true,
          // Transformer token outputs: the [N, C, H, W] maps the captures hold (model.layers' mapShapes).
          shape: l.mapShapes?.[0] ?? l.outputShapes?.[0] ?? null,
          ...(l.layout ? { layout: l.layout, sourceShape: l.outputShapes?.[0] } : {}),
        })),
      );
    },
    'GET /api/classes': async (_req, res, q) => {
      json(res, modelAt(q).model.metadata.classes ?? []);
    },
    'GET /api/colormap': async (_req, res, q) => {
      const name = strParam(q, 'name');
      if (!(COLORMAP_NAMES as readonly string[]).includes(name))
        throw bad(
          'INVALID_ARGUMENT',
          `colormap must be one of ${COLORMAP_NAMES.join(', ')}, not ${JSON.stringify(name.slice(0, 40))}`,
        );
      json(res, Array.from(getColormap(name as ColormapName)));
    },
    'GET /api/image': async (_req, res, q) => {
      const img = imageAt(q);
      const size = intParam(q, 'size', 160, 16, 1024);
      const out = await cache.get(`thumb|${img.id}|${size}`, async () => {
        try {
          const jpeg = await decodes.run(() =>
            sharp(img.source, { limitInputPixels: maxInputPixels, autoOrient: true })
              .resize(size, size, { fit: 'inside' })
              .jpeg({ quality: 85 })
              .toBuffer(),
          );
          return { value: jpeg, bytes: jpeg.length };
        } catch (err) {
          throw bad('IMAGE_DECODE', `cannot decode image ${JSON.stringify(img.name)}: ${(err as Error).message}`);
        }
      });
      send(res, 200, 'image/jpeg', out);
    },
    'POST /api/upload': async (req, res, q) => {
      const name = (q.get('name') ?? 'upload').slice(0, 200);
      const body = await readBody(req);
      if (body.length === 0) throw bad('IMAGE_DECODE', 'the upload is empty; send the image file as the request body');
      // The CLI's decoding limits: preprocess refuses what is not an image, or too large, before it is kept.
      await decodes.run(() => preprocess(body, { model: models[0], maxInputPixels }));
      if (uploads >= MAX_UPLOADS || uploadedBytes + body.length > MAX_UPLOADED_BYTES) {
        throw bad(
          'UPLOAD_LIMIT',
          `this session holds ${uploads} uploads (${uploadedBytes} bytes), its limit is ${MAX_UPLOADS} uploads or ${MAX_UPLOADED_BYTES} bytes; restart \`featscope view\` with the images as arguments instead`,
        );
      }
      uploadedBytes += body.length;
      const id = `u${uploads++}`;
      images.set(id, { id, name, source: body, uploaded: true });
      json(res, { id, name, uploaded: true }, 201);
    },
    'GET /api/predict': async (_req, res, q) => {
      const { index } = modelAt(q);
      json(res, await predictions(index, imageAt(q)));
    },
    'GET /api/channels': async (_req, res, q) => {
      const { index } = modelAt(q);
      const img = imageAt(q);
      const layer = strParam(q, 'layer');
      const sort = q.get('sort') ?? 'index';
      if (!['index', 'max', 'mean'].includes(sort))
        throw bad('INVALID_ARGUMENT', `sort must be index, max or mean, not ${JSON.stringify(sort.slice(0, 40))}`);
      const f = await layerForward(index, img, layer);
      const [, c, h, w] = f.capture.shape;
      const per = intParam(q, 'per', 32, 1, 256);
      const pages = Math.ceil(c / per);
      const page = intParam(q, 'page', 0, 0, Math.max(0, pages - 1));
      const order = Array.from({ length: c }, (_, i) => i);
      if (sort !== 'index') {
        const key = sort === 'max' ? f.max : f.mean;
        order.sort((a, b) => key[b] - key[a] || a - b);
      }
      const list = order
        .slice(page * per, (page + 1) * per)
        .map((ch) => ({ channel: ch, max: f.max[ch], mean: f.mean[ch], min: f.min[ch] }));
      json(res, {
        layer,
        shape: [c, h, w],
        sort,
        page,
        pages,
        per,
        channels: list,
        layerMin: f.layerMin,
        layerMax: f.layerMax,
      });
    },
    'GET /api/maps': async (_req, res, q) => {
      const { index } = modelAt(q);
      const img = imageAt(q);
      const layer = strParam(q, 'layer');
      const f = await layerForward(index, img, layer);
      const [, c, h, w] = f.capture.shape;
      const list = strParam(q, 'channels');
      if (!/^\d+(,\d+){0,255}$/.test(list))
        throw bad(
          'INVALID_ARGUMENT',
          `channels must be a comma-separated list of up to 256 channel indices, not ${JSON.stringify(list.slice(0, 40))}`,
        );
      const chans = list.split(',').map(Number);
      const badCh = chans.find((ch) => ch >= c);
      if (badCh !== undefined)
        throw bad('INVALID_ARGUMENT', `channel ${badCh} does not exist: ${layer} has channels 0 to ${c - 1}`);
      const out = new Float32Array(chans.length * h * w);
      chans.forEach((ch, i) => out.set(f.capture.data.subarray(ch * h * w, (ch + 1) * h * w), i * h * w));
      send(res, 200, 'application/octet-stream', Buffer.from(out.buffer, out.byteOffset, out.byteLength), {
        'X-Featscope-Shape': `${chans.length},${h},${w}`,
      });
    },
    'GET /api/overlay': async (_req, res, q) => {
      const { model, index } = modelAt(q);
      const img = imageAt(q);
      const layer = strParam(q, 'layer');
      const kind = q.get('kind') ?? 'mean';
      const cls = q.get('class');
      const nClasses = model.metadata.classes?.length ?? 1000;
      const classes = cls === null || cls === '' ? undefined : intParam(q, 'class', undefined, 0, nClasses - 1);
      if (!['mean', 'gradcam', 'saliency', 'faithfulness'].includes(kind))
        throw bad(
          'INVALID_ARGUMENT',
          `kind must be mean, gradcam, saliency or faithfulness, not ${JSON.stringify(kind.slice(0, 40))}`,
        );
      const { png, info } = await cache.get(
        `overlay|${index}|${img.id}|${kind}|${kind === 'saliency' ? '' : layer}|${classes ?? ''}`,
        async () => {
          const r = await overlay(kind, index, img, layer, classes);
          return { value: r, bytes: r.png.length };
        },
      );
      send(res, 200, 'image/png', png, { 'X-Featscope-Info': encodeURIComponent(JSON.stringify(info)) });
    },
    // The Concepts tab: JSON of the fit over the session's images; with concept=T or image=ID, that picture.
    'GET /api/concepts': async (_req, res, q) => {
      const { model, index } = modelAt(q);
      const f = await conceptFits.get(model, index, strParam(q, 'layer'), intParam(q, 'k', 4, 1, 16), [
        ...images.values(),
      ]);
      if (q.get('concept')) {
        const t = intParam(q, 'concept', undefined, 0, Number(f.summary.k) - 1);
        return send(res, 200, 'image/png', await conceptFits.conceptPicture(model, f, t));
      }
      if (q.get('image')) {
        const png = await conceptFits.imagePicture(model, f, imageAt(q).id);
        if (png) return send(res, 200, 'image/png', png);
      }
      json(res, f.summary);
    },
    'GET /api/compare': async (_req, res, q) => {
      const a = { ...modelAt(q, 'modelA'), img: imageAt(q, 'a') };
      const b = { ...modelAt(q, 'modelB'), img: imageAt(q, 'b') };
      const [fa, fb] = await Promise.all([allForward(a.index, a.img), allForward(b.index, b.img)]);
      const [pa, pb] = await Promise.all([predictions(a.index, a.img), predictions(b.index, b.img)]);
      json(res, { layers: compareCaptures(fa.captures, fb.captures), predictions: [pa, pb] });
    },
  };

  const refuse = (res: http.ServerResponse, status: number, code: string, message: string) => {
    res.setHeader('Connection', 'close');
    json(res, { error: { code, message } }, status);
  };
  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!hostAllowed(req.headers.host, host)) {
      req.resume();
      return refuse(
        res,
        421,
        'HOST_NOT_ALLOWED',
        `Host ${JSON.stringify(String(req.headers.host ?? '').slice(0, 100))} is not this viewer's: open it by IP address, localhost or ${host}`,
      );
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      req.resume();
      return refuse(res, 400, 'BAD_REQUEST', 'the request target is not a valid URL path');
    }
    const q = url.searchParams;
    const foreign = url.pathname.startsWith('/api/') ? crossOrigin(req) : undefined;
    if (foreign) {
      req.resume();
      return refuse(
        res,
        403,
        'CROSS_ORIGIN',
        `a request from another page (${foreign}) is refused: the viewer answers only its own page`,
      );
    }
    if (!authorised(req, q)) {
      req.resume();
      json(
        res,
        {
          error: {
            code: 'UNAUTHORIZED',
            message: 'this featscope view session needs its token: open the URL the command printed (with ?token=...)',
          },
        },
        401,
      );
      return;
    }
    if (url.pathname === '/favicon.ico') {
      req.resume();
      res.writeHead(204, { 'Cache-Control': 'max-age=86400' }).end();
      return;
    }
    const asset = ASSETS[url.pathname];
    if (asset) {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return fail(res, bad('METHOD_NOT_ALLOWED', `${req.method} ${url.pathname}: only GET`));
      fs.promises.readFile(path.join(dir, asset.file)).then(
        (body) => {
          const extra: Record<string, string> = {};
          if (q.get('token')) extra['Set-Cookie'] = `${cookieName}=${token}; HttpOnly; SameSite=Strict; Path=/`;
          send(res, 200, asset.type, body, extra);
        },
        (err) => fail(res, err),
      );
      return;
    }
    const route = routes[`${req.method} ${url.pathname}`];
    if (!route) {
      req.resume();
      return fail(
        res,
        bad(
          'NOT_FOUND',
          `nothing at ${req.method} ${url.pathname.slice(0, 100)}; the viewer serves only its page, its assets and /api/*`,
        ),
      );
    }
    route(req, res, q).catch((err) => fail(res, err));
  };
  // Whatever a request holds, it gets an answer and the server goes on: nothing thrown while
  // handling one reaches the process.
  const server = http.createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      req.resume();
      fail(res, err);
    }
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && err.code !== 'ECONNRESET')
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => resolve());
    });
  } catch (err) {
    for (const m of models) m.dispose();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw bad(
        'PORT_IN_USE',
        `port ${options.port} on ${host} is in use; choose another with --port, or --port 0 for a free one`,
      );
    throw bad(
      'LISTEN_FAILED',
      `cannot listen on ${host}:${options.port ?? 0} (${(err as Error).message}); check --host and --port`,
    );
  }
  const port = (server.address() as { port: number }).port;
  cookieName = `featscope_token_${port}`;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${port}/?token=${token}`,
    token,
    host,
    port,
    forwards: () => forwardCount,
    peakDecodes: () => decodes.peak,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => {
        cache.clear();
        for (const m of models) m.dispose();
      });
      return closed;
    },
  };
}
