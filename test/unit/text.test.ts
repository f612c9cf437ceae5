/**
 * Grid labels are blitted from glyph atlases (lib/render/text.ts). Oracle: librsvg laying out the
 * same string in the same font, the way the labels were drawn before the atlas.
 */
import sharp from 'sharp';
import { MONO_ADVANCE_EM, drawText } from '../../lib/render/text';

const W = 240;
const H = 32;

function blank(): Buffer {
  return Buffer.alloc(W * H * 3, 255);
}

type Anchor = 'start' | 'middle' | 'end';

async function svgText(
  text: string,
  size: number,
  x: number,
  y: number,
  anchor: Anchor,
  bold: boolean,
): Promise<Buffer> {
  const esc = text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><rect width="${W}" height="${H}" fill="#fff"/>` +
    `<text x="${x}" y="${y}" font-family="DejaVu Sans Mono" font-size="${size}" font-weight="${bold ? 'bold' : 'normal'}" text-anchor="${anchor}" xml:space="preserve">${esc}</text></svg>`;
  return sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer();
}

/** Ink (255 - grey) per pixel of an RGB canvas. */
function ink(rgb: Uint8Array): Float64Array {
  const out = new Float64Array(W * H);
  for (let i = 0; i < W * H; i++) out[i] = 255 - (rgb[i * 3] + rgb[i * 3 + 1] + rgb[i * 3 + 2]) / 3;
  return out;
}

function bbox(a: Float64Array): [number, number, number, number] {
  let x0 = W,
    y0 = H,
    x1 = -1,
    y1 = -1;
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      if (a[y * W + x] > 64) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x);
        y1 = Math.max(y1, y);
      }
  return [x0, y0, x1, y1];
}

function correlation(a: Float64Array, b: Float64Array): number {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n;
  const mb = b.reduce((s, v) => s + v, 0) / n;
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let i = 0; i < n; i++) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

/** Box blur of radius 1: compares shapes, forgiving the half-pixel placement of each glyph. */
function blur(a: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      let s = 0;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++)
          s += a[Math.min(H - 1, Math.max(0, y + dy)) * W + Math.min(W - 1, Math.max(0, x + dx))];
      out[y * W + x] = s / 9;
    }
  return out;
}

describe('drawText', () => {
  test.each([
    ['ch 12 · max 3.41', 12, 'middle', false, W / 2],
    ['ch 507 · mean -1.2e-3', 9, 'middle', false, W / 2],
    ['Infinity NaN 0123456789', 14, 'middle', false, W / 2],
    ['UNTRAINED WEIGHTS · random', 13, 'middle', true, W / 2],
    ['dog.jpg · layer1.0.conv1', 14, 'start', true, 8],
    ['(a title, end-anchored)', 12, 'end', false, W - 8],
    // Beyond ASCII: rasterised on first use (ImageNet names, dashes, Σ in captions).
    ['crème brûlée — Σ 3×2 ≈ 6', 12, 'middle', false, W / 2],
  ] as const)(
    '%p at %d px, %s-anchored, bold %p, looks like librsvg drawing the same text',
    async (text, size, anchor, bold, x) => {
      const canvas = blank();
      await drawText({ data: canvas, width: W, height: H }, [{ text, x, y: 22 }], {
        size,
        colour: [0, 0, 0],
        anchor,
        bold,
      });
      const ours = ink(canvas);
      const theirs = ink(await svgText(text, size, x, 22, anchor, bold));
      const [a, b] = [bbox(ours), bbox(theirs)];
      for (let i = 0; i < 4; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(1);
      // Same amount of ink within 10 %, and the same shapes.
      const sum = (v: Float64Array) => v.reduce((s, x) => s + x, 0);
      expect(sum(ours) / sum(theirs)).toBeGreaterThan(0.9);
      expect(sum(ours) / sum(theirs)).toBeLessThan(1.1);
      expect(correlation(blur(ours), blur(theirs))).toBeGreaterThan(0.95);
      // The text is as wide as the monospace advance says (the grid plans label sizes with it).
      expect(a[2] - a[0]).toBeLessThanOrEqual(Math.ceil(text.length * MONO_ADVANCE_EM * size));
    },
  );

  test('colours blend over the background; labels off the canvas edges are clipped, not wrapped', async () => {
    const canvas = Buffer.alloc(W * H * 3);
    for (let i = 0; i < W * H; i++) canvas.set([0, 0, 128], i * 3);
    const before = Buffer.from(canvas);
    await drawText(
      { data: canvas, width: W, height: H },
      [
        { text: 'left edge', x: 0, y: 20 },
        { text: 'right edge', x: W, y: 20 },
        { text: 'above', x: 120, y: -20 },
        { text: 'below', x: 120, y: H + 40 },
      ],
      { size: 12, colour: [255, 200, 0] },
    );
    let changed = 0;
    for (let i = 0; i < W * H; i++) {
      const [r, g, b] = canvas.subarray(i * 3, i * 3 + 3);
      if (r === 0 && g === 0 && b === 128) continue;
      changed++;
      // Every touched pixel lies between the background and the text colour.
      const t = r / 255;
      expect(Math.abs(g - 200 * t)).toBeLessThanOrEqual(2);
      expect(Math.abs(b - 128 * (1 - t))).toBeLessThanOrEqual(2);
    }
    expect(changed).toBeGreaterThan(50);
    // Nothing drawn for the labels wholly above or below the canvas: only rows near y=20 changed.
    for (let y = 0; y < 5; y++)
      expect(canvas.subarray(y * W * 3, (y + 1) * W * 3)).toEqual(before.subarray(y * W * 3, (y + 1) * W * 3));
  });
});
