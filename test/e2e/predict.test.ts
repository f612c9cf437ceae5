/** `featscope predict`: a segmentation model's mask, EigenCAM, --json, and the usage error for a classifier. */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { MODELS, STRUCTURED_MODELS, ensureStructuredModels, ensureTestModels } from '../support/models';
import { DOG, ensureBuilt, runCli, tempDir } from '../support/cli';

beforeAll(() => {
  ensureTestModels();
  ensureStructuredModels();
  ensureBuilt();
}, 300_000);

test('segmentation: the mask and EigenCAM pictures, and the classes as JSON', async () => {
  const out = tempDir('predict');
  try {
    const r = runCli([
      'predict',
      DOG,
      '--model',
      STRUCTURED_MODELS.segmentation,
      '--eigencam',
      'backbone:out',
      '--json',
      '-o',
      out,
    ]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json.weights.trained).toBe(false);
    const [res] = json.results;
    expect(res.kind).toBe('segmentation');
    expect(res.classes.reduce((s: number, c: { share: number }) => s + c.share, 0)).toBeCloseTo(1, 6);
    expect(res.explained > 0 && res.explained <= 1).toBe(true);
    expect(fs.readdirSync(out).sort()).toEqual(['dog.eigencam-backbone_out.png', 'dog.prediction.png']);
    for (const f of fs.readdirSync(out)) await sharp(path.join(out, f)).raw().toBuffer();
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 120_000);

test('a classifier without --eigencam is a usage error that says what to give', () => {
  const r = runCli(['predict', DOG, '--model', MODELS.scripted]);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/not a segmentation or detection model.*--eigencam LAYER/);
});
