/**
 * The frame every featscope picture carries: the weights banner (red UNTRAINED for random
 * networks), a title above the picture and caption lines under it; and the framed channel-mean overlay.
 */
import type { ModelMetadata } from '../metadata';
import { weightsLabel } from '../metadata';
import { type RgbCanvas, blit, fillRect } from './canvas';
import { parseColor } from './color';
import type { FeatureMaps } from './capture';
import { withColourBar } from './colour-bar';
import { type OverlayImage, type OverlayOptions, channelMean, drawOverlay, finiteRange } from './overlay';
import { INK, MUTED, fitText, text, textWidth } from './svg';
import { drawText } from './text';

export const BANNER_HEIGHT = 30;
/** Height of frameCanvas's caption band when it has no lines. */
export const FRAME_CAPTION_HEIGHT = 10;

/** What the weights banner says and how it looks. */
export interface BannerSpec {
  fill: string;
  text: string;
  size: number;
  bold: boolean;
  colour: string;
}

/**
 * The weights banner, BANNER_HEIGHT tall: red "UNTRAINED WEIGHTS" for random networks, amber for
 * weights of unknown origin, a grey line naming the source for trained ones.
 */
export function bannerSpec(meta: ModelMetadata, width: number): BannerSpec {
  const label = weightsLabel(meta);
  const size = width < 420 ? 11 : width < 560 ? 12 : 13;
  if (label.trained === false) {
    // The longest form that fits the width.
    const forms = [
      `UNTRAINED WEIGHTS · random network (${meta.weights?.source ?? 'random init'}), not learned features`,
      'UNTRAINED WEIGHTS · random network, not learned features',
      'UNTRAINED WEIGHTS · random network',
    ];
    const detail = forms.find((f) => textWidth(f, size) <= width - 16) ?? fitText(forms[2], size, width - 16);
    return { fill: '#c62828', text: detail, size, bold: true, colour: '#ffffff' };
  }
  if (label.trained === undefined) {
    return {
      fill: '#f9a825',
      text: fitText('WEIGHTS OF UNKNOWN ORIGIN · no featscope metadata in the model file', size, width - 16),
      size,
      bold: true,
      colour: INK,
    };
  }
  return { fill: '#eef3f8', text: fitText(label.text, size, width - 16), size, bold: false, colour: MUTED };
}

/** The weights banner as SVG, for pictures drawn in SVG. */
export function weightsBanner(meta: ModelMetadata, width: number, y = 0): string {
  const b = bannerSpec(meta, width);
  return (
    `<rect x="0" y="${y}" width="${width}" height="${BANNER_HEIGHT}" fill="${b.fill}"/>` +
    text(width / 2, y + 20, b.text, {
      size: b.size,
      anchor: 'middle',
      weight: b.bold ? 'bold' : 'normal',
      fill: b.colour,
    })
  );
}

/** The weights banner across the top of an RGB canvas, BANNER_HEIGHT tall. */
export async function drawBanner(canvas: RgbCanvas, meta: ModelMetadata): Promise<void> {
  const banner = bannerSpec(meta, canvas.width);
  fillRect(canvas, 0, 0, canvas.width, BANNER_HEIGHT, parseColor(banner.fill, 'banner'));
  await drawText(canvas, [{ text: banner.text, x: canvas.width / 2, y: 20 }], {
    size: banner.size,
    colour: parseColor(banner.colour, 'banner'),
    bold: banner.bold,
  });
}

/** Put the weights banner and a title above an RGB picture, and caption lines under it. */
export async function frameCanvas(
  image: RgbCanvas,
  meta: ModelMetadata,
  title: string,
  lines: string[],
): Promise<RgbCanvas> {
  const frameW = Math.max(image.width, 360);
  const titleH = 28;
  const lineH = 18;
  const captionH = lines.length * lineH + FRAME_CAPTION_HEIGHT;
  const totalH = BANNER_HEIGHT + titleH + image.height + captionH;
  const canvas: RgbCanvas = { data: Buffer.alloc(frameW * totalH * 3, 255), width: frameW, height: totalH };
  await drawBanner(canvas, meta);
  await drawText(canvas, [{ text: fitText(title, 14, frameW - 16), x: 8, y: BANNER_HEIGHT + 19 }], {
    size: 14,
    colour: parseColor(INK, 'ink'),
    bold: true,
    anchor: 'start',
  });
  await drawText(
    canvas,
    lines.map((l, i) => ({
      text: fitText(l, 12, frameW - 16),
      x: 8,
      y: BANNER_HEIGHT + titleH + image.height + 16 + i * lineH,
    })),
    { size: 12, colour: parseColor(INK, 'ink'), anchor: 'start' },
  );
  blit(canvas, image, Math.floor((frameW - image.width) / 2), BANNER_HEIGHT + titleH);
  return canvas;
}

/** The frame of a mean overlay: the model whose weights banner it carries, and the title. */
export interface OverlayFrame {
  metadata: ModelMetadata;
  title: string;
}

/**
 * The channel-mean overlay as featscope shows it (render's and visualize's overlays, the
 * notebook's showOverlay, the viewer): the mean over the channels of image `batchIndex` drawn over
 * `image` (colour map turbo and alpha 0.5 unless given), its range the mean's finite min..max
 * unless `range` is given. With `frame`: a colour bar in those real values under it, the weights
 * banner and the title above. Returns the picture and the range its colours span.
 */
export async function drawMeanOverlay(
  image: OverlayImage,
  capture: FeatureMaps,
  options: OverlayOptions & { batchIndex?: number } = {},
  frame?: OverlayFrame,
): Promise<{ canvas: RgbCanvas; range: [number, number] }> {
  const { batchIndex, ...overlayOptions } = options;
  const mean = channelMean(capture, batchIndex ?? 0);
  const given = overlayOptions.range;
  const own = given === undefined ? finiteRange(mean.data) : undefined;
  const colormap = overlayOptions.colormap ?? 'turbo';
  const overlay = await drawOverlay(image, mean, { ...overlayOptions, colormap, range: given ?? own });
  // drawOverlay has checked a given range.
  const range: [number, number] = own ?? [given![0], given![1]];
  if (!frame) return { canvas: overlay, range };
  const channels = capture.shape.length === 4 ? capture.shape[1] : capture.shape[0];
  const barred = await withColourBar(
    overlay,
    colormap,
    range[0],
    range[1],
    `mean of the ${channels} channels (activation values)`,
  );
  return { canvas: await frameCanvas(barred.canvas, frame.metadata, frame.title, []), range };
}
