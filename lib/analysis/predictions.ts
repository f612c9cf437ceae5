/**
 * What a segmentation or detection model predicts, drawn over the photo: the per-pixel argmax
 * class (a palette, with a legend of the classes present and their share of the picture), or the
 * highest-scoring boxes with their class names and scores (Mask R-CNN's masks tinted in each box's
 * colour where their probability is >= 0.5, Keypoint R-CNN's keypoints as dots). Framed with the weights banner (the
 * export-model.py models are UNTRAINED: their masks and boxes are noise, and the banner says so).
 * Also EigenCAM over the photo for any model (lib/analysis/eigencam.ts).
 */
import sharp from 'sharp';
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { Model } from '../model';
import { type ImageSource, preprocess } from '../preprocess';
import type { RgbCanvas } from '../render/canvas';
import { encodePng } from '../render/canvas';
import { drawOverlay } from '../render/overlay';
import { type Detections, argmaxMask, detectionOrder, detectionsOf, segmentationLogitsOf } from '../structured';
import { className, normalisationOf, weightsOf } from './common';
import { frameCanvas } from '../render/frame';
import { drawSvg, escapeXml, outlineRect } from '../render/svg';
import { eigenCam } from './eigencam';
import { displayPhoto } from './gradcam';

export interface PredictionOverlayOptions {
  /** Longer side of the drawn photo in pixels; default 448. */
  displaySize?: number;
  /** Detection: how many boxes to draw, highest scores first (default 10). */
  top?: number;
  /** Detection: draw only boxes scoring at least this (default 0). */
  minScore?: number;
  /** Segmentation, and Mask R-CNN's instance masks: weight of the mask colours over the photo (default 0.55). */
  alpha?: number;
}

export interface PredictionOverlay {
  kind: 'segmentation' | 'detection';
  png: Buffer;
  width: number;
  height: number;
  /** Segmentation: the classes present, largest share first; detection: the boxes drawn. */
  classes?: { class: number; name: string; share: number }[];
  boxes?: DrawnBox[];
  weights: { trained: boolean | undefined; text: string };
}

/** One drawn detection; Mask R-CNN's carry their mask's size, Keypoint R-CNN's their keypoints. */
export interface DrawnBox {
  /** x1, y1, x2, y2 in input pixels. */
  box: [number, number, number, number];
  class: number;
  name: string;
  score: number;
  /** Mask R-CNN: the input pixels whose mask probability is >= 0.5 (the part tinted in the box's colour). */
  maskPixels?: number;
  /** Keypoint R-CNN: each keypoint in input pixels, with its name and heatmap score (all drawn as dots). */
  keypoints?: { name: string; x: number; y: number; score?: number }[];
}

/** torchvision's rule for drawing Mask R-CNN's soft masks (draw_segmentation_masks after `masks > 0.5`). */
export const MASK_THRESHOLD = 0.5;

const KEYS = ['displaySize', 'top', 'minScore', 'alpha'] as const;

/** Pascal VOC's colour map (bit interleaving of the class index): class 0 (background) is black. */
export function paletteColour(k: number): [number, number, number] {
  let r = 0,
    g = 0,
    b = 0,
    c = k;
  for (let j = 0; j < 8; j++) {
    r |= ((c >> 0) & 1) << (7 - j);
    g |= ((c >> 1) & 1) << (7 - j);
    b |= ((c >> 2) & 1) << (7 - j);
    c >>= 3;
  }
  return [r, g, b];
}

/** The classes of an argmax mask with their share of its pixels, largest first (ties: first seen first). */
export function maskClassShares(model: Model, mask: Int32Array): { class: number; name: string; share: number }[] {
  const counts = new Map<number, number>();
  for (const k of mask) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => ({ class: k, name: className(model, k), share: n / mask.length }));
}

/** The prediction of a segmentation or detection model for one image, drawn. */
export async function predictionOverlay(
  model: Model,
  image: ImageSource,
  options: PredictionOverlayOptions = {},
): Promise<PredictionOverlay> {
  checkKnownKeys('predictionOverlay', options, KEYS);
  const displaySize = options.displaySize ?? 448;
  if (!Number.isInteger(displaySize) || displaySize < 64 || displaySize > 4096)
    throw invalidParameter('displaySize', 'an integer from 64 to 4096', displaySize);
  const top = options.top ?? 10;
  if (!Number.isInteger(top) || top < 1 || top > 1000) throw invalidParameter('top', 'an integer from 1 to 1000', top);
  const minScore = options.minScore ?? 0;
  if (typeof minScore !== 'number' || !(minScore >= 0 && minScore <= 1))
    throw invalidParameter('minScore', 'a number from 0 to 1', minScore);
  const alpha = options.alpha ?? 0.55;
  if (typeof alpha !== 'number' || !(alpha >= 0 && alpha <= 1))
    throw invalidParameter('alpha', 'a number from 0 to 1', alpha);
  const norm = normalisationOf(model);
  const input = await preprocess([image], { resize: 'squash', size: norm.size, mean: norm.mean, std: norm.std });
  const res = await model.forward(input, {});
  const photo = await displayPhoto(image, displaySize);
  const weights = weightsOf(model);
  const untrained = weights.trained === false ? ' (UNTRAINED: noise, not a prediction)' : '';
  const logits = segmentationLogitsOf(res.value);
  if (logits) {
    const { mask, height, width } = argmaxMask(logits, 0);
    // The mask at the photo's display size (nearest neighbour: class indices do not blend).
    const rgb = Buffer.alloc(width * height * 3);
    for (let p = 0; p < mask.length; p++) rgb.set(paletteColour(mask[p]), p * 3);
    const scaled = await sharp(rgb, { raw: { width, height, channels: 3 } })
      .resize({ width: photo.width, height: photo.height, fit: 'fill', kernel: 'nearest' })
      .raw()
      .toBuffer();
    const canvas: RgbCanvas = { data: Buffer.from(photo.rgb), width: photo.width, height: photo.height };
    for (let i = 0; i < canvas.data.length; i++)
      canvas.data[i] = Math.round((1 - alpha) * photo.rgb[i] + alpha * scaled[i]);
    const classes = maskClassShares(model, mask);
    const legend = classes
      .slice(0, 8)
      .map((c) => `■ ${c.name} ${(c.share * 100).toFixed(1)}% (rgb ${paletteColour(c.class).join(',')})`);
    const framed = await frameCanvas(
      canvas,
      model.metadata,
      `Segmentation, argmax per pixel${untrained ? ' (UNTRAINED)' : ''}`,
      [...legend, classes.length > 8 ? `… and ${classes.length - 8} more classes` : ''].filter(Boolean),
    );
    return {
      kind: 'segmentation',
      png: await encodePng(framed),
      width: framed.width,
      height: framed.height,
      classes,
      weights,
    };
  }
  const dets = detectionsOf(res.value);
  if (!dets)
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `${model.path} is neither a segmentation model (a dict with "out" logits) nor a detection model (boxes, labels, scores); export one with scripts/export-model.py --arch fcn_resnet50 or retinanet_resnet50_fpn`,
    );
  const d = dets[0];
  const [inH, inW] = [input.shape[2], input.shape[3]];
  const sx = photo.width / inW,
    sy = photo.height / inH;
  const D = d.scores.shape[0];
  const masks = instanceMasks(d, D);
  const keypoints = keypointsOf(d, D);
  const order = detectionOrder(d, minScore).slice(0, top);
  const boxes: DrawnBox[] = order.map((i) => {
    const b = d.boxes.data.subarray(i * 4, i * 4 + 4);
    const cls = d.labels.data[i];
    const drawn: DrawnBox = {
      box: [b[0], b[1], b[2], b[3]],
      class: cls,
      name: className(model, cls),
      score: d.scores.data[i],
    };
    if (masks) {
      let n = 0;
      for (const v of masks.of(i)) if (v >= MASK_THRESHOLD) n++;
      drawn.maskPixels = n;
    }
    if (keypoints) drawn.keypoints = keypoints.of(i, model.metadata.keypoints);
    return drawn;
  });
  const colours = boxes.map((b, j) => {
    const [r, g, bl] = paletteColour(b.class + 1 + j);
    return [Math.max(r, 60), Math.max(g, 60), Math.max(bl, 60)] as [number, number, number];
  });
  // Masks first, lowest score first, so that the best detection's colour lies on top.
  const base = Buffer.from(photo.rgb);
  if (masks)
    for (let j = order.length - 1; j >= 0; j--)
      tintMask({ data: base, width: photo.width, height: photo.height }, masks.of(order[j]), masks, colours[j], alpha);
  const svg: string[] = [];
  boxes.forEach((b, j) => {
    const colour = `rgb(${colours[j].join(',')})`;
    const [x1, y1, x2, y2] = [b.box[0] * sx, b.box[1] * sy, b.box[2] * sx, b.box[3] * sy];
    const label = `${b.name} ${b.score.toFixed(3)}`;
    svg.push(
      outlineRect(x1, y1, x2, y2, colour, 2),
      `<rect x="${x1.toFixed(1)}" y="${Math.max(0, y1 - 14).toFixed(1)}" width="${(label.length * 6.6 + 6).toFixed(1)}" height="14" fill="${colour}"/>`,
      `<text x="${(x1 + 3).toFixed(1)}" y="${(Math.max(0, y1 - 14) + 11).toFixed(1)}" font-family="DejaVu Sans Mono, monospace" font-size="11" fill="#000">${escapeXml(label)}</text>`,
    );
    for (const k of b.keypoints ?? [])
      svg.push(
        `<circle cx="${(k.x * sx).toFixed(1)}" cy="${(k.y * sy).toFixed(1)}" r="3" fill="${colour}" stroke="#000" stroke-width="1"/>`,
      );
  });
  const canvas = await drawSvg({ data: base, width: photo.width, height: photo.height }, svg.join(''));
  const framed = await frameCanvas(
    canvas,
    model.metadata,
    `Detection, top ${boxes.length} of ${d.scores.shape[0]} boxes${untrained ? ' (UNTRAINED)' : ''}`,
    [
      `label: class name and score; ${model.metadata.classes?.length ?? '?'} categories; scores >= ${minScore}`,
      masks ? `tint: a box's mask where its probability >= ${MASK_THRESHOLD}` : '',
      keypoints ? `dots: a box's ${keypoints.count} keypoints, whatever their score` : '',
    ].filter(Boolean),
  );
  return {
    kind: 'detection',
    png: await encodePng(framed),
    width: framed.width,
    height: framed.height,
    boxes,
    weights,
  };
}

/**
 * Tints `canvas` where a soft mask (row-major, `size.width` x `size.height`) is >= MASK_THRESHOLD:
 * colour = (1 - alpha) * pixel + alpha * `rgb`, rounded. The mask is scaled by nearest neighbour
 * from the canvas's pixel centres: canvas pixel (x, y) reads mask pixel
 * (floor((x + 0.5) * W / width), floor((y + 0.5) * H / height)).
 */
export function tintMask(
  canvas: RgbCanvas,
  mask: Float32Array,
  size: { width: number; height: number },
  rgb: readonly [number, number, number],
  alpha: number,
): void {
  const { data, width, height } = canvas;
  const col = Int32Array.from({ length: width }, (_, x) =>
    Math.min(size.width - 1, Math.floor(((x + 0.5) * size.width) / width)),
  );
  for (let y = 0; y < height; y++) {
    const row = Math.min(size.height - 1, Math.floor(((y + 0.5) * size.height) / height)) * size.width;
    for (let x = 0; x < width; x++) {
      if (!(mask[row + col[x]] >= MASK_THRESHOLD)) continue;
      const p = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) data[p + c] = Math.round((1 - alpha) * data[p + c] + alpha * rgb[c]);
    }
  }
}

/** Mask R-CNN's [D, 1, H, W] soft masks of one image, when its detections carry them in that shape. */
function instanceMasks(d: Detections, D: number) {
  const m = d.masks;
  if (!m || m.shape.length !== 4 || m.shape[0] !== D || m.shape[1] !== 1) return null;
  const [height, width] = [m.shape[2], m.shape[3]];
  const size = height * width;
  if (size === 0) return null;
  return { width, height, of: (i: number) => m.data.subarray(i * size, (i + 1) * size) };
}

/** Keypoint R-CNN's [D, K, 3] keypoints (and [D, K] scores) of one image, named by the model's metadata. */
function keypointsOf(d: Detections, D: number) {
  const k = d.keypoints;
  if (!k || k.shape.length !== 3 || k.shape[0] !== D || k.shape[2] !== 3 || k.shape[1] === 0) return null;
  const K = k.shape[1];
  const scores =
    d.keypoints_scores?.shape.length === 2 && d.keypoints_scores.shape[1] === K ? d.keypoints_scores : null;
  return {
    count: K,
    of: (i: number, names: string[] | undefined) =>
      Array.from({ length: K }, (_, j) => ({
        name: names?.length === K ? names[j] : `keypoint ${j}`,
        x: k.data[(i * K + j) * 3],
        y: k.data[(i * K + j) * 3 + 1],
        ...(scores ? { score: scores.data[i * K + j] } : {}),
      })),
  };
}

/** EigenCAM of one image over the photo: the map min-max scaled to [0, 1] (as pytorch-grad-cam shows it). */
export async function eigenCamOverlay(
  model: Model,
  image: ImageSource,
  options: { layer: string; displaySize?: number; alpha?: number },
): Promise<{ png: Buffer; width: number; height: number; explained: number; range: [number, number] }> {
  const norm = normalisationOf(model);
  const input = await preprocess([image], { resize: 'squash', size: norm.size, mean: norm.mean, std: norm.std });
  const cam = await eigenCam(model, input, { layer: options.layer });
  const [, h, w] = cam.shape;
  let lo = Infinity,
    hi = -Infinity;
  for (const v of cam.data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const photo = await displayPhoto(image, options.displaySize ?? 448);
  const overlay = await drawOverlay(
    photo,
    { data: cam.data, width: w, height: h },
    { alpha: options.alpha ?? 0.5, range: [lo, hi] },
  );
  const framed = await frameCanvas(overlay, model.metadata, `EigenCAM · ${cam.layer}`, [
    `1st principal component (centred): ${lo.toPrecision(3)} blue to ${hi.toPrecision(3)} red`,
    `${(cam.explained[0] * 100).toFixed(1)}% of the variance; no gradients, no class`,
  ]);
  return {
    png: await encodePng(framed),
    width: framed.width,
    height: framed.height,
    explained: cam.explained[0],
    range: [lo, hi],
  };
}
