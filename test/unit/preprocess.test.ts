import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { FeatscopeError } from '../../lib/errors';
import { IMAGENET_MEAN, IMAGENET_STD, bilinearResize, preprocess, roundHalfEven } from '../../lib/preprocess';
import { type OddImages, makeOddImages } from '../support/images';
import { diffStats, pythonHas, torchvisionPreprocess } from '../support/python';

const DOG = path.join(__dirname, '..', 'fixtures', 'images', 'dog.jpg');
let odd: OddImages;

beforeAll(async () => {
  odd = await makeOddImages();
});
afterAll(() => fs.rmSync(odd.dir, { recursive: true, force: true }));

/** Un-normalise one pixel of image n back to 0-255 RGB. */
function pixel(result: Awaited<ReturnType<typeof preprocess>>, n: number, y: number, x: number): number[] {
  const [, , h, w] = result.shape;
  return [0, 1, 2].map(
    (c) => Math.round((result.data[((n * 3 + c) * h + y) * w + x] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255) + 0,
  );
}

async function expectError(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FeatscopeError);
  expect((err as FeatscopeError).code).toBe(code);
  expect((err as FeatscopeError).message).toMatch(message);
}

describe('preprocess: inputs and output', () => {
  test('a path gives a 1x3x224x224 tensor and the 224x224 RGB image it came from', async () => {
    const r = await preprocess(DOG);
    expect(r.shape).toEqual([1, 3, 224, 224]);
    expect(r.data).toBeInstanceOf(Float32Array);
    expect(r.data.length).toBe(3 * 224 * 224);
    expect(r.images).toHaveLength(1);
    const img = r.images[0];
    expect([img.width, img.height, img.rgb.length, img.source]).toEqual([224, 224, 224 * 224 * 3, DOG]);
    // The tensor is the normalised image.
    for (const [y, x] of [
      [0, 0],
      [100, 37],
      [223, 223],
    ]) {
      expect(pixel(r, 0, y, x)).toEqual([...img.rgb.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3)]);
    }
  });

  test('Buffer, Uint8Array and sharp inputs equal the path input; an array is a batch', async () => {
    const fromPath = await preprocess(DOG, { resize: 'crop' });
    const bytes = fs.readFileSync(DOG);
    const batch = await preprocess([bytes, new Uint8Array(bytes), sharp(DOG)], { resize: 'crop' });
    expect(batch.shape).toEqual([3, 3, 224, 224]);
    for (let n = 0; n < 3; n++) {
      expect(batch.data.subarray(n * 3 * 224 * 224, (n + 1) * 3 * 224 * 224)).toEqual(fromPath.data);
    }
    expect(batch.images.map((i) => i.source)).toEqual([
      'input[0] (a Buffer of 163759 bytes)',
      'input[1] (a Uint8Array of length 163759)',
      'input[2] (a Sharp)',
    ]);
  });

  test('size, mean and std are honoured', async () => {
    const r = await preprocess(odd.plain, { size: 32, mean: [0, 0, 0], std: [1, 1, 1] });
    expect(r.shape).toEqual([1, 3, 32, 32]);
    expect(r.data[0]).toBeCloseTo(r.images[0].rgb[0] / 255, 6);
    expect(Math.min(...r.data)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...r.data)).toBeLessThanOrEqual(1);
  });

  test("roundHalfEven is Python's round (CenterCrop's offsets)", () => {
    expect([0.5, 1.5, 2.5, -0.5, 3.2, 16].map(roundHalfEven)).toEqual([0, 2, 2, -0, 3, 16]);
  });
});

describe('preprocess: real-world image kinds', () => {
  test('EXIF orientation is applied (landscape red|blue with orientation 6 becomes red over blue)', async () => {
    const r = await preprocess(odd.oriented, { size: 20 });
    const top = pixel(r, 0, 2, 10);
    const bottom = pixel(r, 0, 17, 10);
    expect(top[0]).toBeGreaterThan(200);
    expect(top[2]).toBeLessThan(50);
    expect(bottom[2]).toBeGreaterThan(200);
    expect(bottom[0]).toBeLessThan(50);
  });

  test('grey, 16-bit, alpha, palette, CMYK and animated inputs become 8-bit RGB', async () => {
    const grey = await preprocess(odd.grey, { size: 16 });
    expect(pixel(grey, 0, 3, 5)).toEqual([80, 80, 80]);
    const rgb16 = await preprocess(odd.rgb16, { size: 8 });
    expect(pixel(rgb16, 0, 4, 4)).toEqual([128, 64, 255]);
    const grey16 = await preprocess(odd.grey16, { size: 8 });
    expect(pixel(grey16, 0, 4, 4)).toEqual([32, 32, 32]);
    // Alpha is dropped, not composited: the transparent half keeps its red (as PIL's convert('RGB')).
    const rgba = await preprocess(odd.rgba, { size: 16 });
    expect(pixel(rgba, 0, 8, 2)).toEqual([0, 255, 0]);
    expect(pixel(rgba, 0, 8, 13)).toEqual([255, 0, 0]);
    const palette = await preprocess(odd.paletteAlpha, { size: 16 });
    expect(pixel(palette, 0, 2, 2)).toEqual([0, 0, 255]);
    const cmyk = await preprocess(odd.cmyk, { size: 8 });
    const orange = pixel(cmyk, 0, 4, 4);
    [240, 130, 20].forEach((v, c) => expect(Math.abs(orange[c] - v)).toBeLessThanOrEqual(20));
    // First frame of an animation (red), not the second (blue) or both stacked.
    const gif = await preprocess(odd.animated, { size: 8 });
    expect(pixel(gif, 0, 7, 4)).toEqual([255, 0, 0]);
  });

  const withTorchvision = pythonHas('torchvision', 'PIL') ? test : test.skip;
  withTorchvision('odd kinds equal PIL + torchvision exactly (CMYK aside: PIL converts it naively)', async () => {
    const files = [odd.oriented, odd.grey, odd.rgb16, odd.grey16, odd.rgba, odd.paletteAlpha, odd.animated];
    for (const mode of ['squash', 'crop'] as const) {
      const ours = await preprocess(files, { resize: mode, size: 12 });
      const ref = torchvisionPreprocess(files, mode, ['--size', '12']);
      const plane = 3 * 12 * 12;
      files.forEach((file, n) => {
        const stats = diffStats(
          ours.data.subarray(n * plane, (n + 1) * plane),
          ref.subarray(n * plane, (n + 1) * plane),
        );
        expect({ file, mode, ...stats }).toEqual({ file, mode, mean: 0, p99: 0, max: 0 });
      });
    }
  });
});

describe('bilinearResize', () => {
  test('a 1x1 image is enlarged to a constant 224x224 input', async () => {
    const px = await sharp({ create: { width: 1, height: 1, channels: 3, background: { r: 200, g: 100, b: 50 } } })
      .png()
      .toBuffer();
    const r = await preprocess(px);
    expect(r.shape).toEqual([1, 3, 224, 224]);
    const plane = 224 * 224;
    [200, 100, 50].forEach((v, c) => {
      const want = (v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
      const ch = r.data.subarray(c * plane, (c + 1) * plane);
      expect(Math.max(...ch) - Math.min(...ch)).toBe(0);
      expect(ch[0]).toBeCloseTo(want, 5);
    });
  });

  test('same size is a copy; a constant image stays constant when shrinking and enlarging', () => {
    const src = Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => (i * 37) % 256);
    expect(bilinearResize(src, 5, 4, 3, 5, 4)).toEqual(src);
    const flat = new Uint8Array(30 * 20 * 3).fill(77);
    expect(new Set(bilinearResize(flat, 30, 20, 3, 7, 11))).toEqual(new Set([77]));
    expect(new Set(bilinearResize(flat, 30, 20, 3, 97, 45))).toEqual(new Set([77]));
  });
});

describe('preprocess: bad inputs', () => {
  test('a missing file or a directory is IMAGE_NOT_FOUND, naming the path', async () => {
    await expectError(
      preprocess('no/such/photo.jpg'),
      'IMAGE_NOT_FOUND',
      /Image file not found: "no\/such\/photo\.jpg".*check the path/,
    );
    await expectError(preprocess(odd.dir), 'IMAGE_NOT_FOUND', /is not a regular file/);
  });

  test('empty, truncated and non-image files are IMAGE_DECODE, naming the file', async () => {
    await expectError(preprocess(odd.empty), 'IMAGE_DECODE', /empty\.jpg.*empty \(0 bytes\)/);
    await expectError(preprocess(odd.truncated), 'IMAGE_DECODE', /truncated\.jpg.*premature end of JPEG/);
    await expectError(preprocess(odd.textAsPng), 'IMAGE_DECODE', /not-an-image\.png.*unsupported image format/);
    await expectError(preprocess(Buffer.alloc(0)), 'IMAGE_DECODE', /input \(a Buffer of 0 bytes\).*empty/);
    await expectError(
      preprocess([fs.readFileSync(odd.plain), Buffer.from('hello')]),
      'IMAGE_DECODE',
      /input\[1\] \(a Buffer of 5 bytes\).*unsupported image format/,
    );
  });

  test('an image above maxInputPixels is IMAGE_TOO_LARGE, for paths, Buffers and sharp instances', async () => {
    const msg = /64x48 = 3072 pixels, above the limit of 1000; pass a larger maxInputPixels/;
    await expectError(preprocess(odd.plain, { maxInputPixels: 1000 }), 'IMAGE_TOO_LARGE', msg);
    await expectError(preprocess(fs.readFileSync(odd.plain), { maxInputPixels: 1000 }), 'IMAGE_TOO_LARGE', msg);
    await expectError(preprocess(sharp(odd.plain), { maxInputPixels: 1000 }), 'IMAGE_TOO_LARGE', msg);
  });

  test('bad arguments are INVALID_ARGUMENT or UNKNOWN_OPTION with what was expected and received', async () => {
    await expectError(
      preprocess(42 as never),
      'INVALID_ARGUMENT',
      /Expected an image file path, a Buffer .* for input but received 42/,
    );
    await expectError(preprocess([]), 'INVALID_ARGUMENT', /non-empty array .* received an array of length 0/);
    await expectError(
      preprocess(DOG, { resize: 'stretch' as never }),
      'INVALID_ARGUMENT',
      /'squash'.*'crop'.*for resize but received "stretch"/,
    );
    await expectError(
      preprocess(DOG, { size: 0 }),
      'INVALID_ARGUMENT',
      /integer between 1 and 8192 for size but received 0/,
    );
    await expectError(
      preprocess(DOG, { mean: [0.5, 0.5] }),
      'INVALID_ARGUMENT',
      /3 finite numbers.* for mean but received an array of length 2/,
    );
    await expectError(preprocess(DOG, { std: [1, 0, 1] }), 'INVALID_ARGUMENT', /3 finite positive numbers.* for std/);
    await expectError(
      preprocess(DOG, { resise: 'crop' } as never),
      'UNKNOWN_OPTION',
      /Unknown option "resise" for preprocess; known options: resize, size/,
    );
  });
});

test("a model's stored mean, std and size are the defaults; explicit options win", async () => {
  const file = path.join(__dirname, '..', 'fixtures', 'images', 'dog.jpg');
  const model = {
    metadata: {
      input: {
        size: [64, 64] as [number, number],
        mean: [0.5, 0.5, 0.5] as [number, number, number],
        std: [0.25, 0.25, 0.25] as [number, number, number],
      },
    },
  };
  const viaModel = await preprocess(file, { model });
  const explicit = await preprocess(file, { size: 64, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
  expect(viaModel.shape).toEqual([1, 3, 64, 64]);
  expect(Buffer.compare(Buffer.from(viaModel.data.buffer), Buffer.from(explicit.data.buffer))).toBe(0);
  const overridden = await preprocess(file, { model, size: 32 });
  expect(overridden.shape).toEqual([1, 3, 32, 32]);
  await expect(preprocess(file, { model: 'resnet' as never })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/a Model from loadModel\(\) .* for model but received "resnet"/),
  });
});
