// Per-channel statistics computed two ways, one definition: the native `stats: true` columns that
// `featscope stats` accumulates (LayerAccumulator) and channelStats over the full maps in JS.
import { channelStats } from '../../lib';
import { cpuModelForTests, syntheticInput } from '../support/models';

const model = cpuModelForTests();

test('a capture with stats: true gives channelStats mean, max and the position of the max', async () => {
  const x = syntheticInput(2, 64, 48, 3);
  const [full] = await model().capture(x, ['layer1.0.conv1']);
  const [reduced] = await model().capture(x, ['layer1.0.conv1'], { stats: true, maxSize: 1 });
  const [n, c, , w] = full.shape;
  expect(reduced.stats!.shape).toEqual([n, c]);
  for (let b = 0; b < n; b++) {
    for (const s of channelStats(full, b)) {
      const at = b * c + s.channel;
      expect(reduced.stats!.max[at]).toBe(s.max);
      expect(reduced.stats!.argmax[at]).toBe(s.maxAt.y * w + s.maxAt.x);
      // Native sums in float32, channelStats in double.
      expect(Math.abs(reduced.stats!.mean[at] - s.mean)).toBeLessThanOrEqual(1e-5 * (Math.abs(s.mean) + 1e-3));
    }
  }
});
