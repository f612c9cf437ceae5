/**
 * report.html inlines photo-like pictures (model input, overlays) as lossy WebP and channel grids
 * losslessly (WebP lossless: the PNG's exact pixels): checked on the inlined bytes (type, size
 * against the PNG, decoded difference). Linked, the grid is the PNG file itself.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { renderOverlay, writeReport } from '../../lib';
import { nameInputs } from '../../lib/cli/inputs';

const DOG = path.join(__dirname, '..', 'fixtures', 'images', 'dog.jpg');

test('inputs and overlays go in as WebP (much smaller, close to the PNG), grids with their exact pixels', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-report-jpeg-'));
  const input = path.join(dir, 'input.png');
  const overlay = path.join(dir, 'overlay.png');
  const grid = path.join(dir, 'grid.png');
  await sharp(DOG).resize(224, 224, { fit: 'fill' }).png().toFile(input);
  const map = new Float32Array(7 * 7).map((_, i) => Math.sin(i / 3));
  fs.writeFileSync(overlay, (await renderOverlay(DOG, { data: map, width: 7, height: 7 })).png);
  // a grid-like picture: viridis-ish cells with sharp edges and many colours
  const cells = Buffer.alloc(120 * 120 * 3);
  for (let i = 0; i < 120 * 120; i++) {
    const v = (((i % 120) >> 3) * 37 + ((i / 120) >> 3) * 11) % 256;
    cells.set([68 + (v >> 2), v, 84 + (v >> 1)], i * 3);
  }
  await sharp(cells, { raw: { width: 120, height: 120, channels: 3 } })
    .png()
    .toFile(grid);
  const file = path.join(dir, 'report.html');
  await writeReport(file, {
    model: { path: 'm.pt', metadata: {} },
    images: [
      {
        source: DOG,
        input,
        layers: [
          {
            name: 'layer1',
            shape: [64, 56, 56],
            grid,
            overlay,
            top: [],
            stats: { min: 0, max: 1, mean: 0.5, zeroFraction: 0, deadChannels: [] },
          },
        ],
      },
    ],
  });
  const html = fs.readFileSync(file, 'utf8');
  const srcs = [...html.matchAll(/<img class="([^"]+)" src="data:(image\/\w+);base64,([^"]+)"/g)].map((m) => ({
    cls: m[1],
    type: m[2],
    bytes: Buffer.from(m[3], 'base64'),
  }));
  expect(srcs.map((s) => [s.cls, s.type])).toEqual([
    ['input', 'image/webp'],
    ['grid-img', 'image/webp'],
    ['overlay-img', 'image/webp'],
  ]);
  // the grid: lossless, every pixel as in the PNG
  const g = await sharp(srcs[1].bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const p = await sharp(grid).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  expect([g.info.width, g.info.height]).toEqual([120, 120]);
  expect(g.data.equals(p.data)).toBe(true);
  for (const [webp, png] of [
    [srcs[0].bytes, fs.readFileSync(input)],
    [srcs[2].bytes, fs.readFileSync(overlay)],
  ]) {
    expect(webp.length).toBeLessThan(png.length * 0.35);
    const a = await sharp(webp).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    // photos go in at most 400 px wide (the width the page shows an overlay at)
    const meta = await sharp(png).metadata();
    const w = Math.min(400, meta.width!);
    expect(a.info.width).toBe(w);
    const b = await sharp(png).resize({ width: w }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([a.info.width, a.info.height]).toEqual([b.info.width, b.info.height]);
    let sum = 0;
    for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i] - b.data[i]);
    expect(sum / a.data.length).toBeLessThan(6); // mean absolute difference per 8-bit channel
  }
});

test('--report-assets linked as an API option: the grid is the PNG file itself, photos WebP files', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-report-linked-'));
  const input = path.join(dir, 'input.png');
  const grid = path.join(dir, 'grid.png');
  await sharp(DOG).resize(224, 224, { fit: 'fill' }).png().toFile(input);
  await sharp(DOG).resize(64, 64).png().toFile(grid);
  const file = path.join(dir, 'page.html');
  const r = await writeReport(file, {
    model: { path: 'm.pt', metadata: {} },
    assets: 'linked',
    images: [
      {
        source: 'a <b>.jpg',
        input,
        layers: [
          {
            name: 'x',
            shape: [1, 8, 8],
            grid,
            top: [],
            stats: { min: 0, max: 1, mean: 0.5, zeroFraction: 0, deadChannels: [] },
          },
        ],
      },
    ],
  });
  expect(r.assets).toBe(path.join(dir, 'page_files'));
  expect(fs.readdirSync(r.assets!).sort()).toEqual(['i0-input.webp', 'i0-l0-grid.png']);
  expect(fs.readFileSync(path.join(r.assets!, 'i0-l0-grid.png')).equals(fs.readFileSync(grid))).toBe(true);
  const html = fs.readFileSync(file, 'utf8');
  expect(html).toContain('src="page_files/i0-input.webp"');
  expect(html).toContain('src="page_files/i0-l0-grid.png"');
  expect(html).toContain("img-src data: 'self' file:");
  expect(html).toContain('a &lt;b&gt;.jpg');
  expect(fs.readdirSync(dir).filter((n) => n.includes('featscope-tmp'))).toEqual([]);

  // A write that fails half-way (a picture is missing) leaves the previous page and folder as they were.
  const before = fs.readFileSync(file);
  const missing = path.join(dir, 'gone.png');
  await expect(
    writeReport(file, {
      model: { path: 'm.pt', metadata: {} },
      assets: 'linked',
      images: [
        { source: 'a.jpg', input, layers: [] },
        { source: 'b.jpg', input: missing, layers: [] },
      ],
    }),
  ).rejects.toThrow(/gone\.png/);
  expect(fs.readFileSync(file).equals(before)).toBe(true);
  expect(fs.readdirSync(r.assets!).sort()).toEqual(['i0-input.webp', 'i0-l0-grid.png']);
  expect(fs.readdirSync(dir).filter((n) => n.includes('featscope-tmp'))).toEqual([]);
});

test("an input named report_files never gets the linked report's picture folder as its output folder", () => {
  const names = nameInputs(['/p/report_files.jpg', '/p/Report_Files.png', '/p/dog.jpg']).map((i) => i.name);
  expect(names[0]).toMatch(/^report_files-[0-9a-f]{8}$/);
  expect(names[1]).toMatch(/^Report_Files-[0-9a-f]{8}$/);
  expect(names[2]).toBe('dog');
});
