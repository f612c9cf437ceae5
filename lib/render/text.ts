/**
 * Short label text drawn straight into an RGB canvas from cached glyph atlases.
 *
 * Laying out each label through librsvg/pango and compositing an SVG over the whole canvas cost
 * about 20 ms for a 4 x 4 grid, more than the rest of the render. Labels use a few dozen
 * characters at one of a few sizes, so each (character, size) is rasterised once, by sharp, in
 * a monospace font, and later labels are alpha-blended in JS: well under a millisecond.
 */
import sharp from 'sharp';
import type { RgbCanvas } from './canvas';
import type { RGB } from './color';

/** DejaVu Sans Mono first (its advance is 1233/2048 em); most monospace fonts are within 0.005 em. */
const MONO_FAMILY = "'DejaVu Sans Mono', 'Liberation Mono', 'Noto Sans Mono', Menlo, Consolas, monospace";
export const MONO_ADVANCE_EM = 1233 / 2048;
/** Printable ASCII and the middle dot of "ch 3 · max 1.2"; anything else is drawn as '?'. */
const CHARSET = [...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)), '·', '…'];
const CHAR_INDEX = new Map(CHARSET.map((c, i) => [c, i]));

interface Atlas {
  size: number;
  /** Advance per character, in pixels (fractional). */
  advance: number;
  /** Each glyph's box: width, height, the advance box's left edge in it, and the baseline. */
  boxW: number;
  boxH: number;
  originX: number;
  baseline: number;
  /** Coverage (0-255), CHARSET.length boxes side by side, row-major. */
  alpha: Uint8Array;
  stride: number;
}

const atlases = new Map<string, Promise<Atlas>>();

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

async function buildAtlas(size: number, bold: boolean): Promise<Atlas> {
  const advance = MONO_ADVANCE_EM * size;
  // Generous margins: glyph ink may overhang its advance box a little (italics, '·', 'W').
  const originX = Math.ceil(size * 0.25) + 1;
  const boxW = Math.ceil(advance) + 2 * originX;
  const baseline = Math.ceil(size * 1.0) + 1;
  const boxH = baseline + Math.ceil(size * 0.3) + 1;
  const width = boxW * CHARSET.length;
  const texts = CHARSET.map(
    (c, i) => `<text x="${i * boxW + originX}" y="${baseline}" xml:space="preserve">${escapeXml(c)}</text>`,
  ).join('');
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${boxH}">` +
    `<g font-family="${MONO_FAMILY}" font-size="${size}" font-weight="${bold ? 'bold' : 'normal'}" fill="#000">${texts}</g></svg>`;
  const { data } = await sharp(Buffer.from(svg)).ensureAlpha().extractChannel(3).raw().toBuffer({ resolveWithObject: true });
  return { size, advance, boxW, boxH, originX, baseline, alpha: new Uint8Array(data.buffer, data.byteOffset, data.length), stride: width };
}

function atlas(size: number, bold: boolean): Promise<Atlas> {
  const key = `${size}${bold ? 'b' : ''}`;
  let a = atlases.get(key);
  if (!a) {
    a = buildAtlas(size, bold);
    // A failed build (no fonts at all, say) is retried next time rather than cached.
    a.catch(() => atlases.delete(key));
    atlases.set(key, a);
  }
  return a;
}

export interface CanvasText {
  text: string;
  /** Anchor point (see TextStyle.anchor) and baseline, in canvas pixels. */
  x: number;
  y: number;
}

export interface TextStyle {
  /** Font size in pixels. */
  size: number;
  colour: RGB;
  /** Where x sits on the text: its start, middle (default) or end. */
  anchor?: 'start' | 'middle' | 'end';
  bold?: boolean;
}

/**
 * Draw single-line texts, all in one style, into a packed RGB canvas. Pixels outside the
 * canvas are skipped, so a text may run off an edge without harm.
 */
export async function drawText(canvas: RgbCanvas, texts: readonly CanvasText[], style: TextStyle): Promise<void> {
  if (texts.length === 0) return;
  const a = await atlas(style.size, style.bold ?? false);
  const { data, width, height } = canvas;
  const [cr, cg, cb] = style.colour;
  const shift = style.anchor === 'start' ? 0 : style.anchor === 'end' ? 1 : 0.5;
  const unknown = CHAR_INDEX.get('?')!;
  for (const t of texts) {
    const chars = [...t.text];
    const left = t.x - chars.length * a.advance * shift;
    const top = Math.round(t.y) - a.baseline;
    chars.forEach((ch, j) => {
      if (ch === ' ') return;
      const index = CHAR_INDEX.get(ch) ?? unknown;
      const bx = Math.round(left + j * a.advance) - a.originX;
      for (let y = 0; y < a.boxH; y++) {
        const cy = top + y;
        if (cy < 0 || cy >= height) continue;
        const src = y * a.stride + index * a.boxW;
        for (let x = 0; x < a.boxW; x++) {
          const cov = a.alpha[src + x];
          if (cov === 0) continue;
          const cx = bx + x;
          if (cx < 0 || cx >= width) continue;
          const o = (cy * width + cx) * 3;
          const inv = 255 - cov;
          data[o] = (data[o] * inv + cr * cov + 127) / 255;
          data[o + 1] = (data[o + 1] * inv + cg * cov + 127) / 255;
          data[o + 2] = (data[o + 2] * inv + cb * cov + 127) / 255;
        }
      }
    });
  }
}
