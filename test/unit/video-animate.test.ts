// The clip animations (lib/cli/video.ts animate): frames are joined a chunk at a time and the
// chunks' frames spliced into one animated WebP, so memory is a chunk's, not the clip's. The
// oracle is the frames' own PNGs: decoded page k of the lossless WebP equals frame k's PNG byte for
// byte, across chunk boundaries; the frame count, per-frame delay and loop are what was asked.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { animate } from '../../lib/cli/video';

sharp.cache(false);

const W = 40;
const H = 30;
const N = 7;
let dir: string;
let files: string[];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-animate-'));
  files = [];
  for (let k = 0; k < N; k++) {
    const rgb = Buffer.alloc(W * H * 3);
    // Smooth ramps that move with k, and one frame-specific block: every frame differs.
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const i = (y * W + x) * 3;
        rgb[i] = (x * 6 + k * 20) & 255;
        rgb[i + 1] = (y * 8 + k * 5) & 255;
        rgb[i + 2] = x >= k * 5 && x < k * 5 + 5 && y < 10 ? 255 : 40;
      }
    const file = path.join(dir, `${k}.png`);
    await sharp(rgb, { raw: { width: W, height: H, channels: 3 } })
      .png()
      .toFile(file);
    files.push(file);
  }
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function pixels(file: string, page?: number): Promise<Buffer> {
  return sharp(file, page === undefined ? {} : { page })
    .removeAlpha()
    .raw()
    .toBuffer();
}

test.each([1, 3, N, 50])('lossless, %i frames a join: page k is frame k, 7 pages of 500 ms, looping', async (chunk) => {
  const out = path.join(dir, `grid-${chunk}.webp`);
  await animate(files, 2, out, true, chunk);
  const meta = await sharp(out).metadata();
  expect(meta.format).toBe('webp');
  expect([meta.width, meta.height, meta.pages]).toEqual([W, H, N]);
  expect(meta.delay).toEqual(new Array(N).fill(500));
  expect(meta.loop).toBe(0);
  for (let k = 0; k < N; k++) expect((await pixels(out, k)).equals(await pixels(files[k]))).toBe(true);
  expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
});

test('lossy (the overlays): the same frames, delays and loop whether joined in one go or in chunks', async () => {
  const whole = path.join(dir, 'overlay-whole.webp');
  const parts = path.join(dir, 'overlay-parts.webp');
  await animate(files, 25, whole, false, 50);
  await animate(files, 25, parts, false, 2);
  for (const out of [whole, parts]) {
    const meta = await sharp(out).metadata();
    expect(meta.pages).toBe(N);
    expect(meta.delay).toEqual(new Array(N).fill(40));
    expect(meta.loop).toBe(0);
  }
  const mad = (a: Buffer, b: Buffer) => a.reduce((sum, v, i) => sum + Math.abs(v - b[i]), 0) / a.length;
  const pngs = await Promise.all(files.map((f) => pixels(f)));
  for (let k = 0; k < N; k++) {
    const a = await pixels(whole, k);
    const b = await pixels(parts, k);
    // Page k is nearest frame k of all the frames, and as near as the single join's page k.
    const near = pngs.map((png) => mad(b, png));
    expect(near.indexOf(Math.min(...near))).toBe(k);
    expect(near[k]).toBeLessThan(mad(a, pngs[k]) + 1);
  }
});

test('one frame, and a join of frames all alike (which the encoder makes one still image): still animated, same pixels', async () => {
  const one = path.join(dir, 'one.webp');
  await animate(files.slice(0, 1), 2, one, true);
  let meta = await sharp(one).metadata();
  expect([meta.pages, meta.delay, meta.loop]).toEqual([1, [500], 0]);
  expect((await pixels(one, 0)).equals(await pixels(files[0]))).toBe(true);
  // Frames 0 0 0 1 2, two a join: the join of 0 0 is one still; the encoder merges alike frames
  // (one page showing twice as long), as a single join does.
  const alike = path.join(dir, 'alike.webp');
  const frames = [files[0], files[0], files[0], files[1], files[2]];
  await animate(frames, 2, alike, true, 2);
  const whole = path.join(dir, 'alike-whole.webp');
  await animate(frames, 2, whole, true, 50);
  meta = await sharp(alike).metadata();
  const wholeMeta = await sharp(whole).metadata();
  expect(meta.delay!.reduce((a, b) => a + b, 0)).toBe(2500);
  expect(wholeMeta.delay).toEqual([1500, 500, 500]);
  // Shown at each time t (ms), the chunked animation and the single join agree.
  const at = async (file: string, delays: number[], t: number) => {
    let k = 0;
    for (let end = delays[0]; end <= t; end += delays[++k]);
    return pixels(file, k);
  };
  for (let t = 0; t < 2500; t += 500)
    expect((await at(alike, meta.delay!, t)).equals(await at(whole, wholeMeta.delay!, t))).toBe(true);
});
