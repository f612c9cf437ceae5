/**
 * Adversarial paths: FGSM and PGD against a target class (default: each image's prediction on
 * the clean input), and how far each layer's activations move.
 *
 * The space: the model sees normalised inputs x_n = (x - mean_c) / std_c, with x the RGB pixel
 * in [0, 1]. `epsilon` and `stepSize` are given in pixel units (8/255 is the usual ImageNet ε) and
 * applied per channel as ε / std_c in normalised space, so that the perturbation of each pixel is
 * at most ε in [0, 1] units. After every step the input is clamped to the normalised image of
 * [0, 1], i.e. [(0 - mean_c) / std_c, (1 - mean_c) / std_c].
 *
 *   FGSM: x' = clamp(x + ε_c · sign(∇x CE(f(x), y)))
 *   PGD:  x_{k+1} = clamp(project_{|x' - x|_∞ <= ε_c}(x_k + α_c · sign(∇x CE(f(x_k), y)))), x_0 = x
 *
 * sign(0) = 0. The loss is the cross-entropy summed over the batch (each image's gradient is that
 * of its own loss). PGD starts at the clean input (no random start), so it is deterministic.
 */
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { Model } from '../model';
import { checkInput } from '../model';
import { type ColormapName } from '../render/colormaps';
import { renderChannelGrid } from '../render/grid';
import type { Capture, TensorInput } from '../types';
import {
  type Prediction,
  className,
  normalisationOf,
  softmaxRow,
  sumSquares,
  topPredictions,
  weightsOf,
} from './common';
import { type Bar, barChart, niceTicks, labelSpace } from '../render/chart';
import { formatNumber } from '../render/format';
import { BANNER_HEIGHT, weightsBanner } from '../render/frame';
import { MUTED, fitText, svgDocument, svgToPng, text } from '../render/svg';
import { weightLayers } from './flow';
import sharp from 'sharp';

export interface AttackOptions {
  /** Largest change of a pixel, in [0, 1] pixel units (e.g. 8/255). */
  epsilon: number;
  /** Target class per image, one for all, or omitted for each image's clean top-1 prediction. */
  classes?: number | number[];
  /** Layers whose activations to compare; default every Conv2d and Linear layer, in call order. */
  layers?: string[];
  /** Override the model's normalisation (default: its metadata, else ImageNet's). */
  mean?: readonly number[];
  std?: readonly number[];
}

export interface PgdOptions extends AttackOptions {
  /** Step size α in pixel units; default epsilon / 4. */
  stepSize?: number;
  /** Number of steps; default 10. */
  steps?: number;
}

export interface ImageOutcome {
  /** The attacked class (the true or predicted class). */
  target: { class: number; name: string };
  before: { top: Prediction; targetProbability: number };
  after: { top: Prediction; targetProbability: number };
  /** True when the top-1 prediction changed. */
  flipped: boolean;
  /** max |x' - x| over the image, in pixel units: <= epsilon for inputs inside [0, 1] (the clamp moves pixels that start outside). */
  linf: number;
}

export interface LayerDivergence {
  name: string;
  shape: number[];
  /** ||A(x') - A(x)||_2 / ||A(x)||_2 over the whole batch (0 when A(x) is all zeros and unchanged). */
  divergence: number;
  /** The same per image. */
  perImage: number[];
}

export interface PathStep {
  step: number;
  /** The summed cross-entropy at x_k (before step k's update); absent for the final iterate. */
  loss?: number;
  /** The softmax probability of the target class at x_k, per image. */
  targetProbability: number[];
}

export interface AttackResult {
  method: 'fgsm' | 'pgd';
  epsilon: number;
  stepSize?: number;
  steps?: number;
  /** The attacked input, normalised, same shape as the input. */
  adversarial: { data: Float32Array; shape: number[] };
  images: ImageOutcome[];
  layers: LayerDivergence[];
  /** PGD: the loss and target probability at each iterate, ending with the final one. */
  path?: PathStep[];
  /** The feature-map layer (4-D output) that diverges most: the one to show side by side. */
  mostDivergent?: string;
  weights: { trained: boolean | undefined; text: string };
}

interface Space {
  plane: number;
  channels: number;
  /** Per channel: step scale 1/std, and the normalised bounds of [0, 1]. */
  invStd: number[];
  lo: number[];
  hi: number[];
  std: number[];
}

function spaceOf(model: Model, shape: number[], o: AttackOptions): Space {
  const norm = normalisationOf(model);
  const mean = (o.mean ?? norm.mean).map(Number);
  const std = (o.std ?? norm.std).map(Number);
  const c = shape[1];
  if (mean.length !== c || std.length !== c || !std.every((s) => s > 0) || !mean.every(Number.isFinite)) {
    throw invalidParameter('mean/std', `${c} finite values each (std > 0), one per input channel`, { mean, std });
  }
  return {
    plane: shape[2] * shape[3],
    channels: c,
    invStd: std.map((s) => 1 / s),
    lo: mean.map((m, i) => (0 - m) / std[i]),
    hi: mean.map((m, i) => (1 - m) / std[i]),
    std,
  };
}

function checkPixelAmount(name: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1))
    throw invalidParameter(name, 'a number from 0 to 1 (pixel units; 8/255 ≈ 0.031)', v);
  return v;
}

/**
 * One signed-gradient step in place: x += amount / std_c · sign(g), then (PGD) projection on the
 * ε-ball around x0, then the clamp to valid pixels. Float32 arithmetic in the same order as
 * `x + eps_c * sign(g)` in torch.
 */
function signedStep(
  x: Float32Array,
  g: Float32Array,
  amount: number,
  s: Space,
  ball?: { x0: Float32Array; epsilon: number },
): void {
  const perImage = s.channels * s.plane;
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor((i % perImage) / s.plane);
    const sign = g[i] > 0 ? 1 : g[i] < 0 ? -1 : 0;
    const step = Math.fround(Math.fround(amount * s.invStd[c]) * sign);
    let v = Math.fround(x[i] + step);
    if (ball) {
      const r = Math.fround(ball.epsilon * s.invStd[c]);
      const lo = Math.fround(ball.x0[i] - r),
        hi = Math.fround(ball.x0[i] + r);
      v = v < lo ? lo : v > hi ? hi : v;
    }
    const lo = Math.fround(s.lo[c]),
      hi = Math.fround(s.hi[c]);
    x[i] = v < lo ? lo : v > hi ? hi : v;
  }
}

const ATTACK_KEYS = ['epsilon', 'classes', 'layers', 'mean', 'std'] as const;

/** Fast gradient sign method: one step of size ε. */
export async function fgsm(model: Model, input: TensorInput, options: AttackOptions): Promise<AttackResult> {
  if (!options || typeof options !== 'object')
    throw invalidParameter('fgsm options', 'an object with epsilon', options);
  checkKnownKeys('fgsm', options, ATTACK_KEYS);
  const epsilon = checkPixelAmount('epsilon', options.epsilon);
  const x0 = checkInput(input);
  const s = spaceOf(model, x0.shape, options);
  const first = await model.backward(x0, { classes: options.classes, loss: 'cross-entropy', inputGrad: true });
  const adv = Float32Array.from(x0.data);
  signedStep(adv, first.inputGrad!, epsilon, s);
  return finish(model, 'fgsm', x0, adv, s, first, options, { epsilon });
}

/** Projected gradient descent (L∞, Madry et al.): `steps` signed steps of `stepSize`, kept within ε. */
export async function pgd(model: Model, input: TensorInput, options: PgdOptions): Promise<AttackResult> {
  if (!options || typeof options !== 'object') throw invalidParameter('pgd options', 'an object with epsilon', options);
  checkKnownKeys('pgd', options, [...ATTACK_KEYS, 'stepSize', 'steps']);
  const epsilon = checkPixelAmount('epsilon', options.epsilon);
  const stepSize = checkPixelAmount('stepSize', options.stepSize ?? epsilon / 4);
  const steps = options.steps ?? 10;
  if (!Number.isInteger(steps) || steps < 1 || steps > 10000)
    throw invalidParameter('steps', 'an integer from 1 to 10000', steps);
  const x0 = checkInput(input);
  const s = spaceOf(model, x0.shape, options);
  const first = await model.backward(x0, { classes: options.classes, loss: 'cross-entropy', inputGrad: true });
  const classes = first.classes;
  const adv = Float32Array.from(x0.data);
  const path: PathStep[] = [];
  let r = first;
  for (let k = 0; k < steps; k++) {
    if (k > 0)
      r = await model.backward({ data: adv, shape: x0.shape }, { classes, loss: 'cross-entropy', inputGrad: true });
    path.push({ step: k, loss: r.loss, targetProbability: targetProbabilities(r.output, classes) });
    signedStep(adv, r.inputGrad!, stepSize, s, { x0: x0.data, epsilon });
  }
  const result = await finish(model, 'pgd', x0, adv, s, first, options, { epsilon, stepSize, steps });
  const k = x0.shape[0];
  path.push({ step: steps, targetProbability: result.images.slice(0, k).map((im) => im.after.targetProbability) });
  result.path = path;
  return result;
}

function targetProbabilities(output: { shape: number[]; data: Float32Array }, classes: number[]): number[] {
  return classes.map((c, n) => softmaxRow(output.data, output.shape[1], n)[c]);
}

async function finish(
  model: Model,
  method: 'fgsm' | 'pgd',
  x0: { data: Float32Array; shape: number[] },
  adv: Float32Array,
  s: Space,
  first: { output: { shape: number[]; data: Float32Array }; classes: number[] },
  options: AttackOptions,
  params: { epsilon: number; stepSize?: number; steps?: number },
): Promise<AttackResult> {
  const layers = options.layers ?? (await weightLayers(model));
  const advInput = { data: adv, shape: x0.shape };
  // The exact graph, as the gradients that made the attack: predictions and divergences in the same numerics.
  const clean = await model.forward(x0, { layers, optimize: false });
  const attacked = await model.forward(advInput, { layers, optimize: false });
  const before = first.output;
  const after = attacked.output!;
  const n = x0.shape[0];
  const perImage = adv.length / n;
  const images: ImageOutcome[] = [];
  for (let i = 0; i < n; i++) {
    const target = first.classes[i];
    let linf = 0;
    for (let j = i * perImage; j < (i + 1) * perImage; j++) {
      const c = Math.floor((j % perImage) / s.plane);
      linf = Math.max(linf, Math.abs(adv[j] - x0.data[j]) * s.std[c]);
    }
    const pb = softmaxRow(before.data, before.shape[1], i);
    const pa = softmaxRow(after.data, after.shape[1], i);
    const topBefore = topPredictions(model, before, i, 1)[0];
    const topAfter = topPredictions(model, after, i, 1)[0];
    images.push({
      target: { class: target, name: className(model, target) },
      before: { top: topBefore, targetProbability: pb[target] },
      after: { top: topAfter, targetProbability: pa[target] },
      flipped: topBefore.class !== topAfter.class,
      linf,
    });
  }
  const divergences = attacked.captures.map((a) => divergence(clean.get(a.name), a));
  const maps = divergences.filter((d) => d.shape.length === 4);
  const mostDivergent = maps.length ? maps.reduce((m, d) => (d.divergence > m.divergence ? d : m)).name : undefined;
  return {
    method,
    ...params,
    adversarial: { data: adv, shape: x0.shape },
    images,
    layers: divergences,
    mostDivergent,
    weights: weightsOf(model),
  };
}

/** Relative L2 distance between clean and attacked captures of one layer, per image and overall. */
export function divergence(clean: Capture, attacked: Capture): LayerDivergence {
  const n = clean.shape[0];
  const per = clean.data.length / n;
  let num = 0,
    den = 0;
  const perImage: number[] = [];
  for (let i = 0; i < n; i++) {
    let d = 0;
    for (let j = i * per; j < (i + 1) * per; j++) {
      const e = attacked.data[j] - clean.data[j];
      d += e * e;
    }
    const c = sumSquares(clean.data, i * per, (i + 1) * per);
    perImage.push(c > 0 ? Math.sqrt(d / c) : d > 0 ? Infinity : 0);
    num += d;
    den += c;
  }
  return {
    name: clean.name,
    shape: clean.shape,
    divergence: den > 0 ? Math.sqrt(num / den) : num > 0 ? Infinity : 0,
    perImage,
  };
}

/** Bar chart of per-layer relative L2 divergence (the most divergent feature-map layer highlighted), plus the PGD path. */
export async function renderDivergenceChart(
  model: Model,
  result: AttackResult,
  options: { subject?: string; image?: number } = {},
): Promise<{ png: Buffer; width: number; height: number }> {
  checkKnownKeys('renderDivergenceChart', options, ['subject', 'image']);
  const img = options.image;
  const bars: Bar[] = result.layers.map((l) => ({
    label: l.name,
    value: img === undefined ? l.divergence : l.perImage[img],
    highlight: l.name === result.mostDivergent,
  }));
  const width = Math.max(900, 40 + bars.length * 34);
  const chartH = 40 + 280 + labelSpace(bars, bars.length > 24 ? 10 : 11);
  const head = BANNER_HEIGHT + 80;
  const pathH = result.path ? 250 : 0;
  const height = head + chartH + pathH + 10;
  const method =
    result.method === 'fgsm'
      ? `FGSM, ε = ${pixels(result.epsilon)}`
      : `PGD, ε = ${pixels(result.epsilon)}, step ${pixels(result.stepSize!)}, ${result.steps} steps`;
  const shown = img === undefined ? result.images : [result.images[img]];
  const outcome = shown
    .slice(0, 1)
    .flatMap((im) => [
      `prediction: ${im.before.top.name} ${(im.before.top.probability * 100).toFixed(1)}% → ${im.after.top.name} ${(im.after.top.probability * 100).toFixed(1)}%${im.flipped ? ' (flipped)' : ' (unchanged)'}`,
      `target ${im.target.name} (class ${im.target.class}): ${(im.before.targetProbability * 100).toFixed(2)}% → ${(im.after.targetProbability * 100).toFixed(2)}%${shown.length > 1 ? ` · first of ${shown.length} images` : ''}`,
    ]);
  const parts = [
    weightsBanner(model.metadata, width),
    text(
      12,
      BANNER_HEIGHT + 22,
      fitText(`Adversarial divergence · ${method}${options.subject ? ` · ${options.subject}` : ''}`, 16, width - 24),
      { size: 16, weight: 'bold' },
    ),
    ...outcome.map((l, i) =>
      text(12, BANNER_HEIGHT + 43 + i * 17, fitText(l, 12, width - 24), { size: 12, fill: MUTED }),
    ),
    barChart({
      x: 0,
      y: head,
      width,
      height: chartH,
      title: 'Relative L2 change of each layer’s output: ||A(x′) − A(x)|| / ||A(x)||',
      yLabel: 'relative L2 change',
      bars,
      log: false,
      legend: result.mostDivergent ? [['#e07b39', `most divergent feature map: ${result.mostDivergent}`]] : undefined,
    }),
  ];
  if (result.path) parts.push(pathChart(result, 0, head + chartH + 10, width, pathH - 10, img ?? 0));
  return { png: await svgToPng(svgDocument(width, height, parts.join(''))), width, height };
}

function pixels(v: number): string {
  const k = v * 255;
  return Math.abs(k - Math.round(k)) < 1e-6 ? `${Math.round(k)}/255` : v.toPrecision(3);
}

/** PGD: target-class probability at each iterate (a line), linear axis from 0 to its maximum. */
function pathChart(result: AttackResult, x: number, y: number, width: number, height: number, image: number): string {
  const pts = result.path!.map((p) => p.targetProbability[image]);
  const left = x + 64,
    right = x + width - 16,
    top = y + 34,
    bottom = y + height - 34;
  const ticks = niceTicks(0, Math.max(...pts) || 1);
  const hi = ticks[ticks.length - 1];
  const toX = (k: number) => left + (k / Math.max(1, pts.length - 1)) * (right - left);
  const toY = (v: number) => bottom - (v / hi) * (bottom - top);
  const parts = [
    text(
      x + 4,
      y + 18,
      fitText(
        `PGD path: probability of the target class (${result.images[image].target.name}) at each step`,
        15,
        width - 8,
      ),
      { size: 15, weight: 'bold' },
    ),
  ];
  for (const v of ticks) {
    parts.push(
      `<line x1="${left}" x2="${right}" y1="${toY(v).toFixed(1)}" y2="${toY(v).toFixed(1)}" stroke="#e3e3e3"/>`,
    );
    parts.push(text(left - 6, toY(v) + 4, `${formatNumber(v * 100)}%`, { size: 11, anchor: 'end', fill: MUTED }));
  }
  parts.push(
    text(x + 14, (top + bottom) / 2, 'target probability', { size: 11, anchor: 'middle', fill: MUTED, rotate: -90 }),
  );
  const stride = Math.max(1, Math.ceil(pts.length / 20));
  pts.forEach((_, k) => {
    if (k % stride === 0 || k === pts.length - 1)
      parts.push(text(toX(k), bottom + 15, String(k), { size: 11, anchor: 'middle', fill: MUTED }));
  });
  parts.push(text((left + right) / 2, bottom + 30, 'step', { size: 11, anchor: 'middle', fill: MUTED }));
  parts.push(
    `<polyline points="${pts.map((v, k) => `${toX(k).toFixed(1)},${toY(v).toFixed(1)}`).join(' ')}" fill="none" stroke="#c62828" stroke-width="2"/>`,
  );
  pts.forEach((v, k) =>
    parts.push(`<circle cx="${toX(k).toFixed(1)}" cy="${toY(v).toFixed(1)}" r="3" fill="#c62828"/>`),
  );
  parts.push(
    `<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="#1a1a1a"/><line x1="${left}" x2="${left}" y1="${top}" y2="${bottom}" stroke="#1a1a1a"/>`,
  );
  return parts.join('');
}

/**
 * Clean and attacked feature maps of one layer side by side (the same channels, the top 16 of
 * the clean maps by max, one shared colour range per pair), with the weights banner.
 */
export async function renderAttackGrids(
  model: Model,
  input: TensorInput,
  result: AttackResult,
  options: { layer?: string; image?: number; channels?: number; colormap?: ColormapName } = {},
): Promise<{ png: Buffer; width: number; height: number; layer: string }> {
  checkKnownKeys('renderAttackGrids', options, ['layer', 'image', 'channels', 'colormap']);
  const layer = options.layer ?? result.mostDivergent;
  if (!layer)
    throw new FeatscopeError('NOT_FEATURE_MAPS', 'no compared layer has [N, C, H, W] output to draw as grids');
  const image = options.image ?? 0;
  const [clean] = await model.capture(input, layer, { optimize: false });
  const [attacked] = await model.capture(result.adversarial, layer, { optimize: false });
  if (clean.shape.length !== 4)
    throw new FeatscopeError(
      'NOT_FEATURE_MAPS',
      `layer ${layer} outputs [${clean.shape.join(', ')}], not feature maps`,
    );
  const [, c, h, w] = clean.shape;
  const plane = h * w;
  // Pick the channels once (top by max on the clean input) and draw both with one range.
  const score: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    let m = -Infinity;
    for (let j = 0; j < plane; j++) m = Math.max(m, clean.data[(image * c + ch) * plane + j]);
    score.push(m);
  }
  const count = Math.min(options.channels ?? 16, c);
  const channels = Array.from(score.keys())
    .sort((a, b) => score[b] - score[a] || a - b)
    .slice(0, count);
  const pick = (cap: Capture) => {
    const data = new Float32Array(count * plane);
    channels.forEach((ch, k) =>
      data.set(cap.data.subarray((image * c + ch) * plane, (image * c + ch + 1) * plane), k * plane),
    );
    return data;
  };
  const a = pick(clean),
    b = pick(attacked);
  // One grid of 2·count cells normalised together, then split: both halves share the colour range.
  const both = new Float32Array(2 * count * plane);
  both.set(a, 0);
  both.set(b, count * plane);
  const columns = Math.ceil(Math.sqrt(count));
  const grid = await renderChannelGrid(
    { name: layer, shape: [1, 2 * count, h, w], data: both },
    {
      channels: Array.from({ length: 2 * count }, (_, k) => k),
      normalize: 'shared',
      labels: false,
      columns,
      colormap: options.colormap ?? 'viridis',
    },
  );
  const rowsPer = Math.ceil(count / columns);
  const cellH = grid.layout[0].height,
    gap = 4;
  const half = rowsPer * (cellH + gap) + gap;
  const gw = grid.width;
  const top = await sharp(grid.png)
    .extract({ left: 0, top: 0, width: gw, height: Math.min(half, grid.height) })
    .png()
    .toBuffer();
  const bottom = await sharp(grid.png)
    .extract({ left: 0, top: half - gap, width: gw, height: Math.min(half, grid.height - (half - gap)) })
    .png()
    .toBuffer();
  const sep = 24;
  const head = BANNER_HEIGHT + 70;
  const width = Math.max(2 * gw + sep + 24, 520);
  const height = head + half + 30;
  const div = result.layers.find((l) => l.name === layer);
  const svg = svgDocument(
    width,
    height,
    [
      weightsBanner(model.metadata, width),
      text(
        12,
        BANNER_HEIGHT + 22,
        fitText(`${layer}: clean vs attacked (${result.method.toUpperCase()})`, 16, width - 24),
        { size: 16, weight: 'bold' },
      ),
      text(
        12,
        BANNER_HEIGHT + 42,
        fitText(
          `top ${count} channels by clean max · one shared colour range · relative L2 change ${div ? (div.perImage[image] ?? div.divergence).toFixed(3) : '?'}`,
          12,
          width - 24,
        ),
        { size: 12, fill: MUTED },
      ),
      text(12 + gw / 2, head - 6, 'clean', { size: 13, anchor: 'middle', weight: 'bold' }),
      text(12 + gw + sep + gw / 2, head - 6, 'attacked', { size: 13, anchor: 'middle', weight: 'bold' }),
      text(width / 2, height - 10, `channels: ${channels.join(', ')}`.slice(0, Math.floor(width / 7)), {
        size: 11,
        anchor: 'middle',
        fill: MUTED,
      }),
    ].join(''),
  );
  const png = await sharp(Buffer.from(svg))
    .composite([
      { input: top, top: head, left: 12 },
      { input: bottom, top: head, left: 12 + gw + sep },
    ])
    .removeAlpha()
    .png({ compressionLevel: 6 })
    .toBuffer();
  return { png, width, height, layer };
}
