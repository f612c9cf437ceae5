/**
 * report.html inlines photo-like pictures (model input, overlays) as JPEG and keeps channel grids
 * PNG: checked on the inlined bytes (type, size against the PNG, decoded difference).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { renderOverlay, writeReport } from '../../lib';

const DOG = path.join(__dirname, '..', 'fixtures', 'images', 'dog.jpg');

test('inputs and overlays go in as JPEG (much smaller, close to the PNG), grids as PNG', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-report-jpeg-'));
  const input = path.join(dir, 'input.png');
  const overlay = path.join(dir, 'overlay.png');
  const grid = path.join(dir, 'grid.png');
  await sharp(DOG).resize(224, 224, { fit: 'fill' }).png().toFile(input);
  const map = new Float32Array(7 * 7).map((_, i) => Math.sin(i / 3));
  fs.writeFileSync(overlay, (await renderOverlay(DOG, { data: map, width: 7, height: 7 })).png);
  await sharp({ create: { width: 120, height: 120, channels: 3, background: '#440154' } })
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
    ['input', 'image/jpeg'],
    ['grid-img', 'image/png'],
    ['overlay-img', 'image/jpeg'],
  ]);
  expect(srcs[1].bytes.equals(fs.readFileSync(grid))).toBe(true);
  for (const [jpeg, png] of [
    [srcs[0].bytes, fs.readFileSync(input)],
    [srcs[2].bytes, fs.readFileSync(overlay)],
  ]) {
    expect(jpeg.length).toBeLessThan(png.length * 0.35);
    const a = await sharp(jpeg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const b = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([a.info.width, a.info.height]).toEqual([b.info.width, b.info.height]);
    let sum = 0;
    for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i] - b.data[i]);
    expect(sum / a.data.length).toBeLessThan(6); // mean absolute difference per 8-bit channel (about 2 to 4 here)
  }
});
