/**
 * Layer similarity: linear CKA (Kornblith et al. 2019, "Similarity of Neural Network
 * Representations Revisited") between layers, of one model or of two models on the same images
 * (a checkpoint before and after fine-tuning, two architectures).
 *
 * Each image is represented at each layer by its channel means (global average pooling, taken
 * on the device with the statistics of the capture, so no feature map is copied to JS). With
 * X (images x channels) and Y centred over images,
 *
 *   CKA(X, Y) = ||Yᵀ X||²_F / (||Xᵀ X||_F · ||Yᵀ Y||_F)
 *
 * 1 for representations equal up to rotation and scale, near 0 for unrelated ones. Memory: the
 * pooled features, images x channels floats per layer.
 */
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import { basename } from 'path';
import type { Model } from '../model';
import type { ImageSource } from '../preprocess';
import type { CaptureStats } from '../types';
import { type RgbCanvas, encodePng, fillRect } from '../render/canvas';
import { luminance, parseColor } from '../render/color';
import { colormapRGB } from '../render/colormaps';
import { drawText } from '../render/text';
import { type FailedImage, imageBatches, normalisationOf, weightsOf } from './common';
import { BANNER_HEIGHT, drawBanner } from '../render/frame';
import { INK, MUTED, fitText, textWidth } from '../render/svg';

export interface LayerSimilarityOptions {
  /** Layers of `model` (the rows). */
  layers: string[];
  /** Another model and its layers (the columns); default: the same model and layers. */
  other?: { model: Model; layers: string[] };
  /** Images per forward; default 16. */
  batch?: number;
  resize?: 'squash' | 'crop';
  onProgress?: (done: number, total: number) => void;
}

export interface LayerSimilarity {
  images: number;
  failed: FailedImage[];
  rows: string[];
  columns: string[];
  /** Linear CKA, rows x columns. */
  cka: number[][];
  weights: { trained: boolean | undefined; text: string };
  otherWeights?: { trained: boolean | undefined; text: string };
}

/** Linear CKA of two feature matrices (n x p and n x q, row-major), centred here. */
export function linearCka(x: Float32Array, p: number, y: Float32Array, q: number, n: number): number {
  const cx = centred(x, n, p);
  const cy = centred(y, n, q);
  const xy = frobenius2(crossProduct(cx, p, cy, q, n));
  const xx = Math.sqrt(frobenius2(crossProduct(cx, p, cx, p, n)));
  const yy = Math.sqrt(frobenius2(crossProduct(cy, q, cy, q, n)));
  return xx > 0 && yy > 0 ? xy / (xx * yy) : NaN;
}

function centred(a: Float32Array, n: number, p: number): Float64Array {
  const out = new Float64Array(n * p);
  for (let j = 0; j < p; j++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += a[i * p + j];
    mean /= n;
    for (let i = 0; i < n; i++) out[i * p + j] = a[i * p + j] - mean;
  }
  return out;
}

/** Aᵀ B for A (n x p) and B (n x q): p x q. */
function crossProduct(a: Float64Array, p: number, b: Float64Array, q: number, n: number): Float64Array {
  const out = new Float64Array(p * q);
  for (let i = 0; i < n; i++) {
    const ra = i * p;
    const rb = i * q;
    for (let j = 0; j < p; j++) {
      const v = a[ra + j];
      if (v === 0) continue;
      const o = j * q;
      for (let k = 0; k < q; k++) out[o + k] += v * b[rb + k];
    }
  }
  return out;
}

function frobenius2(m: Float64Array): number {
  let s = 0;
  for (const v of m) s += v * v;
  return s;
}

/** Pooled features (channel means per image, image-major) of each layer, per side (model, other model). */
export interface PooledFeatures {
  images: number;
  failed: FailedImage[];
  /** Indices into the files given of the images read, in row order. */
  files: number[];
  sides: Array<Map<string, { x: Float32Array; c: number }>>;
}

/** One side of a similarity run: a model and its layers (the rows; the other model's: the columns). */
export interface FeatureSide {
  model: Model;
  layers: string[];
}

/** Checks the options and `files` (at least `minImages`); the sides to capture, the batch and the preprocessing. */
export function checkSimilarityOptions(
  model: Model,
  files: readonly ImageSource[],
  options: LayerSimilarityOptions,
  minImages: number,
) {
  if (!options || typeof options !== 'object')
    throw invalidParameter('layerSimilarity options', 'an object with layers', options);
  checkKnownKeys('layerSimilarity', options, ['layers', 'other', 'batch', 'resize', 'onProgress']);
  if (!Array.isArray(files) || files.length < minImages) {
    throw invalidParameter(
      'files',
      minImages > 1 ? 'at least two images (CKA compares images with each other)' : 'a non-empty array of images',
      files,
    );
  }
  if (!Array.isArray(options.layers) || options.layers.length === 0)
    throw invalidParameter('layers', 'a non-empty array of layer names', options.layers);
  const other = options.other;
  if (
    other !== undefined &&
    (typeof other !== 'object' ||
      !other ||
      !Array.isArray(other.layers) ||
      other.layers.length === 0 ||
      typeof other.model?.capture !== 'function')
  ) {
    throw invalidParameter('other', '{ model, layers } with a loaded model and a non-empty array of its layers', other);
  }
  const batch = options.batch ?? 16;
  if (!Number.isInteger(batch) || batch < 1 || batch > 1024)
    throw invalidParameter('batch', 'an integer from 1 to 1024', batch);
  const norm = normalisationOf(model);
  if (other && normalisationOf(other.model).size !== norm.size) {
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `the two models expect different input sizes (${norm.size} and ${normalisationOf(other.model).size}); compare models with the same input`,
    );
  }
  const sides: FeatureSide[] = [
    { model, layers: options.layers },
    ...(other ? [{ model: other.model, layers: other.layers }] : []),
  ];
  return { batch, resize: options.resize ?? 'squash', norm, sides };
}

/** One batch through every side: per side and layer, the capture statistics (row i: image i's channel means). */
export async function capturePooled(
  sides: FeatureSide[],
  input: { data: Float32Array; shape: [number, number, number, number] },
): Promise<CaptureStats[][]> {
  const out: CaptureStats[][] = [];
  for (const side of sides) {
    const caps = await side.model.capture({ data: input.data, shape: input.shape }, side.layers, {
      stats: true,
      maxSize: 1,
    });
    out.push(
      side.layers.map((layer) => {
        const cap = caps.find((c) => c.name === layer);
        if (!cap?.stats) {
          throw new FeatscopeError(
            'LAYER_NOT_CALLED',
            `layer ${layer} gave no capture for these images (a call in an \`if\` branch not taken, or a loop); pick a layer called once per forward`,
          );
        }
        return cap.stats;
      }),
    );
  }
  return out;
}

/** Pooled features gathered image by image, in row order (pooledFeatures, `featscope similarity` on the batch runner). */
export class PooledRows {
  readonly files: number[] = [];
  /** Per side and layer: one Float32Array of channel means per image. */
  readonly #rows: Array<Map<string, Float32Array[]>>;

  constructor(readonly sides: FeatureSide[]) {
    this.#rows = sides.map((s) => new Map<string, Float32Array[]>(s.layers.map((l) => [l, []])));
  }

  /** Image i of a batch's capturePooled, as file `file` (its index in the run's files). */
  add(batch: CaptureStats[][], i: number, file: number): void {
    this.files.push(file);
    this.sides.forEach((side, k) =>
      side.layers.forEach((layer, j) => {
        const c = batch[k][j].shape[1];
        this.#rows[k].get(layer)!.push(batch[k][j].mean.slice(i * c, (i + 1) * c));
      }),
    );
  }

  /** The rows stacked per side and layer (images x channels), with `failed` the others of the `total`. */
  pooled(total: number, failed: FailedImage[]): PooledFeatures {
    const sides = this.#rows.map(
      (m) =>
        new Map(
          [...m].map(([layer, rows]) => {
            const c = rows[0]?.length ?? 0;
            const x = new Float32Array(rows.length * c);
            rows.forEach((r, i) => x.set(r, i * c));
            return [layer, { x, c }] as const;
          }),
        ),
    );
    return { images: total - failed.length, failed, files: this.files, sides };
  }
}

/** The channel means per image of the layers of one model (or two), the input of CKA; mergeable over disjoint image sets by concatenation. */
export async function pooledFeatures(
  model: Model,
  files: readonly ImageSource[],
  options: LayerSimilarityOptions,
): Promise<PooledFeatures> {
  const { batch, resize, norm, sides } = checkSimilarityOptions(model, files, options, 1);
  const rows = new PooledRows(sides);
  const failed: LayerSimilarity['failed'] = [];
  for await (const b of imageBatches(files, batch, { resize, size: norm.size, mean: norm.mean, std: norm.std })) {
    failed.push(...b.failed);
    if (b.files.length > 0) {
      const stats = await capturePooled(sides, b);
      b.files.forEach((file, i) => rows.add(stats, i, file));
    }
    options.onProgress?.(Math.min(b.start + batch, files.length), files.length);
  }
  return rows.pooled(files.length, failed);
}

/** The CKA matrix of pooled features: rows are the first side's layers, columns the second's (or the first's). */
export function ckaMatrix(
  pooled: Pick<PooledFeatures, 'images' | 'sides'>,
  rows: string[],
  columns: string[],
): number[][] {
  const a = pooled.sides[0];
  const b = pooled.sides[pooled.sides.length > 1 ? 1 : 0];
  return rows.map((rl) =>
    columns.map((cl) => {
      const [x, y] = [a.get(rl)!, b.get(cl)!];
      return linearCka(x.x, x.c, y.x, y.c, pooled.images);
    }),
  );
}

/** Linear CKA between layers over a set of images. */
export async function layerSimilarity(
  model: Model,
  files: readonly ImageSource[],
  options: LayerSimilarityOptions,
): Promise<LayerSimilarity> {
  const { sides } = checkSimilarityOptions(model, files, options, 2);
  return similarityOf(await pooledFeatures(model, files, options), sides, files.length);
}

/** The CKA of every row layer (the first side's) with every column layer (the other side's, or the first's) from pooled features of `total` images. */
export function similarityOf(pooled: PooledFeatures, sides: FeatureSide[], total: number): LayerSimilarity {
  const { images, failed } = pooled;
  if (images < 2)
    throw new FeatscopeError(
      'NO_INPUTS',
      `CKA needs at least two readable images; ${images} of ${total} could be read${failed[0] ? `; first error: ${failed[0].message}` : ''}`,
    );
  const [first, other] = sides;
  const columns = (other ?? first).layers;
  return {
    images,
    failed,
    rows: [...first.layers],
    columns: [...columns],
    cka: ckaMatrix(pooled, first.layers, columns),
    weights: weightsOf(first.model),
    ...(other ? { otherWeights: weightsOf(other.model) } : {}),
  };
}

/** The CKA matrix as a heatmap with the values written in the cells, under the weights banner. */
export async function renderSimilarity(
  model: Model,
  sim: LayerSimilarity,
  options: {
    title?: string;
    /** The models named on the axes; default the file name of `model` for both (a model with itself). */
    names?: { rows?: string; columns?: string };
  } = {},
): Promise<{ png: Buffer; width: number; height: number }> {
  if (options === null || typeof options !== 'object')
    throw invalidParameter('renderSimilarity options', 'an object', options);
  checkKnownKeys('renderSimilarity', options, ['title', 'names']);
  const rowModel = options.names?.rows ?? basename(model.path);
  const colModel = options.names?.columns ?? rowModel;
  const longest = (names: string[], size: number) => Math.max(...names.map((t) => textWidth(t, size)));
  // Cells wide enough for their column's name (up to a limit; longer names are shortened with …).
  const cellW = Math.min(160, Math.max(56, Math.ceil(longest(sim.columns, 10)) + 10));
  const cellH = 48;
  const rowAxis = `rows: ${rowModel}`;
  const colAxis = `columns: ${colModel}`;
  const labelW = Math.min(280, Math.ceil(Math.max(longest(sim.rows, 12), textWidth(`${rowAxis} ↓`, 11))) + 16);
  const title = options.title ?? 'Layer similarity (linear CKA)';
  const models = rowModel === colModel ? `${rowModel} with itself` : `${rowModel} (rows) vs ${colModel} (columns)`;
  const subtitle = `channel means over ${sim.images} images · 1: same up to rotation and scale · 0: unrelated`;
  const matrixW = sim.columns.length * cellW;
  const width = Math.min(
    1400,
    Math.ceil(
      Math.max(
        420,
        labelW + matrixW + 24,
        textWidth(title, 15) + 24,
        textWidth(models, 12) + 24,
        textWidth(subtitle, 11) + 24,
      ),
    ),
  );
  const head = BANNER_HEIGHT + 70;
  const axisH = 20;
  const colLabelH = 22;
  const barH = 50;
  const top = head + axisH + colLabelH;
  const height = top + sim.rows.length * cellH + barH;
  const canvas: RgbCanvas = { data: Buffer.alloc(width * height * 3, 255), width, height };
  await drawBanner(canvas, model.metadata);
  const ink = parseColor(INK, 'ink');
  const muted = parseColor(MUTED, 'muted');
  await drawText(canvas, [{ text: fitText(title, 15, width - 20), x: 10, y: BANNER_HEIGHT + 20 }], {
    size: 15,
    colour: ink,
    bold: true,
    anchor: 'start',
  });
  await drawText(canvas, [{ text: fitText(models, 12, width - 20), x: 10, y: BANNER_HEIGHT + 40 }], {
    size: 12,
    colour: ink,
    anchor: 'start',
  });
  await drawText(canvas, [{ text: fitText(subtitle, 11, width - 20), x: 10, y: BANNER_HEIGHT + 58 }], {
    size: 11,
    colour: muted,
    anchor: 'start',
  });
  // Axis names: each side's model, over its labels.
  await drawText(
    canvas,
    [{ text: fitText(`${colAxis} →`, 11, Math.max(matrixW, width - labelW - 10)), x: labelW, y: head + 14 }],
    { size: 11, colour: ink, bold: true, anchor: 'start' },
  );
  await drawText(canvas, [{ text: fitText(`${rowAxis} ↓`, 11, labelW - 8), x: labelW - 8, y: top - 6 }], {
    size: 11,
    colour: ink,
    bold: true,
    anchor: 'end',
  });
  await drawText(
    canvas,
    sim.columns.map((c, j) => ({ text: fitText(c, 10, cellW - 4), x: labelW + j * cellW + cellW / 2, y: top - 6 })),
    { size: 10, colour: ink },
  );
  await drawText(
    canvas,
    sim.rows.map((r, i) => ({ text: fitText(r, 12, labelW - 12), x: labelW - 8, y: top + i * cellH + cellH / 2 + 4 })),
    { size: 12, colour: ink, anchor: 'end' },
  );
  for (let i = 0; i < sim.rows.length; i++) {
    for (let j = 0; j < sim.columns.length; j++) {
      const v = sim.cka[i][j];
      const colour = Number.isFinite(v) ? colormapRGB('viridis', v) : ([200, 200, 200] as [number, number, number]);
      const x0 = labelW + j * cellW;
      const y0 = top + i * cellH;
      fillRect(canvas, x0 + 1, y0 + 1, cellW - 2, cellH - 2, colour);
      const textColour: [number, number, number] = luminance(colour) > 0.5 ? [20, 20, 20] : [245, 245, 245];
      await drawText(
        canvas,
        [{ text: Number.isFinite(v) ? v.toFixed(2) : '—', x: x0 + cellW / 2, y: y0 + cellH / 2 + 4 }],
        { size: 12, colour: textColour },
      );
    }
  }
  // Colour bar: CKA 0 (left) to 1 (right), under the matrix.
  const barX = labelW;
  const barW = Math.max(120, matrixW);
  const barY = top + sim.rows.length * cellH + 12;
  fillRect(canvas, barX - 1, barY - 1, barW + 2, 12, [153, 153, 153]);
  for (let x = 0; x < barW; x++) fillRect(canvas, barX + x, barY, 1, 10, colormapRGB('viridis', x / (barW - 1)));
  await drawText(canvas, [{ text: '0', x: barX - 6, y: barY + 10 }], { size: 11, colour: ink, anchor: 'end' });
  await drawText(canvas, [{ text: '1', x: barX + barW + 6, y: barY + 10 }], { size: 11, colour: ink, anchor: 'start' });
  await drawText(canvas, [{ text: 'linear CKA', x: barX + barW / 2, y: barY + 26 }], { size: 10, colour: muted });
  return { png: await encodePng(canvas), width, height };
}
