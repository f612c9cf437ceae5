/**
 * Colour bars in real values (issue 15, item 5): the CLI's framed overlays carry one, and grids
 * drawn with normalize 'shared' use one scale for every cell, stated by a colour bar under them.
 */
import { COLOUR_BAR_HEIGHT } from '../../lib/render/colour-bar';
import { colormapRGB } from '../../lib/render/colormaps';
import { renderImageLayers } from '../../lib/visualize';
import { makeCapture } from '../support/captures';
import { barRows, decode, px } from '../support/colour-bar';

const image = { rgb: Buffer.alloc(64 * 64 * 3, 120), width: 64, height: 64 };
// Channel c spans c .. c + 0.63, channel 3 13 .. 13.63: four ranges that differ.
const cap = makeCapture([1, 4, 8, 8], (_n, c, y, x) => c + (y * 8 + x) / 100 + (c === 3 ? 10 : 0), 'block');
const label = { metadata: { weights: { source: 'random init', trained: false } }, source: 'x.png' };

test('the framed overlay has a colour bar under the photo; the bare one (API, no label) has none', async () => {
  const [framed] = await renderImageLayers(image, [cap], 0, { overlay: true, label });
  const [bare] = await renderImageLayers(image, [cap], 0, { overlay: true });
  const withBar = await decode(framed.overlay!.png);
  const rows = barRows(withBar, 'turbo');
  expect(rows.length).toBeGreaterThanOrEqual(8);
  // Under the 128 px photo (the overlay is drawn at twice the input size), inside the bar's band.
  expect(Math.min(...rows)).toBeGreaterThan(withBar.height - COLOUR_BAR_HEIGHT - 20);
  expect(barRows(await decode(bare.overlay!.png), 'turbo')).toEqual([]);
});

test("normalize 'shared': one range for every cell (the shown channels' min and max) and a colour bar", async () => {
  const [shared] = await renderImageLayers(image, [cap], 0, { overlay: false, normalize: 'shared', label });
  const [own] = await renderImageLayers(image, [cap], 0, { overlay: false, label });
  // Independent of the renderer: the min and max over all four channels' values.
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of cap.data) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  for (const cell of shared.grid.layout) {
    expect(cell.vmin).toBeCloseTo(lo, 5);
    expect(cell.vmax).toBeCloseTo(hi, 5);
  }
  own.grid.layout.forEach((cell) => {
    const base = cell.channel + (cell.channel === 3 ? 10 : 0);
    expect(cell.vmin).toBeCloseTo(base, 5);
    expect(cell.vmax).toBeCloseTo(base + 0.63, 5);
  });
  const a = await decode(shared.grid.png);
  expect(barRows(a, 'viridis').length).toBeGreaterThanOrEqual(8);
  expect(barRows(await decode(own.grid.png), 'viridis')).toEqual([]);
  // With one scale, channel 0 (values 0 .. 0.63 of 0 .. 13.63) is drawn in the map's first
  // colours only, and channel 3 reaches its last colour.
  const cellMax = (i: number) => {
    const c = shared.grid.layout[i];
    let best = 0;
    const ramp = Array.from({ length: 256 }, (_, k) => colormapRGB('viridis', k / 255).join(','));
    for (let y = c.y; y < c.y + c.height; y++)
      for (let x = c.x; x < c.x + c.width; x++) best = Math.max(best, ramp.indexOf(px(a, x, y).join(',')));
    return best / 255;
  };
  expect(cellMax(0)).toBeLessThan(0.1);
  expect(cellMax(3)).toBe(1);
});
