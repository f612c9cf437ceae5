/**
 * Drawing for the analysis pictures: SVG text, the weights banner every picture carries, and a
 * bar chart with linear or log axes. SVG is rasterised by sharp (librsvg) with DejaVu Sans.
 */
import sharp from 'sharp';
import type { ModelMetadata } from '../metadata';
import { type RgbCanvas, blit, fillRect } from '../render/canvas';
import { parseColor } from '../render/color';
import { drawText } from '../render/text';
import { type ColormapName, colormapRGB } from '../render/colormaps';
import { weightsLabel } from '../metadata';

export const FONT = "'DejaVu Sans', Verdana, Arial, sans-serif";
export const INK = '#1a1a1a';
export const MUTED = '#5f6368';
export const GRID = '#e3e3e3';
export const BAR = '#3b6fb6';
export const BAR_ALT = '#e07b39';
/** DejaVu Sans averages about 0.6 em per character; estimate wide so text is never clipped. */
const EM_PER_CHAR = 0.62;

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function textWidth(text: string, size: number): number {
  return text.length * EM_PER_CHAR * size;
}

/** Shorten `text` with an ellipsis so that it fits `width` pixels at `size`. */
export function fitText(text: string, size: number, width: number): string {
  const max = Math.floor(width / (EM_PER_CHAR * size));
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}

/** The largest of `sizes` at which `text` fits `width` (then shortened with … at the smallest). */
export function fitSize(text: string, sizes: readonly number[], width: number): { text: string; size: number } {
  for (const size of sizes) if (textWidth(text, size) <= width) return { text, size };
  const size = sizes[sizes.length - 1];
  return { text: fitText(text, size, width), size };
}

/**
 * Round tick values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten, about five
 * of them, from a multiple of the step at or below lo to one at or above hi.
 */
export function niceTicks(lo: number, hi: number): number[] {
  if (!(hi > lo))
    return lo === hi && Number.isFinite(lo) ? niceTicks(lo - (Math.abs(lo) || 1), lo + (Math.abs(lo) || 1)) : [0, 1];
  const raw = (hi - lo) / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((v) => v >= raw) ?? 10 * p;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

export interface TextOptions {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'normal' | 'bold';
  fill?: string;
  rotate?: number;
}

export function text(x: number, y: number, content: string, o: TextOptions = {}): string {
  const rotate = o.rotate ? ` transform="rotate(${o.rotate} ${x} ${y})"` : '';
  return (
    `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-size="${o.size ?? 13}" text-anchor="${o.anchor ?? 'start'}"` +
    ` font-weight="${o.weight ?? 'normal'}" fill="${o.fill ?? INK}"${rotate}>${escapeXml(content)}</text>`
  );
}

export function svgDocument(width: number, height: number, body: string, background = '#ffffff'): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="${FONT}">` +
    `<rect width="${width}" height="${height}" fill="${background}"/>${body}</svg>`
  );
}

export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).removeAlpha().png({ compressionLevel: 6 }).toBuffer();
}

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

/** Numbers on axes and in captions: 3 significant digits, exponent only when needed. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a < 1e-3 || a >= 1e5) {
    const [m, e] = v.toExponential(1).split('e');
    return `${m.replace(/\.0$/, '')}e${Number(e)}`;
  }
  return Number(v.toPrecision(3)).toString();
}

export interface Bar {
  label: string;
  value: number;
  /** A second value drawn as a dot series over the bars (e.g. activation norms). */
  second?: number;
  /** Highlight this bar (e.g. the most divergent layer). */
  highlight?: boolean;
}

export interface BarChartSpec {
  x: number;
  y: number;
  width: number;
  height: number;
  title: string;
  yLabel: string;
  bars: Bar[];
  log?: boolean;
  color?: string;
  /** Legend entries: [colour, text]. */
  legend?: [string, string][];
  secondLabel?: string;
}

/** Space under a chart's plot area that rotated x labels need. */
export function labelSpace(bars: Bar[], size: number): number {
  const longest = Math.max(4, ...bars.map((b) => b.label.length));
  return Math.min(150, Math.ceil(longest * EM_PER_CHAR * size * Math.sin(Math.PI / 3)) + 14);
}

function niceLinearTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const ticks: number[] = [];
  for (let t = 0; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

/** A bar chart (one bar per entry, labels rotated under it), drawn at (x, y) within width x height. */
export function barChart(s: BarChartSpec): string {
  const tickSize = 11;
  const labelSize = s.bars.length > 40 ? 9 : s.bars.length > 24 ? 10 : 11;
  const under = labelSpace(s.bars, labelSize);
  const left = s.x + 64;
  const top = s.y + (s.legend ? 54 : 40);
  const plotW = s.width - 64 - 16;
  const plotH = s.height - (top - s.y) - under;
  const values = s.bars.flatMap((b) => [b.value, b.second ?? NaN]).filter((v) => Number.isFinite(v));
  const parts: string[] = [];
  parts.push(text(s.x + 4, s.y + 18, s.title, { size: 15, weight: 'bold' }));
  if (s.legend) {
    let lx = s.x + s.width - 16;
    for (const [colour, label] of [...s.legend].reverse()) {
      const w = textWidth(label, 11);
      lx -= w;
      parts.push(text(lx, s.y + 38, label, { size: 11, fill: MUTED }));
      lx -= 16;
      parts.push(
        colour.startsWith('dot:')
          ? `<circle cx="${lx + 5.5}" cy="${s.y + 34.5}" r="4" fill="${colour.slice(4)}"/>`
          : `<rect x="${lx}" y="${s.y + 29}" width="11" height="11" fill="${colour}"/>`,
      );
      lx -= 14;
    }
  }
  let toY: (v: number) => number;
  let ticks: number[];
  if (s.log) {
    const positive = values.filter((v) => v > 0);
    let lo = Math.floor(Math.log10(Math.min(...positive, 1)));
    let hi = Math.ceil(Math.log10(Math.max(...positive, 1e-12)));
    if (positive.length === 0) [lo, hi] = [-1, 0];
    if (hi <= lo) hi = lo + 1;
    ticks = [];
    for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
    toY = (v) => top + plotH - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * plotH;
  } else {
    ticks = niceLinearTicks(Math.max(0, ...values));
    const hi = ticks[ticks.length - 1] || 1;
    toY = (v) => top + plotH - (Math.max(0, v) / hi) * plotH;
  }
  for (const t of ticks) {
    const ty = toY(t);
    parts.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${ty.toFixed(1)}" y2="${ty.toFixed(1)}" stroke="${GRID}"/>`,
    );
    parts.push(text(left - 6, ty + 4, formatNumber(t), { size: tickSize, anchor: 'end', fill: MUTED }));
  }
  parts.push(text(s.x + 14, top + plotH / 2, s.yLabel, { size: 12, anchor: 'middle', fill: MUTED, rotate: -90 }));
  const slot = plotW / Math.max(1, s.bars.length);
  const barW = Math.max(2, Math.min(36, slot * 0.72));
  const base = top + plotH;
  s.bars.forEach((b, i) => {
    const cx = left + slot * (i + 0.5);
    if (Number.isFinite(b.value) && (!s.log || b.value > 0)) {
      const by = toY(b.value);
      const colour = b.highlight ? BAR_ALT : (s.color ?? BAR);
      parts.push(
        `<rect x="${(cx - barW / 2).toFixed(1)}" y="${by.toFixed(1)}" width="${barW.toFixed(1)}" height="${Math.max(0.5, base - by).toFixed(1)}" fill="${colour}"/>`,
      );
    }
    if (b.second !== undefined && Number.isFinite(b.second) && (!s.log || b.second > 0)) {
      parts.push(`<circle cx="${cx.toFixed(1)}" cy="${toY(b.second).toFixed(1)}" r="3.5" fill="${INK}"/>`);
    }
    parts.push(
      text(cx + 3, base + 10, b.label, {
        size: labelSize,
        anchor: 'end',
        fill: b.highlight ? BAR_ALT : INK,
        rotate: -60,
        weight: b.highlight ? 'bold' : 'normal',
      }),
    );
  });
  if (s.bars.some((b) => b.second !== undefined)) {
    const pts = s.bars
      .map((b, i) =>
        b.second !== undefined && Number.isFinite(b.second) && (!s.log || b.second > 0)
          ? `${(left + slot * (i + 0.5)).toFixed(1)},${toY(b.second).toFixed(1)}`
          : '',
      )
      .filter(Boolean);
    if (pts.length > 1)
      parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${INK}" stroke-width="1.2"/>`);
  }
  parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${base}" y2="${base}" stroke="${INK}"/>`);
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${base}" stroke="${INK}"/>`);
  return parts.join('');
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

/** Height that withColourBar adds under a picture. */
export const COLOUR_BAR_HEIGHT = 42;

/**
 * `image` with a colour bar under it: the colour map from `lo` (left end) to `hi` (right end),
 * both ends labelled in the data's real values, and a caption saying what the values are. `dx`
 * is where the image now starts (it is centred when the bar needs more width than it has).
 */
export async function withColourBar(
  image: RgbCanvas,
  colormap: ColormapName,
  lo: number,
  hi: number,
  caption: string,
): Promise<{ canvas: RgbCanvas; dx: number }> {
  const width = Math.max(image.width, 320);
  const height = image.height + COLOUR_BAR_HEIGHT;
  const canvas: RgbCanvas = { data: Buffer.alloc(width * height * 3, 255), width, height };
  const dx = Math.floor((width - image.width) / 2);
  blit(canvas, image, dx, 0);
  const ink = parseColor(INK, 'ink');
  const loText = formatNumber(lo);
  const hiText = formatNumber(hi);
  // Room for the end labels at 11 px on either side of the bar.
  const side = Math.ceil(Math.max(textWidth(loText, 11), textWidth(hiText, 11))) + 12;
  const barX = side;
  const barW = Math.max(40, width - 2 * side);
  const barY = image.height + 8;
  fillRect(canvas, barX - 1, barY - 1, barW + 2, 12, [153, 153, 153]);
  for (let x = 0; x < barW; x++)
    fillRect(canvas, barX + x, barY, 1, 10, colormapRGB(colormap, x / Math.max(1, barW - 1)));
  await drawText(canvas, [{ text: loText, x: barX - 6, y: barY + 10 }], { size: 11, colour: ink, anchor: 'end' });
  await drawText(canvas, [{ text: hiText, x: barX + barW + 6, y: barY + 10 }], {
    size: 11,
    colour: ink,
    anchor: 'start',
  });
  await drawText(canvas, [{ text: fitText(caption, 10, width - 16), x: width / 2, y: barY + 26 }], {
    size: 10,
    colour: parseColor(MUTED, 'muted'),
  });
  return { canvas, dx };
}

/**
 * A channel-mean overlay as featscope shows it (render's overlays, the notebook's showOverlay): a
 * colour bar in real values (the mean's range) under it, the weights banner and the title above.
 */
export async function frameMeanOverlay(
  overlay: RgbCanvas,
  colormap: ColormapName,
  range: readonly [number, number],
  channels: number,
  meta: ModelMetadata,
  title: string,
): Promise<RgbCanvas> {
  const barred = await withColourBar(
    overlay,
    colormap,
    range[0],
    range[1],
    `mean of the ${channels} channels (activation values)`,
  );
  return frameCanvas(barred.canvas, meta, title, []);
}
