/**
 * Vision Transformer attention: the per-head attention weights featscope captures from each
 * nn.MultiheadAttention call (`<module path>.weights`, [N, heads, L, L], native/attention_hooks.h),
 * attention rollout (Abnar & Zuidema 2020) and the class token's attention per head, as overlays.
 */
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { Model } from '../model';
import type { ImageSource, PreprocessResult } from '../preprocess';
import { type RgbCanvas, blit, encodePng } from '../render/canvas';
import { type ColormapName, checkColormap } from '../render/colormaps';
import { parseColor } from '../render/color';
import { drawOverlay } from '../render/overlay';
import { drawText } from '../render/text';
import { type Prediction, topPredictions } from './common';
import { BANNER_HEIGHT, drawBanner } from '../render/frame';
import { INK, fitText } from '../render/svg';
import { displayPhoto, frameHeatmap, upscale } from './gradcam';

export const ATTENTION_SUFFIX = '.weights';

/** Attention weights of one layer: [N, heads, L, L] (rows: queries, columns: keys). */
export interface AttentionWeights {
  shape: number[];
  data: Float32Array;
}

function checkWeights(w: AttentionWeights, where: string): [number, number, number] {
  const s = w?.shape;
  if (!Array.isArray(s) || s.length !== 4 || s[2] !== s[3] || w.data?.length !== s[0] * s[1] * s[2] * s[3])
    throw invalidParameter(where, 'attention weights of shape [N, heads, L, L]', s);
  return [s[0], s[1], s[2]];
}

/**
 * Attention rollout (Abnar & Zuidema 2020), per image: each layer's weights are averaged over
 * heads (the mean, as in the paper), the residual path is added as 0.5·A + 0.5·I, each row is
 * normalised to sum 1, and the layers are multiplied in order: R = Â_L ··· Â_2 Â_1.
 * Returns [N, L, L] (float64 arithmetic, float32 result).
 */
export function attentionRollout(layers: readonly AttentionWeights[]): { shape: number[]; data: Float32Array } {
  if (!Array.isArray(layers) || layers.length === 0)
    throw invalidParameter('attention layers', 'at least one layer of attention weights', layers);
  const [n, , l] = checkWeights(layers[0], 'attention weights');
  const out = new Float32Array(n * l * l);
  for (let b = 0; b < n; b++) {
    let r = new Float64Array(l * l);
    for (let i = 0; i < l; i++) r[i * l + i] = 1;
    for (const [k, w] of layers.entries()) {
      const [nk, heads, lk] = checkWeights(w, `attention weights of layer ${k}`);
      if (nk !== n || lk !== l)
        throw invalidParameter('attention weights', `all layers of shape [${n}, heads, ${l}, ${l}]`, w.shape);
      const a = new Float64Array(l * l);
      for (let h = 0; h < heads; h++) {
        const off = (b * heads + h) * l * l;
        for (let i = 0; i < l * l; i++) a[i] += w.data[off + i] / heads;
      }
      for (let i = 0; i < l; i++) {
        let sum = 0;
        for (let j = 0; j < l; j++) {
          a[i * l + j] = 0.5 * a[i * l + j] + (i === j ? 0.5 : 0);
          sum += a[i * l + j];
        }
        for (let j = 0; j < l; j++) a[i * l + j] /= sum;
      }
      const next = new Float64Array(l * l);
      for (let i = 0; i < l; i++)
        for (let k2 = 0; k2 < l; k2++) {
          const v = a[i * l + k2];
          if (v === 0) continue;
          for (let j = 0; j < l; j++) next[i * l + j] += v * r[k2 * l + j];
        }
      r = next;
    }
    for (let i = 0; i < l * l; i++) out[b * l * l + i] = r[i];
  }
  return { shape: [n, l, l], data: out };
}

/** The model's patch grid and class-token count (model.metadata.tokens, written by export-model.py). */
export function tokenGrid(model: Model): { classTokens: number; grid: [number, number] } {
  const t = model.metadata.tokens;
  if (t?.layout === 'NHWC')
    throw new FeatscopeError(
      'NOT_A_TRANSFORMER',
      `model ${model.path} is a windowed transformer (${model.metadata.architecture ?? 'channel-last tokens'}): its attention runs per shifted window, not through nn.MultiheadAttention over all patches, so it has no attention weights to capture or roll out; its blocks' outputs render as maps (featscope render --layers features.1.0), and featscope gradcam and predict --eigencam work on them`,
    );
  if (!t || t.layout !== 'NLD' || !t.grids?.length)
    throw new FeatscopeError(
      'NOT_A_TRANSFORMER',
      `model ${model.path} stores no ViT token layout (featscope.json "tokens"); export it with scripts/export-model.py --arch vit_b_16 (or another VisionTransformer)`,
    );
  return { classTokens: t.classTokens, grid: t.grids[0] };
}

/** Row `row` of an [N, L, L] matrix over the patch tokens, as one [gh, gw] map per image. */
export function classTokenRow(
  m: { shape: number[]; data: Float32Array },
  classTokens: number,
  grid: [number, number],
  row = 0,
): Float32Array[] {
  const [n, l] = [m.shape[0], m.shape[m.shape.length - 1]];
  const per = m.data.length / n;
  const [gh, gw] = grid;
  if (classTokens + gh * gw !== l)
    throw invalidParameter(
      'attention weights',
      `${classTokens} class token(s) + ${gh}x${gw} patches = ${classTokens + gh * gw} tokens`,
      l,
    );
  const out: Float32Array[] = [];
  for (let b = 0; b < n; b++) out.push(m.data.slice(b * per + row * l + classTokens, b * per + row * l + l));
  return out;
}

/** The attention layers (`…self_attention.weights`) of a model, in call order. */
export async function attentionLayers(model: Model): Promise<string[]> {
  return (await model.layers()).filter((l) => l.type === 'AttentionWeights' && l.calls > 0).map((l) => l.name);
}

export interface AttentionOverlayOptions {
  /** Layers whose class-token attention is drawn per head (default: the last attention layer). */
  layers?: string[];
  resize?: 'squash' | 'crop';
  colormap?: ColormapName;
  displaySize?: number;
  top?: number;
}

export interface AttentionOverlay {
  source: string;
  predictions: Prediction[];
  /** Rollout over every attention layer up to the last of `layers`: class token's row over the patches. */
  rollout: { png: Buffer; map: Float32Array; grid: [number, number]; layers: string[] };
  /** Per layer: the class token's attention per head, one PNG with a map per head. */
  heads: Array<{ layer: string; png: Buffer; maps: Float32Array[] }>;
}

function rangeOf(a: Float32Array): [number, number] {
  let mn = Infinity;
  let mx = -Infinity;
  for (const v of a) {
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  return mn < mx ? [mn, mx] : [mn, mn + 1e-12];
}

/** Rollout and per-head class-token overlays for each image of a preprocessed batch. */
export async function attentionOverlaysOf(
  model: Model,
  input: PreprocessResult,
  images: readonly ImageSource[],
  options: AttentionOverlayOptions = {},
): Promise<AttentionOverlay[]> {
  checkKnownKeys('attention options', options, ['layers', 'resize', 'colormap', 'displaySize', 'top']);
  const { classTokens, grid } = tokenGrid(model);
  const all = await attentionLayers(model);
  if (all.length === 0)
    throw new FeatscopeError('NOT_A_TRANSFORMER', `model ${model.path} calls no nn.MultiheadAttention`);
  const wanted = (options.layers?.length ? options.layers : [all[all.length - 1]]).map((n) =>
    n.endsWith(ATTENTION_SUFFIX) ? n : n + ATTENTION_SUFFIX,
  );
  for (const w of wanted)
    if (!all.includes(w))
      throw new FeatscopeError(
        'UNKNOWN_LAYER',
        `${w} is not an attention layer of ${model.path}; the attention layers are ${all.join(', ')}`,
      );
  const last = Math.max(...wanted.map((w) => all.indexOf(w)));
  const rolled = all.slice(0, last + 1);
  const colormap = checkColormap(options.colormap ?? 'turbo');
  const displaySize = options.displaySize ?? 448;
  const resize = options.resize ?? 'squash';
  const res = await model.forward(input, { layers: rolled, optimize: false });
  const weights = rolled.map((name) => res.get(name));
  const rollout = classTokenRow(attentionRollout(weights), classTokens, grid);
  const out: AttentionOverlay[] = [];
  const [gh, gw] = grid;
  for (let i = 0; i < input.images.length; i++) {
    const photo =
      resize === 'squash' ? await displayPhoto(images[i], displaySize) : await upscale(input.images[i], displaySize);
    const predictions =
      res.output && res.output.shape.length === 2 ? topPredictions(model, res.output, i, options.top ?? 3) : [];
    const target = predictions[0] ?? { class: -1, name: 'n/a', probability: NaN };
    const map = rollout[i];
    const [mn, mx] = rangeOf(map);
    // Colours span the map's own range (a near-uniform rollout would be one colour from 0).
    const overlay = await drawOverlay(photo, { data: map, width: gw, height: gh }, { colormap, range: [mn, mx] });
    const framed = await frameHeatmap(model, overlay, {
      title: `Attention rollout · ${rolled.length} layer${rolled.length === 1 ? '' : 's'} (head mean)`,
      target,
      colormap,
      scale: [mn.toPrecision(3), mx.toPrecision(3), "class token's rolled-out attention to each patch"],
      predictions,
    });
    const heads: AttentionOverlay['heads'] = [];
    for (const layer of wanted) {
      const w = res.get(layer);
      const h = w.shape[1];
      const l = w.shape[2];
      const maps: Float32Array[] = [];
      for (let k = 0; k < h; k++) {
        const off = ((i * h + k) * l + 0) * l; // row 0: the class token's query
        maps.push(w.data.slice(off + classTokens, off + l));
      }
      heads.push({ layer, maps, png: await headStrip(model, photo, maps, grid, layer, colormap) });
    }
    out.push({
      source: input.images[i].source,
      predictions,
      rollout: { png: framed.png, map, grid, layers: rolled },
      heads,
    });
  }
  return out;
}

/** One picture: the weights banner, a title, and per head the class token's attention over the photo. */
async function headStrip(
  model: Model,
  photo: { rgb: Buffer; width: number; height: number },
  maps: Float32Array[],
  grid: [number, number],
  layer: string,
  colormap: ColormapName,
): Promise<Buffer> {
  const tile = 160;
  const small = await displayPhotoScaled(photo, tile);
  const cols = Math.min(maps.length, 6);
  const rows = Math.ceil(maps.length / cols);
  const labelH = 34;
  const titleH = 44;
  const width = Math.max(cols * (small.width + 8) + 8, 420);
  const height = BANNER_HEIGHT + titleH + rows * (small.height + labelH);
  const canvas: RgbCanvas = { data: Buffer.alloc(width * height * 3, 255), width, height };
  await drawBanner(canvas, model.metadata);
  const ink = parseColor(INK, 'ink');
  await drawText(canvas, [{ text: 'Class-token attention per head', x: 10, y: BANNER_HEIGHT + 18 }], {
    size: 13,
    colour: ink,
    bold: true,
    anchor: 'start',
  });
  await drawText(canvas, [{ text: fitText(layer, 11, width - 20), x: 10, y: BANNER_HEIGHT + 35 }], {
    size: 11,
    colour: ink,
    anchor: 'start',
  });
  for (const [k, m] of maps.entries()) {
    const [mn, mx] = rangeOf(m);
    const ov = await drawOverlay(small, { data: m, width: grid[1], height: grid[0] }, { colormap, range: [mn, mx] });
    const x = 8 + (k % cols) * (small.width + 8);
    const y = BANNER_HEIGHT + titleH + Math.floor(k / cols) * (small.height + labelH);
    blit(canvas, ov, x, y);
    await drawText(
      canvas,
      [
        {
          text: `head ${k}: ${mn.toPrecision(2)} to ${mx.toPrecision(2)}`,
          x: x + small.width / 2,
          y: y + small.height + 14,
        },
      ],
      {
        size: 11,
        colour: ink,
      },
    );
    await drawText(canvas, [{ text: '(colour: min to max)', x: x + small.width / 2, y: y + small.height + 27 }], {
      size: 9,
      colour: ink,
    });
  }
  return encodePng(canvas);
}

async function displayPhotoScaled(
  photo: { rgb: Buffer; width: number; height: number },
  size: number,
): Promise<{ rgb: Buffer; width: number; height: number }> {
  return upscale(photo, size);
}
