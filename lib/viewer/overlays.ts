/**
 * The viewer's overlay pictures, each the library's own: the channel mean framed as the CLI frames
 * it (drawMeanOverlay: weights banner, title, colour bar in real values), Grad-CAM, saliency,
 * Grad-CAM with its deletion/insertion curves, and for ViTs attention rollout beside the class
 * token's attention per head (`featscope attention`'s two pictures).
 */
import sharp from 'sharp';
import { attentionLayers, attentionOverlaysOf, ATTENTION_SUFFIX } from '../analysis/attention';
import { evaluateSaliency } from '../analysis/faithfulness';
import { renderCurvesChart } from '../analysis/faithfulness-chart';
import { displayPhoto, gradCamOverlays, gradCamOverlaysOf } from '../analysis/gradcam';
import { saliencyOverlays } from '../analysis/saliency';
import { encodePng } from '../render/canvas';
import { drawMeanOverlay } from '../render/frame';
import { finiteRange } from '../render/overlay';
import type { ViewerImage, ViewerState } from './state';

export const OVERLAY_KINDS = ['mean', 'gradcam', 'saliency', 'faithfulness', 'attention'] as const;
export type OverlayKind = (typeof OVERLAY_KINDS)[number];

export interface OverlayPicture {
  png: Buffer;
  info: Record<string, unknown>;
}

/** Two PNGs side by side on white, top-aligned. */
async function besideEachOther(left: Buffer, right: Buffer): Promise<Buffer> {
  const [a, b] = await Promise.all([sharp(left).metadata(), sharp(right).metadata()]);
  const height = Math.max(a.height ?? 0, b.height ?? 0);
  return sharp({
    create: { width: (a.width ?? 0) + (b.width ?? 0), height, channels: 3, background: '#ffffff' },
  })
    .composite([
      { input: left, left: 0, top: 0 },
      { input: right, left: a.width ?? 0, top: 0 },
    ])
    .png()
    .toBuffer();
}

export async function overlayPicture(
  state: ViewerState,
  kind: OverlayKind,
  index: number,
  img: ViewerImage,
  layer: string,
  classes: number | undefined,
): Promise<OverlayPicture> {
  const model = state.models[index];
  if (kind === 'mean') {
    // The library's mean overlay on the photo, framed as the CLI frames it.
    const f = await state.layerMaps(index, img, layer);
    const photo = await displayPhoto(img.source, 448);
    const { canvas: framed, range } = await drawMeanOverlay(
      photo,
      f.capture,
      { alpha: 0.5, colormap: 'turbo' },
      { metadata: model.metadata, title: `${layer} · channel mean` },
    );
    return { png: await encodePng(framed), info: { min: range[0], max: range[1] } };
  }
  if (kind === 'gradcam') {
    const [r] = await gradCamOverlays(model, [img.source], { layer, classes, top: 3 });
    return { png: r.png, info: { target: r.target, rawMax: r.rawMax } };
  }
  if (kind === 'faithfulness') {
    // Grad-CAM with its deletion and insertion curves beside it, as `featscope gradcam --metrics` draws them.
    const x = await state.input(index, img);
    state.forwardCount++;
    const [r] = await gradCamOverlaysOf(model, x, [img.source], { layer, classes, top: 3 });
    const { width: cw, height: ch } = r.heatmap;
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
    const png = await besideEachOther(r.png, chart.png);
    const auc = Object.fromEntries((['deletion', 'insertion'] as const).map((m) => [m, e[m]?.auc ?? null]));
    return { png, info: { target: r.target, auc, step: evaluation.step } };
  }
  if (kind === 'attention') return attentionPicture(state, index, img, layer);
  const [r] = await saliencyOverlays(model, [img.source], { method: 'gradient', classes, top: 3 });
  return { png: r.png, info: { target: r.target } };
}

/**
 * ViTs: `featscope attention`'s rollout picture (every attention layer up to `layer`'s) beside the
 * class token's attention per head of `layer`. `layer` is an attention layer (`….weights`), its
 * MultiheadAttention module, or any other layer (then the last attention layer). The info gives
 * the maps' ranges, so what the colours mean can be read without the picture.
 */
async function attentionPicture(
  state: ViewerState,
  index: number,
  img: ViewerImage,
  layer: string,
): Promise<OverlayPicture> {
  const model = state.models[index];
  const all = await attentionLayers(model);
  const asked = layer.endsWith(ATTENTION_SUFFIX) ? layer : layer + ATTENTION_SUFFIX;
  const layers = all.includes(asked) ? [asked] : undefined; // undefined: the library's default, the last one
  const x = await state.input(index, img);
  state.forwardCount++;
  const [a] = await attentionOverlaysOf(model, x, [img.source], { layers, top: 3 });
  const [rmin, rmax] = finiteRange(a.rollout.map);
  const heads = a.heads[0];
  const png = await besideEachOther(a.rollout.png, heads.png);
  return {
    png,
    info: {
      target: a.predictions[0] ?? null,
      rollout: { layers: a.rollout.layers, grid: a.rollout.grid, min: rmin, max: rmax },
      heads: { layer: heads.layer, ranges: heads.maps.map((m) => finiteRange(m)) },
    },
  };
}
