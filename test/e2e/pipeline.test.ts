/**
 * The batch pipeline of `render` (lib/cli/batch.ts): while one batch runs through the model, the
 * next is decoded and the previous one written. Its files must be those of the plain sequential
 * path, one image at a time through the library (preprocess, capture, renderImageLayers), byte
 * for byte; and an image that fails in the middle of the pipeline must fail alone.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { loadModel } from '../../lib/model';
import { preprocess } from '../../lib/preprocess';
import { renderImageLayers } from '../../lib/visualize';
import { MODELS, ensureTestModels } from '../support/models';
import { DOG, ensureBuilt, runCli, tempDir } from '../support/cli';

const LAYERS = ['layer1.0.conv1', 'layer2'];
let photos: string;
let names: string[];
/** The run of the first test: batches of 1. */
let b1Out: string;

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
  // Six fixtures (JPEG, RGB and grey PNGs, a palette PNG) twice over: 12 images, six batches of 2.
  photos = tempDir('pipeline-photos');
  const fixtures = path.dirname(DOG);
  const files = fs
    .readdirSync(fixtures)
    .filter((f) => /\.(jpg|png)$/.test(f))
    .sort();
  names = [];
  for (let i = 0; i < 12; i++) {
    const f = files[i % files.length];
    const name = `p${String(i).padStart(2, '0')}`;
    fs.copyFileSync(path.join(fixtures, f), path.join(photos, `${name}${path.extname(f)}`));
    names.push(name);
  }
});

const render = (inputs: string, out: string, batch: number) =>
  runCli([
    'render',
    inputs,
    '--model',
    MODELS.scripted,
    '--device',
    'cpu',
    '--layers',
    LAYERS.join(','),
    '--overlay',
    '--batch',
    String(batch),
    '--out',
    out,
  ]);

const withoutTime = (file: string) => {
  const { created: _created, ...rest } = JSON.parse(fs.readFileSync(file, 'utf8'));
  return rest;
};

test('pipelined batches of 1 write the same bytes as one image at a time through the library', async () => {
  const out = tempDir('pipeline-b1');
  b1Out = out;
  const r = render(photos, out, 1);
  expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  expect(manifest.counts).toEqual({ inputs: 12, done: 12, failed: 0 });
  // Records in input order, whatever order the stages finished in.
  expect(manifest.images.map((i: { name: string }) => i.name)).toEqual(names);

  const model = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    for (const img of manifest.images as Array<{
      source: string;
      name: string;
      input: string;
      layers: Array<{ name: string; grid: string; overlay: string; stats: { max: number; mean: number } }>;
    }>) {
      const pre = await preprocess(img.source, { resize: 'squash', model });
      const captures = await model.capture({ data: pre.data, shape: pre.shape }, LAYERS);
      const rendered = await renderImageLayers(pre.images[0], captures, 0, {
        channels: 16,
        colormap: 'viridis',
        overlay: true,
        label: { metadata: model.metadata, source: img.name },
      });
      expect(rendered.map((l) => l.name)).toEqual(img.layers.map((l) => l.name));
      rendered.forEach((l, k) => {
        const rec = img.layers[k];
        expect(fs.readFileSync(path.join(out, rec.grid)).equals(l.grid.png)).toBe(true);
        expect(fs.readFileSync(path.join(out, rec.overlay)).equals(l.overlay!.png)).toBe(true);
        expect(rec.stats.max).toBe(Number(l.stats.max.toPrecision(6)));
        expect(rec.stats.mean).toBe(Number(l.stats.mean.toPrecision(6)));
      });
      // input.png holds exactly the preprocessed pixels.
      const { data, info } = await sharp(path.join(out, img.input)).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height, info.channels]).toEqual([224, 224, 3]);
      expect(data.equals(pre.images[0].rgb)).toBe(true);
    }
  } finally {
    model.dispose();
  }

  // Batches of 1 run through the pipeline again give the same files (created time aside).
  const again = tempDir('pipeline-b1-again');
  expect(render(photos, again, 1).code).toBe(0);
  expect(withoutTime(path.join(again, 'manifest.json'))).toEqual(withoutTime(path.join(out, 'manifest.json')));
  for (const name of names)
    for (const f of fs.readdirSync(path.join(out, name)))
      expect(fs.readFileSync(path.join(again, name, f)).equals(fs.readFileSync(path.join(out, name, f)))).toBe(true);
});

test('pipelined batches of 3: each image gets its own slot of its batch (as the library run on the same three)', async () => {
  const out = tempDir('pipeline-b3');
  const r = render(photos, out, 3);
  expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  const images = manifest.images as Array<{
    source: string;
    name: string;
    layers: Array<{ grid: string; overlay: string }>;
  }>;
  expect(images.map((i) => i.name)).toEqual(names);
  const model = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    for (let start = 0; start < images.length; start += 3) {
      const three = images.slice(start, start + 3);
      const pre = await preprocess(
        three.map((i) => i.source),
        { resize: 'squash', model },
      );
      const captures = await model.capture({ data: pre.data, shape: pre.shape }, LAYERS);
      for (let b = 0; b < three.length; b++) {
        const rendered = await renderImageLayers(pre.images[b], captures, b, {
          channels: 16,
          colormap: 'viridis',
          overlay: true,
          label: { metadata: model.metadata, source: three[b].name },
        });
        rendered.forEach((l, k) => {
          expect(fs.readFileSync(path.join(out, three[b].layers[k].grid)).equals(l.grid.png)).toBe(true);
          expect(fs.readFileSync(path.join(out, three[b].layers[k].overlay)).equals(l.overlay!.png)).toBe(true);
        });
      }
    }
  } finally {
    model.dispose();
  }
});

test('a file that cannot be decoded in the middle of the pipeline fails alone; the others are written', () => {
  const mixed = tempDir('pipeline-mixed');
  for (const name of names.slice(0, 6)) {
    const f = fs.readdirSync(photos).find((x) => x.startsWith(`${name}.`))!;
    fs.copyFileSync(path.join(photos, f), path.join(mixed, f));
  }
  // p03 (sorted fourth, in the second batch of 2) is not an image.
  fs.rmSync(
    path.join(
      mixed,
      fs.readdirSync(mixed).find((x) => x.startsWith('p03.'))!,
    ),
  );
  fs.writeFileSync(path.join(mixed, 'p03.jpg'), 'not a JPEG at all');
  const out = tempDir('pipeline-mixed-out');
  const r = render(mixed, out, 2);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/1 input failed|1 inputs failed/);
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  expect(manifest.counts).toEqual({ inputs: 6, done: 5, failed: 1 });
  expect(manifest.failed).toHaveLength(1);
  expect(manifest.failed[0].source).toBe(path.join(mixed, 'p03.jpg'));
  expect(manifest.failed[0].code).toBe('IMAGE_DECODE');
  expect(manifest.images.map((i: { name: string }) => i.name)).toEqual(['p00', 'p01', 'p02', 'p04', 'p05']);
  for (const name of ['p00', 'p01', 'p02', 'p04', 'p05']) {
    expect(fs.existsSync(path.join(out, name, 'record.json'))).toBe(true);
    expect(fs.statSync(path.join(out, name, 'layer2.png')).size).toBeGreaterThan(1000);
  }
  expect(fs.existsSync(path.join(out, 'p03', 'record.json'))).toBe(false);
  // The batch-mate of the bad file (p02) ran alone: its files are those of the batches-of-1 run.
  for (const f of ['input.png', 'layer1.0.conv1.png', 'layer1.0.conv1.overlay.png', 'layer2.png'])
    expect(fs.readFileSync(path.join(out, 'p02', f)).equals(fs.readFileSync(path.join(b1Out, 'p02', f)))).toBe(true);
});
