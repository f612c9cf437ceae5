// channelStats: the one per-channel statistics function (grids, ranking, layerStatistics).
import { channelStats } from '../../lib/render';
import { layerStatistics } from '../../lib/visualize';

// 2 images x 3 channels of 2 x 3 maps, values chosen by hand.
const maps = [
  // image 0
  [1, 0, 3, -2, 0, 5], // ch 0: min -2, max 5 at (1, 2), sum 7, 2 zeros
  [NaN, 4, 4, 1, 0, -1], // ch 1: NaN skipped for min/max, first max at (0, 1), mean NaN
  [NaN, NaN, NaN, NaN, NaN, NaN], // ch 2: no number
  // image 1
  [0, 0, 0, 0, 0, 0],
  [-1, -2, -3, -4, -5, -6],
  [2.5, 2.5, 0.5, 0.5, 0, 0],
];
const capture = { name: 'hand', shape: [2, 3, 2, 3], data: Float32Array.from(maps.flat()) };

test('channelStats gives min, max (NaNs skipped), mean, sum, zeros and the first max position per channel', () => {
  const [a, b, c] = channelStats(capture, 0);
  expect(a).toEqual({ channel: 0, min: -2, max: 5, mean: 7 / 6, maxAt: { y: 1, x: 2 }, sum: 7, zeros: 2 });
  expect(b.min).toBe(-1);
  expect(b.max).toBe(4);
  expect(b.maxAt).toEqual({ y: 0, x: 1 });
  expect(b.mean).toBeNaN();
  expect(b.zeros).toBe(1);
  expect(c.min).toBeNaN();
  expect(c.max).toBeNaN();
  expect(c.zeros).toBe(0);
  const second = channelStats(capture, 1);
  expect(second.map((s) => [s.min, s.max, s.sum, s.zeros])).toEqual([
    [0, 0, 0, 6],
    [-6, -1, -21, 0],
    [0, 2.5, 6, 2],
  ]);
});

test('channelStats on listed channel positions keeps their order, and refuses positions outside the capture', () => {
  expect(channelStats(capture, 1, [2, 0]).map((s) => [s.channel, s.max])).toEqual([
    [2, 2.5],
    [0, 0],
  ]);
  expect(() => channelStats(capture, 0, [3])).toThrow(/channel positions from 0 to 2/);
  expect(() => channelStats(capture, 2)).toThrow(/batchIndex/);
});

test('layerStatistics is channelStats summed over the layer', () => {
  const { stats, channels } = layerStatistics(capture, 1);
  expect(stats).toEqual({ min: -6, max: 2.5, mean: -15 / 18, zeroFraction: 8 / 18, deadChannels: [0, 1] });
  expect(channels.zeroFraction).toEqual([1, 0, 2 / 6]);
  // A map with no number: max -Infinity in the columns, and dead.
  const first = layerStatistics(capture, 0);
  expect(first.channels.max).toEqual([5, 4, -Infinity]);
  expect(first.stats.deadChannels).toEqual([2]);
  expect(first.stats.min).toBe(-2);
});
