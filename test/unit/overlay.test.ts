import * as path from 'path';
import sharp from 'sharp';
import { FeatscopeError } from '../../lib/errors';
import { preprocess } from '../../lib/preprocess';
import { channelMean, colormapRGB, renderLayerSummary, renderOverlay } from '../../lib/render';
import { makeCapture as capture } from '../support/captures';

const CHELSEA = path.join(__dirname, '..', 'fixtures', 'images', 'chelsea.png'); // 451 x 300

async function decode(png: Buffer) {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, ...info };
}

describe('channelMean', () => {
  test('averages the channels of the chosen image', () => {
    const cap = capture([2, 4, 3, 5], (n, c, y, x) => n * 1000 + c * 10 + y * 5 + x);
    const m = channelMean(cap, 1);
    expect([m.width, m.height]).toEqual([5, 3]);
    expect(Array.from(m.data)).toEqual(Array.from({ length: 15 }, (_, i) => 1000 + 15 + i));
  });
});

describe('renderOverlay', () => {
  const map = { data: Float32Array.from([0, 1, 2, 3, 4, 5]), width: 3, height: 2 };

  test("on preprocess()'s image: 224 x 224, heatmap blended with the photo", async () => {
    const { images } = await preprocess(CHELSEA);
    const out = await renderOverlay(images[0], map, { alpha: 1, colormap: 'viridis' });
    expect([out.width, out.height]).toEqual([224, 224]);
    const img = await decode(out.png);
    expect([img.width, img.height, img.channels]).toEqual([224, 224, 3]);
    // alpha 1: pure heatmap; the corners hold the map's corner values (bilinear clamps at borders).
    expect([...img.data.subarray(0, 3)]).toEqual(colormapRGB('viridis', 0));
    expect([...img.data.subarray(img.data.length - 3)]).toEqual(colormapRGB('viridis', 1));
    // alpha 0: the photo itself.
    const photo = await decode((await renderOverlay(images[0], map, { alpha: 0 })).png);
    expect(photo.data.equals(images[0].rgb)).toBe(true);
    // alpha 0.5: halfway.
    const half = await decode((await renderOverlay(images[0], map, { alpha: 0.5, colormap: 'viridis' })).png);
    const heat = colormapRGB('viridis', 0);
    [0, 1, 2].forEach((c) =>
      expect(Math.abs(half.data[c] - (images[0].rgb[c] + heat[c]) / 2)).toBeLessThanOrEqual(0.5),
    );
  });

  test('on a photo path keeps the photo size', async () => {
    const out = await renderOverlay(CHELSEA, map, { range: [0, 10] });
    expect([out.width, out.height]).toEqual([451, 300]);
    const img = await decode(out.png);
    expect([img.width, img.height]).toEqual([451, 300]);
  });

  test('bad inputs', async () => {
    const { images } = await preprocess(CHELSEA, { size: 16 });
    await expect(renderOverlay(images[0], { data: new Float32Array(5), width: 3, height: 2 })).rejects.toThrow(
      'Expected 6 values for a 3x2 map but its data holds 5',
    );
    await expect(renderOverlay(images[0], map, { alpha: 2 })).rejects.toThrow(
      'Expected a number from 0 to 1 for alpha but received 2',
    );
    await expect(renderOverlay(images[0], map, { range: [3, 1] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(renderOverlay(images[0], map, { opacity: 1 } as never)).rejects.toMatchObject({
      code: 'UNKNOWN_OPTION',
    });
    await expect(renderOverlay({ rgb: Buffer.alloc(3), width: 2, height: 2 }, map)).rejects.toBeInstanceOf(
      FeatscopeError,
    );
    await expect(renderOverlay('missing.png', map)).rejects.toMatchObject({
      code: 'IMAGE_NOT_FOUND',
      message: expect.stringContaining('"missing.png"'),
    });
    await expect(renderOverlay(Buffer.from('nope'), map)).rejects.toMatchObject({ code: 'IMAGE_DECODE' });
  });
});

describe('renderLayerSummary', () => {
  test('mean over channels, colour-mapped, longer side = size, aspect kept', async () => {
    const cap = capture([1, 3, 7, 14], (_n, c, _y, x) => c + x);
    const s = await renderLayerSummary(cap, { size: 112, upsample: 'nearest', colormap: 'gray' });
    expect([s.width, s.height, s.min, s.max]).toEqual([112, 56, 1, 14]);
    const img = await decode(s.png);
    expect([img.width, img.height]).toEqual([112, 56]);
    expect([...img.data.subarray(0, 3)]).toEqual([0, 0, 0]);
    expect([...img.data.subarray(111 * 3, 112 * 3)]).toEqual([255, 255, 255]);
    await expect(renderLayerSummary(cap, { size: 0 })).rejects.toThrow(
      'Expected an integer from 1 to 8192 for size but received 0',
    );
  });
});
