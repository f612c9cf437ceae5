/**
 * Golden image: a channel grid of smooth synthetic feature maps, compared pixel by pixel with a
 * committed PNG that was rendered by featscope and checked by eye. Labels are off so that font
 * versions on other machines cannot move pixels. Regenerate with UPDATE_GOLDEN=1 (then look at it).
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { renderChannelGrid } from '../../lib/render';
import type { Capture } from '../../lib/types';

const GOLDEN = path.join(__dirname, '..', 'fixtures', 'golden', 'grid-synthetic.png');

/** Nine 14x10 maps: Gaussian bumps, stripes and a ramp, like early conv features. */
function syntheticCapture(): Capture {
  const [C, H, W] = [9, 10, 14];
  const data = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const cx = 2 + ((c * 3.7) % 10);
        const cy = 1 + ((c * 2.3) % 8);
        const bump = Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 + c));
        const stripes = c % 3 === 1 ? 0.5 * Math.max(0, Math.sin((x + y * (c % 2 ? 1 : -1)) * 0.9)) : 0;
        const ramp = c % 3 === 2 ? (x / W) * 0.6 : 0;
        data[(c * H + y) * W + x] = (c + 1) * (bump + stripes + ramp);
      }
    }
  }
  return { name: 'synthetic', layer: 'synthetic', call: 0, shape: [1, C, H, W], data };
}

test('channel grid matches the golden PNG within tolerance', async () => {
  const grid = await renderChannelGrid(syntheticCapture(), {
    channels: 9,
    cellSize: 112,
    upsample: 'bilinear',
    normalize: 'shared',
    labels: false,
    gap: 6,
    background: '#1b1b1f',
    colormap: 'magma',
  });
  if (process.env.UPDATE_GOLDEN) fs.writeFileSync(GOLDEN, grid.png);
  const ours = await sharp(grid.png).raw().toBuffer({ resolveWithObject: true });
  const golden = await sharp(GOLDEN).raw().toBuffer({ resolveWithObject: true });
  expect([ours.info.width, ours.info.height, ours.info.channels]).toEqual([
    golden.info.width,
    golden.info.height,
    golden.info.channels,
  ]);
  let sum = 0;
  let max = 0;
  let off = 0;
  for (let i = 0; i < ours.data.length; i++) {
    const d = Math.abs(ours.data[i] - golden.data[i]);
    sum += d;
    max = Math.max(max, d);
    if (d > 2) off++;
  }
  // Float rounding on another CPU may move a colour index by one; nothing more.
  expect(sum / ours.data.length).toBeLessThanOrEqual(0.25);
  expect(off / ours.data.length).toBeLessThanOrEqual(0.001);
  expect(max).toBeLessThanOrEqual(16);
});
