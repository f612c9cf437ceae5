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
    const grid = await renderChannelGrid(reduced, { batchIndex, labels: false });
    const fromFull = await renderChannelGrid(full, { batchIndex, channels: [3, 7, 9], labels: false });
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
    const grid = await renderChannelGrid(top, { batchIndex });
    const real = Array.from(top.channels!.subarray(batchIndex * 4, batchIndex * 4 + 4));
    expect(grid.layout.map((c) => c.channel)).toEqual(real);
    expect(real.some((c, i) => c !== i)).toBe(true); // not simply 0..3
    const fromFull = await renderChannelGrid(full, { batchIndex, channels: real });
    expect(grid.layout.map((c) => [c.channel, c.min, c.max])).toEqual(fromFull.layout.map((c) => [c.channel, c.min, c.max]));
  }
});
