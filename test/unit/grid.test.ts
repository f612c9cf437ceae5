import sharp from 'sharp';
import { FeatscopeError } from '../../lib/errors';
import { colormapRGB, rankChannels, renderChannelGrid } from '../../lib/render';
import type { Capture } from '../../lib/types';
import { makeCapture as capture } from '../support/captures';

/** Deterministic pseudo-random numbers (Park-Miller). */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647;
  };
}

async function decode(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

function at(img: { data: Buffer; width: number; channels: number }, x: number, y: number): number[] {
  const i = (y * img.width + x) * img.channels;
  return [...img.data.subarray(i, i + 3)];
}

function expectError(fn: () => unknown, code: string, message: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FeatscopeError);
  expect((err as FeatscopeError).code).toBe(code);
  expect((err as FeatscopeError).message).toMatch(message);
}

describe('renderChannelGrid geometry', () => {
  // Channel c is constant c: with a shared range 0..C-1 each cell's colour names its channel.
  const C = 20;
  const flat = capture([1, C, 6, 6], (_n, c) => c);

  test('default: first 16 channels in a 4 x 4 grid, the right channel in each cell', async () => {
    const grid = await renderChannelGrid(flat, { normalize: 'shared', labels: false, gap: 2, cellSize: 30 });
    expect(grid.layout.map((c) => c.channel)).toEqual([...Array(16).keys()]);
    expect([grid.width, grid.height]).toEqual([4 * 30 + 5 * 2, 4 * 30 + 5 * 2]);
    const img = await decode(grid.png);
    expect([img.width, img.height, img.channels]).toEqual([grid.width, grid.height, 3]);
    for (const cell of grid.layout) {
      expect(cell.x).toBe(2 + (cell.channel % 4) * 32);
      expect(cell.y).toBe(2 + Math.floor(cell.channel / 4) * 32);
      expect([cell.width, cell.height, cell.vmin, cell.vmax]).toEqual([30, 30, 0, 15]);
      const expected = colormapRGB('viridis', cell.channel / 15);
      // Every corner of the cell, and the gap around it stays background.
      for (const [dx, dy] of [
        [0, 0],
        [29, 0],
        [0, 29],
        [29, 29],
        [15, 15],
      ])
        expect(at(img, cell.x + dx, cell.y + dy)).toEqual(expected);
      expect(at(img, cell.x - 1, cell.y - 1)).toEqual([255, 255, 255]);
      expect(at(img, cell.x + 30, cell.y + 30)).toEqual([255, 255, 255]);
    }
  });

  test('an explicit list keeps its order; columns wrap; partial last row', async () => {
    const grid = await renderChannelGrid(flat, {
      channels: [19, 3, 7, 0, 11],
      columns: 2,
      normalize: 'shared',
      labels: false,
      gap: 0,
      cellSize: 10,
      colormap: 'gray',
      background: '#ff00ff',
    });
    expect([grid.width, grid.height]).toEqual([20, 30]);
    expect(grid.layout.map((c) => [c.channel, c.x, c.y])).toEqual([
      [19, 0, 0],
      [3, 10, 0],
      [7, 0, 10],
      [0, 10, 10],
      [11, 0, 20],
    ]);
    const img = await decode(grid.png);
    for (const cell of grid.layout)
      expect(at(img, cell.x + 5, cell.y + 5)).toEqual(colormapRGB('gray', cell.channel / 19));
    expect(at(img, 15, 25)).toEqual([255, 0, 255]); // empty slot: background
  });

  test('the colour of a known value: nearest upsampling by 8, per-channel range', async () => {
    // 4 x 4 ramp 0..15 (plus 100 * channel, which per-channel normalisation removes).
    const ramp = capture([2, 3, 4, 4], (n, c, y, x) => (n === 1 ? 100 * c + y * 4 + x : -1));
    const grid = await renderChannelGrid(ramp, {
      channels: 3,
      batchIndex: 1,
      cellSize: 32,
      labels: false,
      colormap: 'magma',
    });
    const img = await decode(grid.png);
    for (const cell of grid.layout) {
      expect([cell.min, cell.max, cell.vmin, cell.vmax]).toEqual([
        100 * cell.channel,
        100 * cell.channel + 15,
        100 * cell.channel,
        100 * cell.channel + 15,
      ]);
      for (let v = 0; v < 16; v++) {
        const [y, x] = [Math.floor(v / 4), v % 4];
        expect(at(img, cell.x + x * 8 + 3, cell.y + y * 8 + 4)).toEqual(colormapRGB('magma', v / 15));
      }
    }
  });

  test('non-square maps keep their aspect; labels sit below cells without touching them', async () => {
    const wide = capture([1, 4, 7, 14], (_n, c, y, x) => c + x);
    const grid = await renderChannelGrid(wide, { cellSize: 140, labels: true, background: '#000000' });
    const img = await decode(grid.png);
    const cell = grid.layout[3];
    expect([cell.width, cell.height]).toEqual([140, 70]);
    expect(grid.height).toBeGreaterThan(2 * 70 + 3 * 4 + 2 * 10); // room for two label rows
    // Label pixels: light text on black in the strip under each cell.
    for (const c of grid.layout) {
      let lit = 0;
      for (let y = c.y + c.height + 1; y < c.y + c.height + 20; y++)
        for (let x = c.x; x < c.x + c.width; x++) lit += at(img, x, y)[0] > 128 ? 1 : 0;
      expect(lit).toBeGreaterThan(30);
      // The text leaves the cell itself alone: its bottom row still shows the map.
      for (const x of [5, 75, 135])
        expect(at(img, c.x + x, c.y + c.height - 1)).toEqual(colormapRGB('viridis', Math.floor(x / 10) / 13));
    }
  });
});

describe('rankChannels', () => {
  const rnd = random(7);
  const cap = capture([2, 37, 5, 9], () => rnd() * 10 - 5);

  function bruteForce(by: 'max' | 'mean', batchIndex: number) {
    const [, C, H, W] = cap.shape;
    const rows = [];
    for (let c = 0; c < C; c++) {
      const plane = Array.from(cap.data.subarray((batchIndex * C + c) * H * W, (batchIndex * C + c + 1) * H * W));
      const max = Math.max(...plane);
      const arg = plane.indexOf(max);
      const mean = plane.reduce((a, b) => a + b, 0) / plane.length;
      rows.push({ channel: c, score: by === 'max' ? max : mean, maxAt: { y: Math.floor(arg / W), x: arg % W } });
    }
    return rows.sort((a, b) => b.score - a.score || a.channel - b.channel);
  }

  test.each([
    ['max', 0],
    ['max', 1],
    ['mean', 1],
  ] as const)('top-k by %s (batch index %d) equals a brute-force sort', (by, batchIndex) => {
    const ranked = rankChannels(cap, { by, k: 10, batchIndex });
    const expected = bruteForce(by, batchIndex).slice(0, 10);
    expect(ranked.map((r) => r.channel)).toEqual(expected.map((r) => r.channel));
    ranked.forEach((r, i) => {
      expect(r.score).toBeCloseTo(expected[i].score, 5);
      expect(r.maxAt).toEqual(expected[i].maxAt);
    });
    expect(rankChannels(cap, { by, batchIndex })).toHaveLength(37);
  });

  test('the grid draws the top-k channels in rank order, labelled with the ranking metric', async () => {
    const grid = await renderChannelGrid(cap, { channels: { top: 5, by: 'mean' }, batchIndex: 1 });
    expect(grid.layout.map((c) => c.channel)).toEqual(
      bruteForce('mean', 1)
        .slice(0, 5)
        .map((r) => r.channel),
    );
  });
});

describe('bad inputs', () => {
  const cap = capture([1, 8, 4, 4], () => 1);
  test('rankChannels', () => {
    expectError(
      () => rankChannels(cap, { by: 'median' as never }),
      'INVALID_ARGUMENT',
      /Expected 'max' or 'mean' for by but received "median"/,
    );
    expectError(() => rankChannels(cap, { k: 9 }), 'INVALID_ARGUMENT', /integer from 1 to 8 .* for k but received 9/);
    expectError(
      () => rankChannels(cap, { top: 3 } as never),
      'UNKNOWN_OPTION',
      /Unknown option "top" for rankChannels/,
    );
  });

  test('renderChannelGrid options and captures', async () => {
    const grid = (o: object, c: unknown = cap) => renderChannelGrid(c as Capture, o);
    await expect(grid({ channels: 9 })).rejects.toThrow(/Expected a count from 1 to 8 .* for channels but received 9/);
    await expect(grid({ channels: [0, 8] })).rejects.toThrow(
      /Expected channel indices from 0 to 7 for channels but received 8/,
    );
    await expect(grid({ channels: { top: 3, by: 'max', extra: 1 } })).rejects.toMatchObject({ code: 'UNKNOWN_OPTION' });
    await expect(grid({ colormap: 'jet' })).rejects.toMatchObject({ name: 'FeatscopeError', code: 'INVALID_ARGUMENT' });
    await expect(grid({ background: 'red' })).rejects.toThrow(
      /Expected a colour as '#rrggbb'.* for background but received "red"/,
    );
    await expect(grid({ batchIndex: 1 })).rejects.toThrow(
      /integer from 0 to 0 \(the batch holds 1\) for batchIndex but received 1/,
    );
    await expect(grid({ cellsize: 3 })).rejects.toMatchObject({
      code: 'UNKNOWN_OPTION',
      message: expect.stringMatching(/"cellsize".*cellSize/),
    });
    await expect(grid({}, { ...cap, shape: [1, 8, 4, 5] })).rejects.toThrow(
      /Expected 160 values .* shape \[1, 8, 4, 5\] but its data holds 128/,
    );
    await expect(grid({}, { shape: [1, 1000], data: new Float32Array(1000) })).rejects.toThrow(
      /linear layer output, pick a convolutional layer/,
    );
    await expect(grid({}, { shape: [1, 8, 4, 4], data: [1, 2] })).rejects.toBeInstanceOf(FeatscopeError);
  });
});
