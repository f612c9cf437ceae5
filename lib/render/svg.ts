/**
 * SVG drawing for featscope's pictures: the palette, text measured and fitted to a width, SVG text
 * and documents. SVG is rasterised by sharp (librsvg) with DejaVu Sans.
 */
import sharp from 'sharp';
import type { RgbCanvas } from './canvas';

export const FONT = "'DejaVu Sans', Verdana, Arial, sans-serif";
export const INK = '#1a1a1a';
export const MUTED = '#5f6368';
export const GRID = '#e3e3e3';
export const BAR = '#3b6fb6';
export const BAR_ALT = '#e07b39';
/** DejaVu Sans averages about 0.6 em per character; estimate wide so text is never clipped. */
export const EM_PER_CHAR = 0.62;

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

/** An unfilled rectangle from (x1, y1) to (x2, y2), at least 1 px each way (a box outline). */
export function outlineRect(x1: number, y1: number, x2: number, y2: number, stroke: string, width: number): string {
  return `<rect x="${x1.toFixed(1)}" y="${y1.toFixed(1)}" width="${Math.max(1, x2 - x1).toFixed(1)}" height="${Math.max(1, y2 - y1).toFixed(1)}" fill="none" stroke="${stroke}" stroke-width="${width}"/>`;
}

/** `canvas` with SVG elements (`body`, in its pixel coordinates, no background) drawn over it. */
export async function drawSvg(canvas: RgbCanvas, body: string): Promise<RgbCanvas> {
  const { width, height } = canvas;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${body}</svg>`;
  const data = await sharp(canvas.data, { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .removeAlpha()
    .raw()
    .toBuffer();
  return { data, width, height };
}
