/**
 * Grad-CAM over a photo: the native Grad-CAM map (ReLU(Σ_k α_k A_k) at the layer's resolution),
 * normalised per image to [0, 1] by its maximum, upsampled bilinearly onto the photo and framed
 * with the target class, the top predictions and the weights label.
 */
import sharp from 'sharp';
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { Model } from '../model';
import {
  type Detections,
  type TensorValue,
  argmaxMask,
  detectionOrder,
  detectionsOf,
  segmentationLogitsOf,
} from '../structured';
import { type ImageSource, type PreprocessResult, preprocess } from '../preprocess';
import { type ColormapName, checkColormap, colormapRGB } from '../render/colormaps';
import { type RgbCanvas, blit, encodePng, fillRect } from '../render/canvas';
import { parseColor } from '../render/color';
import { drawOverlay } from '../render/overlay';
import { drawText } from '../render/text';
import { type Prediction, className, normalisationOf, topPredictions, weightsOf } from './common';
import { BANNER_HEIGHT, drawBanner } from '../render/frame';
import { INK, MUTED, drawSvg, fitText, outlineRect } from '../render/svg';

export interface GradCamOverlayOptions {
  /** A layer with [N, C, H, W] output, called once per forward (e.g. layer4). */
  layer: string;
  /**
   * Target class per image, one for all, or omitted for each image's top-1 prediction. A
   * segmentation model (output `{ out: [N, K, H, W] }`): the class logit summed over the pixels
   * predicted as the class; omitted: the class predicted on the most pixels.
   */
  classes?: number | number[];
  /** 'squash' (default): Resize((size, size)), the map covers the whole photo. 'crop': Resize + CenterCrop; drawn on the crop. */
  resize?: 'squash' | 'crop';
  /** default 'turbo'. */
  colormap?: ColormapName;
  /** Weight of the heatmap over the photo; default 0.45. */
  alpha?: number;
  /** Longer side of the drawn photo in pixels; default 448. */
  displaySize?: number;
  /** How many predictions to list; default 3. */
  top?: number;
  /**
   * A detection model: which of each image's detections to explain, by rank (default 0, the
   * top-scoring one); its score is the target, and its box is drawn.
   */
  box?: number;
}

export interface GradCamOverlay {
  source: string;
  layer: string;
  /**
   * The class whose score was differentiated, its name and softmax probability (a segmentation
   * model: the class's mean probability over its predicted mask).
   */
  target: Prediction;
  /** The top predictions of the model for this image (a segmentation model: classes by share of pixels). */
  predictions: Prediction[];
  /** The normalised heatmap at the layer's resolution: max 1 (all zeros when the CAM is empty). */
  heatmap: { data: Float32Array; width: number; height: number };
  /** The CAM's maximum before normalisation (0: no positive evidence for the class at this layer). */
  rawMax: number;
  /** A segmentation model: the pixels of the target class's predicted mask (its score's support). */
  maskPixels?: number;
  /** A detection model: the target detection's box, x1, y1, x2, y2 in input pixels (drawn in white). */
  box?: [number, number, number, number];
  /** The framed overlay PNG: weights banner, title, photo with heatmap, colour bar and predictions. */
  png: Buffer;
  width: number;
  height: number;
  weights: { trained: boolean | undefined; text: string };
}

const KEYS = ['layer', 'classes', 'resize', 'colormap', 'alpha', 'displaySize', 'top'] as const;

function checkOptions(options: GradCamOverlayOptions) {
  if (!options || typeof options !== 'object')
    throw invalidParameter('gradCamOverlay options', 'an object with a layer', options);
  checkKnownKeys('gradCamOverlay', options, KEYS);
  const resize = options.resize ?? 'squash';
  if (resize !== 'squash' && resize !== 'crop') throw invalidParameter('resize', "'squash' or 'crop'", resize);
  const colormap = checkColormap(options.colormap ?? 'turbo');
  const alpha = options.alpha ?? 0.45;
  if (typeof alpha !== 'number' || !(alpha >= 0 && alpha <= 1))
    throw invalidParameter('alpha', 'a number from 0 to 1', alpha);
  const displaySize = options.displaySize ?? 448;
  if (!Number.isInteger(displaySize) || displaySize < 64 || displaySize > 4096)
    throw invalidParameter('displaySize', 'an integer from 64 to 4096', displaySize);
  const top = options.top ?? 3;
  if (!Number.isInteger(top) || top < 1 || top > 20) throw invalidParameter('top', 'an integer from 1 to 20', top);
  return { resize, colormap, alpha, displaySize, top };
}

/** Grad-CAM of one image (a path or an encoded Buffer). */
export async function gradCamOverlay(
  model: Model,
  image: ImageSource,
  options: GradCamOverlayOptions,
): Promise<GradCamOverlay> {
  return (await gradCamOverlays(model, [image], options))[0];
}

/** Grad-CAM of several images in one batched forward and backward. */
export async function gradCamOverlays(
  model: Model,
  images: readonly ImageSource[],
  options: GradCamOverlayOptions,
): Promise<GradCamOverlay[]> {
  const { resize } = checkOptions(options);
  if (!Array.isArray(images) || images.length === 0)
    throw invalidParameter('images', 'a non-empty array of images', images);
  const norm = normalisationOf(model);
  const input = await preprocess(images as ImageSource[], { resize, size: norm.size, mean: norm.mean, std: norm.std });
  return gradCamOverlaysOf(model, input, images, options);
}

/**
 * Grad-CAM overlays of a batch already preprocessed for `model` (with `options.resize`): the CLI's
 * batch runner decodes each file on its own, so that one bad file fails alone. `images[i]`
 * (the file of image i) is drawn under map i when resize is 'squash'.
 */
export async function gradCamOverlaysOf(
  model: Model,
  input: PreprocessResult,
  images: readonly ImageSource[],
  options: GradCamOverlayOptions,
): Promise<GradCamOverlay[]> {
  const { resize, colormap, alpha, displaySize, top } = checkOptions(options);
  const forward = await model.forward(input, { optimize: false }); // the numerics of the gradients
  const logits = forward.output;
  // A segmentation model ({ out: [N, K, H, W] }): the class logit summed over its predicted mask.
  const seg = !logits ? segmentationLogitsOf(forward.value) : null;
  // A detection model: the score of each image's box-th detection.
  const dets = !logits && !seg ? detectionsOf(forward.value) : null;
  if (!seg && !dets && (!logits || logits.shape.length !== 2)) {
    throw new FeatscopeError(
      'NOT_A_CLASSIFIER',
      `Grad-CAM needs a model whose output is [N, classes] logits, a segmentation dict with 'out' [N, classes, H, W] or detections; ${model.path} gives ${logits ? `[${logits.shape.join(', ')}]` : 'neither'}`,
    );
  }
  const box = options.box ?? 0;
  const cam = await model.gradcam(input, {
    layer: options.layer,
    classes: options.classes,
    ...(seg ? { target: { kind: 'segmentation' as const } } : {}),
    ...(dets ? { target: { kind: 'detection' as const, box } } : {}),
  });
  const [n, h, w] = cam.shape;
  const weights = weightsOf(model);
  const results: GradCamOverlay[] = [];
  for (let i = 0; i < n; i++) {
    const plane = cam.data.subarray(i * h * w, (i + 1) * h * w);
    let max = 0;
    for (const v of plane) if (v > max) max = v;
    const heat = new Float32Array(plane.length);
    if (max > 0) for (let j = 0; j < plane.length; j++) heat[j] = plane[j] / max;
    const photo =
      resize === 'squash' ? await displayPhoto(images[i], displaySize) : upscale(input.images[i], displaySize);
    let overlay = await drawOverlay(
      await photo,
      { data: heat, width: w, height: h },
      { colormap, alpha, range: [0, 1] },
    );
    const targetBox = cam.boxes?.[i];
    if (targetBox) overlay = await drawBox(overlay, targetBox, input.shape[3], input.shape[2]);
    const target: Prediction = {
      class: cam.classes[i],
      name: className(model, cam.classes[i]),
      probability: cam.probabilities[i],
    };
    const predictions = seg
      ? classesByArea(model, seg, i, top)
      : dets
        ? topDetections(model, dets[i], top)
        : topPredictions(model, logits!, i, top);
    const pixels = cam.maskPixels?.[i];
    const rank = box === 0 ? 'top box' : `box #${box + 1} by score`;
    const framed = await frameHeatmap(model, overlay, {
      title: `Grad-CAM · ${options.layer}${seg ? ' · class over its mask' : dets ? ` · ${rank}` : ''}`,
      target,
      colormap,
      scale: ['0', 'max', `${dets ? 'box' : 'class'} evidence (CAM / its maximum)`],
      predictions,
      ...(seg ? { predictionsTitle: 'Predicted classes by area (share of pixels):' } : {}),
      ...(dets ? { predictionsTitle: 'Top detections by score:' } : {}),
      note:
        pixels === 0
          ? 'The class is predicted on no pixel: its mask is empty and the CAM is zero.'
          : max <= 0
            ? `The CAM is zero everywhere: no positive evidence for this ${dets ? 'box' : 'class'} at this layer.`
            : pixels !== undefined
              ? `score: class logit summed over its mask (${pixels} px); p: mean there`
              : targetBox
                ? `score: the white box's (${targetBox.map((v) => v.toFixed(0)).join(', ')} px)`
                : undefined,
    });
    results.push({
      source: input.images[i].source,
      layer: options.layer,
      target,
      predictions,
      heatmap: { data: heat, width: w, height: h },
      rawMax: max,
      ...(pixels !== undefined ? { maskPixels: pixels } : {}),
      ...(targetBox ? { box: targetBox } : {}),
      ...framed,
      weights,
    });
  }
  return results;
}

/** One image's highest-scoring detections (score as the probability). */
function topDetections(model: Model, d: Detections, count: number): Prediction[] {
  return detectionOrder(d)
    .slice(0, count)
    .map((k) => ({ class: d.labels.data[k], name: className(model, d.labels.data[k]), probability: d.scores.data[k] }));
}

/** `canvas` with a box (x1, y1, x2, y2 in the input's `inW` x `inH` pixels) outlined, white over black. */
function drawBox(
  canvas: RgbCanvas,
  box: [number, number, number, number],
  inW: number,
  inH: number,
): Promise<RgbCanvas> {
  const sx = canvas.width / inW,
    sy = canvas.height / inH;
  const [x1, y1, x2, y2] = [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy];
  return drawSvg(canvas, outlineRect(x1, y1, x2, y2, '#000', 4) + outlineRect(x1, y1, x2, y2, '#fff', 2));
}

/** A segmentation output's classes for image `n`, by the share of pixels predicted as each (largest first). */
function classesByArea(model: Model, logits: TensorValue, n: number, count: number): Prediction[] {
  const { mask } = argmaxMask(logits, n);
  const counts = new Map<number, number>();
  for (const c of mask) counts.set(c, (counts.get(c) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .slice(0, count)
    .map(([c, k]) => ({ class: c, name: className(model, c), probability: k / mask.length }));
}

/** The original photo (EXIF-oriented), scaled so its longer side is `size`: squash covers all of it. */
export async function displayPhoto(
  image: ImageSource,
  size: number,
): Promise<{ rgb: Buffer; width: number; height: number }> {
  const src =
    typeof image === 'string' || Buffer.isBuffer(image)
      ? image
      : image instanceof Uint8Array
        ? Buffer.from(image)
        : await image.clone().png().toBuffer();
  const { data, info } = await sharp(src, { autoOrient: true })
    .removeAlpha()
    .toColourspace('srgb')
    .resize({ width: size, height: size, fit: 'inside' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { rgb: data, width: info.width, height: info.height };
}

export async function upscale(
  img: { rgb: Buffer; width: number; height: number },
  size: number,
): Promise<{ rgb: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(img.rgb, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize({ width: size, height: size, fit: 'inside', kernel: 'cubic' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { rgb: data, width: info.width, height: info.height };
}

const pct = (p: number) => `${(p * 100).toFixed(p >= 0.1 ? 1 : 2)}%`;

export interface HeatmapFrame {
  title: string;
  /** The class whose score the map explains (the subtitle). */
  target: Prediction;
  colormap: ColormapName;
  /** Colour bar: the labels of its two ends and its caption. */
  scale: [string, string, string];
  predictions: Prediction[];
  /** The heading of the predictions (default 'Top predictions:'). */
  predictionsTitle?: string;
  /** A line after the predictions (e.g. that the map is empty). */
  note?: string;
}

/** Frame a heatmap overlay: weights banner, title, the overlay, a colour bar and the top predictions. */
export async function frameHeatmap(
  model: Model,
  overlay: RgbCanvas,
  o: HeatmapFrame,
): Promise<{ png: Buffer; width: number; height: number }> {
  const width = Math.max(overlay.width, 420);
  const titleH = 48;
  const barH = 34;
  const lineH = 19;
  const lines = [
    o.predictionsTitle ?? `Top predictions:`,
    ...o.predictions.map((p, k) => `${k + 1}. ${p.name} (class ${p.class}) — ${pct(p.probability)}`),
  ];
  if (o.note) lines.push(o.note);
  const captionH = lines.length * lineH + 12;
  const photoTop = BANNER_HEIGHT + titleH;
  const height = photoTop + overlay.height + barH + captionH;
  const canvas: RgbCanvas = { data: Buffer.alloc(width * height * 3, 255), width, height };
  await drawBanner(canvas, model.metadata);
  const ink = parseColor(INK, 'ink');
  await drawText(canvas, [{ text: fitText(o.title, 15, width - 20), x: 10, y: BANNER_HEIGHT + 20 }], {
    size: 15,
    colour: ink,
    bold: true,
    anchor: 'start',
  });
  const subtitle = `target: ${o.target.name} (class ${o.target.class}), p = ${pct(o.target.probability)}`;
  await drawText(canvas, [{ text: fitText(subtitle, 12, width - 20), x: 10, y: BANNER_HEIGHT + 40 }], {
    size: 12,
    colour: ink,
    anchor: 'start',
  });
  blit(canvas, overlay, Math.floor((width - overlay.width) / 2), photoTop);
  // Colour bar: the colour map from its first colour (left) to its last (right), in a grey frame.
  const barY = photoTop + overlay.height + 8;
  const barX = 60;
  const barW = width - 120;
  fillRect(canvas, barX - 1, barY - 1, barW + 2, 12, [153, 153, 153]);
  for (let x = 0; x < barW; x++)
    fillRect(canvas, barX + x, barY, 1, 10, colormapRGB(o.colormap, x / Math.max(1, barW - 1)));
  await drawText(canvas, [{ text: o.scale[0], x: barX - 6, y: barY + 10 }], { size: 11, colour: ink, anchor: 'end' });
  await drawText(canvas, [{ text: o.scale[1], x: barX + barW + 6, y: barY + 10 }], {
    size: 11,
    colour: ink,
    anchor: 'start',
  });
  await drawText(canvas, [{ text: o.scale[2], x: width / 2, y: barY + 23 }], {
    size: 10,
    colour: parseColor(MUTED, 'muted'),
  });
  const captionTop = photoTop + overlay.height + barH + 16;
  await drawText(canvas, [{ text: fitText(lines[0], 12, width - 20), x: 10, y: captionTop }], {
    size: 12,
    colour: ink,
    bold: true,
    anchor: 'start',
  });
  await drawText(
    canvas,
    lines.slice(1).map((l, k) => ({ text: fitText(l, 12, width - 20), x: 10, y: captionTop + (k + 1) * lineH })),
    { size: 12, colour: ink, anchor: 'start' },
  );
  return { png: await encodePng(canvas), width, height };
}
