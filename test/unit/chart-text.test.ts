/** Chart helpers behind readable pictures (issue 15, item 5): round ticks, titles that fit. */
import { niceTicks } from '../../lib/render/chart';
import { fitSize, textWidth } from '../../lib/render/svg';

test('niceTicks: round steps (1, 2, 2.5, 5 × 10^k) that cover the range', () => {
  expect(niceTicks(0, 12.6)).toEqual([0, 5, 10, 15]);
  expect(niceTicks(0, 11)).toEqual([0, 2.5, 5, 7.5, 10, 12.5]);
  expect(niceTicks(0, 0.078)).toEqual([0, 0.02, 0.04, 0.06, 0.08]);
  expect(niceTicks(-0.3, 1.2)).toEqual([-0.5, 0, 0.5, 1, 1.5]);
  expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
  // A flat range still gets an axis around its value.
  const flat = niceTicks(3, 3);
  expect(flat[0]).toBeLessThan(3);
  expect(flat[flat.length - 1]).toBeGreaterThan(3);
});

test('fitSize: smaller type before cutting; cut with … only at the smallest size', () => {
  const title = 'layer2.0.downsample.0.weight [128×64×1×1]';
  const fit = fitSize(title, [12, 11, 10, 9], 288);
  expect(fit.text).toBe(title);
  expect(fit.size).toBeLessThan(12);
  expect(textWidth(title, fit.size)).toBeLessThanOrEqual(288);
  expect(fitSize('short', [12, 11], 288)).toEqual({ text: 'short', size: 12 });
  const cut = fitSize('x'.repeat(100), [12, 10], 120);
  expect(cut.size).toBe(10);
  expect(cut.text.endsWith('…')).toBe(true);
});
