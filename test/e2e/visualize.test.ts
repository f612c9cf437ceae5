/** visualize(): the blog's script in one call through the native core; and the notebook helpers with a stand-in display (test/e2e/notebook.test.ts runs them in Jupyter). */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { visualize } from '../../lib/visualize';
import { showGrid, showOverlay, tslabDisplay } from '../../lib/notebook';
import { loadModel } from '../../lib/model';
import { preprocess } from '../../lib/preprocess';
import { FeatscopeError } from '../../lib/errors';
import { MODELS, ensureTestModels } from '../support/models';
import { DOG, tempDir } from '../support/cli';

beforeAll(() => ensureTestModels());

test('visualize writes a grid and an overlay per layer and returns paths and per-channel stats', async () => {
  const outDir = tempDir('visualize');
  const r = await visualize(DOG, { model: MODELS.scripted, layers: ['layer1.0.conv1', 'layer3'], outDir });
  expect(r.files.map((f) => path.basename(f))).toEqual([
    'dog.layer1.0.conv1.grid.png',
    'dog.layer1.0.conv1.overlay.png',
    'dog.layer3.grid.png',
    'dog.layer3.overlay.png',
  ]);
  for (const f of r.files) expect(fs.existsSync(f)).toBe(true);
  const [conv, l3] = r.layers;
  expect(conv.shape).toEqual([64, 56, 56]);
  expect(conv.gridChannels).toEqual(Array.from({ length: 16 }, (_, i) => i));
  expect(conv.channels.max).toHaveLength(64);
  expect(l3.shape).toEqual([256, 14, 14]);
  expect(l3.top).toHaveLength(8);
  expect(l3.top[0].score).toBe(Math.max(...l3.channels.max));
  const grid = await sharp(conv.grid).metadata();
  expect(grid.width).toBeGreaterThan(600);
});

test('visualize with top-k channels and a loaded model (left open for the caller)', async () => {
  const model = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    const r = await visualize(DOG, {
      model,
      layers: ['layer4'],
      channels: { top: 4 },
      overlay: false,
      outDir: tempDir('visualize-top'),
    });
    expect(r.files).toHaveLength(1);
    expect(r.layers[0].gridChannels).toEqual(r.layers[0].top.slice(0, 4).map((t) => t.channel));
    expect(model.disposed).toBe(false);
  } finally {
    model.dispose();
  }
});

test('visualize refuses unknown options and bad models with FeatscopeErrors', async () => {
  await expect(visualize(DOG, { model: MODELS.scripted, colour: 'red' } as never)).rejects.toMatchObject({
    code: 'UNKNOWN_OPTION',
  });
  await expect(visualize(DOG, { model: 42 } as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  await expect(visualize(DOG, { model: '/nonexistent.pt' })).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
});

test('notebook helpers send PNG bytes to the display', async () => {
  const model = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    const pre = await preprocess(DOG);
    const [capture] = await model.capture(pre, 'layer1.0.conv1');
    const shown: Uint8Array[] = [];
    const display = { png: (b: Uint8Array) => shown.push(b), html: () => undefined };
    const grid = await showGrid(capture, { channels: 4 }, display);
    const overlay = await showOverlay(pre.images[0], capture, {}, display);
    expect(shown).toHaveLength(2);
    expect(shown[0]).toBe(grid.png);
    expect(Buffer.from(shown[1]).subarray(1, 4).toString()).toBe('PNG');
    // A capture from a model is framed as the grid is: the same weights banner on top, the title,
    // and a colour bar under the 224 x 224 overlay; frame: false gives the bare overlay.
    expect(overlay.width).toBeGreaterThanOrEqual(224);
    expect(overlay.height).toBeGreaterThan(224 + 40);
    const firstPixel = async (png: Uint8Array) => [
      ...(await sharp(Buffer.from(png)).removeAlpha().raw().toBuffer()).subarray(0, 3),
    ];
    expect(await firstPixel(overlay.png)).toEqual(await firstPixel(grid.png));
    const bare = await showOverlay(pre.images[0], capture, { frame: false }, display);
    expect([bare.width, bare.height]).toEqual([224, 224]);
  } finally {
    model.dispose();
  }
  // outside a tslab kernel (tslab is installed here, a devDependency, but not running), a clear error
  let err: unknown;
  try {
    tslabDisplay();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FeatscopeError);
  expect(err).toMatchObject({ code: 'NOTEBOOK_UNAVAILABLE' });
  expect((err as Error).message).toMatch(
    /tslab is installed \(.*node_modules.tslab\) but this process is not a running tslab kernel/,
  );
});
