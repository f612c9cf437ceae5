/**
 * Short label text drawn straight into an RGB canvas from cached glyph atlases.
 *
 * Laying out each label through librsvg/pango and compositing an SVG over the whole canvas cost
 * about 20 ms for a 4 x 4 grid, more than the rest of the render. Labels use a few dozen
 * characters at one of a few sizes, so each (character, size, weight) is rasterised once, by
 * sharp, in a monospace font, and later labels are alpha-blended in JS: well under a millisecond.
 * Characters beyond ASCII are rasterised the first time they are drawn.
 */
import sharp from 'sharp';
import type { RgbCanvas } from './canvas';
import type { RGB } from './color';

/** DejaVu Sans Mono first (its advance is 1233/2048 em); most monospace fonts are within 0.005 em. */
const MONO_FAMILY = "'DejaVu Sans Mono', 'Liberation Mono', 'Noto Sans Mono', Menlo, Consolas, monospace";
export const MONO_ADVANCE_EM = 1233 / 2048;
/** Rasterised up front: printable ASCII and the middle dot of "ch 3 · max 1.2". Others on first use. */
const COMMON = [...Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)), '·', '…', '—', '−'];

/** One font size and weight: glyph boxes of a fixed size, each glyph's coverage (0-255). */
interface Face {
  /** Advance per character, in pixels (fractional). */
  advance: number;
  /** Each glyph's box: width, height, the advance box's left edge in it, and the baseline. */
  boxW: number;
  boxH: number;
  originX: number;
  baseline: number;
  glyphs: Map<string, Uint8Array>;
  size: number;
  bold: boolean;
}

const faces = new Map<string, Promise<Face>>();

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Rasterise `chars` (one SVG, one sharp call) into the face's glyph boxes. */
async function rasterise(face: Face, chars: readonly string[]): Promise<void> {
  const { boxW, boxH, originX, baseline } = face;
  const width = boxW * chars.length;
  const texts = chars
    .map((c, i) => `<text x="${i * boxW + originX}" y="${baseline}" xml:space="preserve">${escapeXml(c)}</text>`)
    .join('');
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${boxH}">` +
    `<g font-family="${MONO_FAMILY}" font-size="${face.size}" font-weight="${face.bold ? 'bold' : 'normal'}" fill="#000">${texts}</g></svg>`;
  const { data } = await sharp(Buffer.from(svg))
    .ensureAlpha()
    .extractChannel(3)
    .raw()
    .toBuffer({ resolveWithObject: true });
  chars.forEach((c, k) => {
    const glyph = new Uint8Array(boxW * boxH);
    for (let y = 0; y < boxH; y++) glyph.set(data.subarray(y * width + k * boxW, y * width + (k + 1) * boxW), y * boxW);
    face.glyphs.set(c, glyph);
  });
}

async function buildFace(size: number, bold: boolean): Promise<Face> {
  const advance = MONO_ADVANCE_EM * size;
  // Generous margins: glyph ink may overhang its advance box a little ('·', 'W', accents).
  const originX = Math.ceil(size * 0.25) + 1;
  const baseline = Math.ceil(size * 1.0) + 1;
  const face: Face = {
    advance,
    boxW: Math.ceil(advance) + 2 * originX,
    boxH: baseline + Math.ceil(size * 0.3) + 1,
    originX,
    baseline,
    glyphs: new Map(),
    size,
    bold,
  };
  await rasterise(face, COMMON);
  return face;
}

function faceOf(size: number, bold: boolean): Promise<Face> {
  const key = `${size}${bold ? 'b' : ''}`;
  let f = faces.get(key);
  if (!f) {
    f = buildFace(size, bold);
    // A failed build (no fonts at all, say) is retried next time rather than cached.
    f.catch(() => faces.delete(key));
    faces.set(key, f);
  }
  return f;
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
  const face = await faceOf(style.size, style.bold ?? false);
  const missing = new Set<string>();
  for (const t of texts) for (const ch of t.text) if (ch !== ' ' && !face.glyphs.has(ch)) missing.add(ch);
  if (missing.size > 0) await rasterise(face, [...missing]);
  const { data, width, height } = canvas;
  const { boxW, boxH, advance } = face;
  const [cr, cg, cb] = style.colour;
  const shift = style.anchor === 'start' ? 0 : style.anchor === 'end' ? 1 : 0.5;
  for (const t of texts) {
    const chars = [...t.text];
    const left = t.x - chars.length * advance * shift;
    const top = Math.round(t.y) - face.baseline;
    chars.forEach((ch, j) => {
      const glyph = face.glyphs.get(ch);
      if (!glyph) return; // a space
      const bx = Math.round(left + j * advance) - face.originX;
      for (let y = 0; y < boxH; y++) {
        const cy = top + y;
        if (cy < 0 || cy >= height) continue;
        for (let x = 0; x < boxW; x++) {
          const cov = glyph[y * boxW + x];
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
