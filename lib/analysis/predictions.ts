/**
 * What a segmentation or detection model predicts, drawn over the photo: the per-pixel argmax
 * class (a palette, with a legend of the classes present and their share of the picture), or the
 * highest-scoring boxes with their class names and scores. Framed with the weights banner (the
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
import { type Detections, argmaxMask, detectionsOf, segmentationLogitsOf } from '../structured';
import { className, normalisationOf, weightsOf } from './common';
import { frameCanvas } from '../render/frame';
import { escapeXml } from '../render/svg';
import { eigenCam } from './eigencam';
import { displayPhoto } from './gradcam';

export interface PredictionOverlayOptions {
  /** Longer side of the drawn photo in pixels; default 448. */
  displaySize?: number;
  /** Detection: how many boxes to draw, highest scores first (default 10). */
  top?: number;
  /** Detection: draw only boxes scoring at least this (default 0). */
  minScore?: number;
  /** Segmentation: weight of the mask colours over the photo (default 0.55). */
  alpha?: number;
}

export interface PredictionOverlay {
  kind: 'segmentation' | 'detection';
  png: Buffer;
  width: number;
  height: number;
  /** Segmentation: the classes present, largest share first; detection: the boxes drawn. */
  classes?: { class: number; name: string; share: number }[];
  boxes?: { box: [number, number, number, number]; class: number; name: string; score: number }[];
  weights: { trained: boolean | undefined; text: string };
}

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

/** The indices of one image's detections scoring at least `minScore`, highest score first (ties: by index). */
export function detectionOrder(d: Detections, minScore = 0): number[] {
  return [...d.scores.data.keys()]
    .filter((i) => d.scores.data[i] >= minScore)
    .sort((a, b) => d.scores.data[b] - d.scores.data[a]);
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
  const boxes = detectionOrder(d, minScore)
    .slice(0, top)
    .map((i) => {
      const b = d.boxes.data.subarray(i * 4, i * 4 + 4);
      const cls = d.labels.data[i];
      return {
        box: [b[0], b[1], b[2], b[3]] as [number, number, number, number],
        class: cls,
        name: className(model, cls),
        score: d.scores.data[i],
      };
    });
  const svg = [`<svg xmlns="http://www.w3.org/2000/svg" width="${photo.width}" height="${photo.height}">`];
  boxes.forEach((b, j) => {
    const [r, g, bl] = paletteColour(b.class + 1 + j);
    const colour = `rgb(${Math.max(r, 60)},${Math.max(g, 60)},${Math.max(bl, 60)})`;
    const [x1, y1, x2, y2] = [b.box[0] * sx, b.box[1] * sy, b.box[2] * sx, b.box[3] * sy];
    const label = `${b.name} ${b.score.toFixed(3)}`;
    svg.push(
      `<rect x="${x1.toFixed(1)}" y="${y1.toFixed(1)}" width="${Math.max(1, x2 - x1).toFixed(1)}" height="${Math.max(1, y2 - y1).toFixed(1)}" fill="none" stroke="${colour}" stroke-width="2"/>`,
      `<rect x="${x1.toFixed(1)}" y="${Math.max(0, y1 - 14).toFixed(1)}" width="${(label.length * 6.6 + 6).toFixed(1)}" height="14" fill="${colour}"/>`,
      `<text x="${(x1 + 3).toFixed(1)}" y="${(Math.max(0, y1 - 14) + 11).toFixed(1)}" font-family="DejaVu Sans Mono, monospace" font-size="11" fill="#000">${escapeXml(label)}</text>`,
    );
  });
  svg.push('</svg>');
  const drawn = await sharp(photo.rgb, { raw: { width: photo.width, height: photo.height, channels: 3 } })
    .composite([{ input: Buffer.from(svg.join('')), top: 0, left: 0 }])
    .removeAlpha()
    .raw()
    .toBuffer();
  const canvas: RgbCanvas = { data: drawn, width: photo.width, height: photo.height };
  const framed = await frameCanvas(
    canvas,
    model.metadata,
    `Detection, top ${boxes.length} of ${d.scores.shape[0]} boxes${untrained ? ' (UNTRAINED)' : ''}`,
    [`label: class name and score; ${model.metadata.classes?.length ?? '?'} categories; scores >= ${minScore}`],
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
