/** The frame around CLI and visualize() pictures: weights banner, title, picture, caption. */
import sharp from 'sharp';
import { BANNER_HEIGHT, frameCanvas } from '../../lib/render/frame';
import type { ModelMetadata } from '../../lib/metadata';
import { renderImageLayers } from '../../lib/visualize';
import { makeCapture } from '../support/captures';

function pattern(width: number, height: number): { data: Uint8Array; width: number; height: number } {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set([i % 251, (i * 7) % 253, 40], i * 3);
  return { data, width, height };
}

const px = (c: { data: Uint8Array; width: number }, x: number, y: number) => [
  ...c.data.subarray((y * c.width + x) * 3, (y * c.width + x) * 3 + 3),
];

describe('frameCanvas', () => {
  test.each([
    ['untrained', { weights: { source: 'random init (seed 0)', trained: false } }, [0xc6, 0x28, 0x28]],
    ['trained', { weights: { source: 'torchvision IMAGENET1K_V1', trained: true } }, [0xee, 0xf3, 0xf8]],
    ['unknown', {}, [0xf9, 0xa8, 0x25]],
  ] as Array<[string, ModelMetadata, number[]]>)(
    '%s weights: banner colour, banner text, title, the picture unchanged, captions',
    async (_k, meta, colour) => {
      const image = pattern(400, 120);
      const framed = await frameCanvas(image, meta, 'dog.jpg · layer1', ['first caption line', 'second']);
      expect(framed.width).toBe(400);
      expect(framed.height).toBe(BANNER_HEIGHT + 28 + 120 + 2 * 18 + 10);
      expect(px(framed, 0, 0)).toEqual(colour);
      expect(px(framed, 399, BANNER_HEIGHT - 1)).toEqual(colour);
      const inkIn = (y0: number, y1: number, bg: number[]) => {
        let n = 0;
        for (let y = y0; y < y1; y++)
          for (let x = 0; x < framed.width; x++) if (px(framed, x, y).some((v, i) => Math.abs(v - bg[i]) > 60)) n++;
        return n;
      };
      expect(inkIn(0, BANNER_HEIGHT, colour)).toBeGreaterThan(100); // the banner's text
      expect(inkIn(BANNER_HEIGHT, BANNER_HEIGHT + 28, [255, 255, 255])).toBeGreaterThan(100); // title
      const top = BANNER_HEIGHT + 28;
      for (let y = 0; y < 120; y++)
        expect(
          Buffer.from(framed.data.subarray((top + y) * 400 * 3, (top + y + 1) * 400 * 3)).equals(
            Buffer.from(image.data.subarray(y * 1200, (y + 1) * 1200)),
          ),
        ).toBe(true);
      expect(inkIn(top + 120, top + 120 + 18, [255, 255, 255])).toBeGreaterThan(50); // caption line 1
      expect(inkIn(top + 120 + 18, framed.height, [255, 255, 255])).toBeGreaterThan(20); // caption line 2
    },
  );

  test('a narrow picture is centred in a frame at least 360 px wide', async () => {
    const framed = await frameCanvas(pattern(100, 50), { weights: { source: 's', trained: true } }, 't', []);
    expect(framed.width).toBe(360);
    expect(px(framed, 130, BANNER_HEIGHT + 28)).toEqual(px(pattern(100, 50), 0, 0));
    expect(px(framed, 129, BANNER_HEIGHT + 28)).toEqual([255, 255, 255]);
  });
});

test('renderImageLayers with a label: the layout points at the cells inside the framed grid', async () => {
  const cap = makeCapture([1, 6, 8, 8], (_n, c, y, x) => c * 100 + y * 8 + x, 'block');
  const image = { rgb: Buffer.alloc(32 * 32 * 3, 90), width: 32, height: 32 };
  const [plain] = await renderImageLayers(image, [cap], 0, { overlay: false });
  const [framed] = await renderImageLayers(image, [cap], 0, {
    overlay: false,
    label: { metadata: {}, source: 'x.png' },
  });
  const decode = async (png: Buffer) => {
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    return { data, width: info.width };
  };
  const [a, b] = [await decode(plain.grid.png), await decode(framed.grid.png)];
  expect(framed.grid.height).toBeGreaterThan(plain.grid.height + BANNER_HEIGHT);
  plain.grid.layout.forEach((cell, i) => {
    const moved = framed.grid.layout[i];
    for (const [dx, dy] of [
      [0, 0],
      [cell.width - 1, cell.height - 1],
      [3, 5],
    ]) {
      expect(px(b, moved.x + dx, moved.y + dy)).toEqual(px(a, cell.x + dx, cell.y + dy));
    }
  });
});
