// Grids of captures reduced on the device (issue 15, item 5): a capture taken with
// `channels: [3, 7, 9]` or `{ top: k }` holds k maps; the grid's cells carry the layer's real
// channel indices (before: 0, 1, 2, ...), and each cell shows the map of that real channel.
import { renderChannelGrid } from '../../lib/render';
import { cpuModelForTests, syntheticInput } from '../support/models';

const model = cpuModelForTests();

test('renderChannelGrid on an explicit channel list labels cells 3, 7, 9 and draws those maps', async () => {
  const x = syntheticInput(2, 64, 64);
  const [full] = await model().capture(x, 'layer1');
  const [reduced] = await model().capture(x, 'layer1', { channels: [3, 7, 9] });
  expect(reduced.shape).toEqual([2, 3, 16, 16]);
  for (const batchIndex of [0, 1]) {
    const grid = await renderChannelGrid(reduced, { batchIndex, labels: false, frame: false });
    const fromFull = await renderChannelGrid(full, { batchIndex, channels: [3, 7, 9], labels: false, frame: false });
    expect(grid.layout.map((c) => c.channel)).toEqual([3, 7, 9]);
    // Same maps, same ranges, same pixels as the grid of those channels from the full capture.
    expect(grid.layout).toEqual(fromFull.layout);
    expect(grid.png.equals(fromFull.png)).toBe(true);
  }
});

test('renderChannelGrid on a top-k capture labels each cell with its real channel, per image', async () => {
  const x = syntheticInput(2, 64, 64, 5);
  const [full] = await model().capture(x, 'layer2');
  const [top] = await model().capture(x, 'layer2', { channels: { top: 4, by: 'mean' } });
  for (const batchIndex of [0, 1]) {
    const grid = await renderChannelGrid(top, { batchIndex, frame: false });
    const real = Array.from(top.channels!.subarray(batchIndex * 4, batchIndex * 4 + 4));
    expect(grid.layout.map((c) => c.channel)).toEqual(real);
    expect(real.some((c, i) => c !== i)).toBe(true); // not simply 0..3
    const fromFull = await renderChannelGrid(full, { batchIndex, channels: real, frame: false });
    expect(grid.layout.map((c) => [c.channel, c.min, c.max])).toEqual(
      fromFull.layout.map((c) => [c.channel, c.min, c.max]),
    );
  }
});

test('the public renderChannelGrid frames a model capture with the weights banner and a title', async () => {
  const { renderChannelGrid: framedGrid } = await import('../../lib');
  const sharp = (await import('sharp')).default;
  const x = syntheticInput(1, 64, 64);
  const [cap] = await model().capture(x, 'layer1', { channels: [3, 7, 9] });
  // One renderChannelGrid: featscope's and featscope/dist/render's are the same function.
  expect(framedGrid).toBe(renderChannelGrid);
  const bare = await renderChannelGrid(cap, { frame: false });
  const framed = await framedGrid(cap);
  expect(model().metadata.weights?.trained).toBe(false);
  expect(framed.height).toBeGreaterThan(bare.height + 40); // banner (30 px) + title
  expect(framed.layout.map((c) => c.channel)).toEqual([3, 7, 9]);
  // The layout points at the same cells inside the framed picture: the pixels there are the bare grid's.
  const { data: fd, info: fi } = await sharp(framed.png).raw().toBuffer({ resolveWithObject: true });
  const { data: bd, info: bi } = await sharp(bare.png).raw().toBuffer({ resolveWithObject: true });
  for (let i = 0; i < 3; i++) {
    const f = framed.layout[i],
      b = bare.layout[i];
    for (const [ox, oy] of [
      [0, 0],
      [f.width - 1, f.height - 1],
      [f.width >> 1, f.height >> 1],
    ]) {
      const fp = ((f.y + oy) * fi.width + f.x + ox) * fi.channels;
      const bp = ((b.y + oy) * bi.width + b.x + ox) * bi.channels;
      expect([...fd.subarray(fp, fp + 3)]).toEqual([...bd.subarray(bp, bp + 3)]);
    }
  }
  // The banner is red for untrained weights (as on every CLI picture).
  const [r, g, b] = fd.subarray((4 * fi.width + 2) * fi.channels, (4 * fi.width + 2) * fi.channels + 3);
  expect(r).toBeGreaterThan(150);
  expect(g).toBeLessThan(100);
  expect(b).toBeLessThan(100);
  // frame: false, a spread copy, and a capture not from a model.
  expect((await framedGrid(cap, { frame: false })).png.equals(bare.png)).toBe(true);
  expect((await framedGrid({ ...cap })).height).toBe(framed.height);
  expect((await framedGrid({ shape: cap.shape, data: cap.data.slice() })).height).toBe(bare.height);
});
