/**
 * CUDA_OOM back-off in the batch runs, on the CPU through the fault-injection variable
 * FEATSCOPE_TEST_OOM_ABOVE (a forward of more images fails with CUDA_OOM): the batch is halved and
 * retried, the outputs equal those of a run that never ran out, and the manifest records it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { MODELS, ensureTestModels, maxAbsDiff } from '../support/models';
import { DOG, ensureBuilt, runCli, tempDir } from '../support/cli';

let photos: string;

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
  photos = tempDir('backoff-photos');
  const fixtures = path.dirname(DOG);
  for (const f of fs.readdirSync(fixtures))
    if (/\.(jpg|png)$/.test(f)) fs.copyFileSync(path.join(fixtures, f), path.join(photos, f));
});

const run = (out: string, env: NodeJS.ProcessEnv = {}) =>
  runCli(
    [
      'export',
      photos,
      '--model',
      MODELS.scripted,
      '--device',
      'cpu',
      '--layers',
      'layer2,fc',
      '--batch',
      '4',
      '--out',
      out,
    ],
    { env },
  );

test('a CUDA_OOM halves the batch and retries it; the files equal an uninterrupted run and the manifest says so', () => {
  const plain = tempDir('backoff-plain');
  expect(run(plain).code).toBe(0);
  const out = tempDir('backoff');
  const r = run(out, { FEATSCOPE_TEST_OOM_ABOVE: '1' });
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(/CUDA out of memory at a batch of 4; retrying it in batches of 2/);
  expect(r.stderr).toMatch(/CUDA out of memory at a batch of 2; retrying it in batches of 1/);
  expect(r.stderr.match(/CUDA out of memory at a batch/g)).toHaveLength(2); // later batches stay at 1
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  expect(manifest.backoff.map((e: { from: number; to: number }) => [e.from, e.to])).toEqual([
    [4, 2],
    [2, 1],
  ]);
  expect(manifest.counts).toEqual({ inputs: 6, done: 6, failed: 0 });
  expect(JSON.parse(fs.readFileSync(path.join(plain, 'manifest.json'), 'utf8')).backoff).toBeUndefined();
  // Batches of 1 against batches of 4: equal up to the rounding of batched convolutions.
  const values = (file: string, shape: number[]) => {
    const b = fs.readFileSync(file);
    const bytes = shape.reduce((a, v) => a * v, 4);
    return new Float32Array(b.buffer.slice(b.byteOffset + b.length - bytes, b.byteOffset + b.length));
  };
  for (const img of manifest.images as Array<{ name: string; captures: Array<{ file: string; shape: number[] }> }>) {
    for (const c of img.captures) {
      const [a, b] = [values(path.join(out, c.file), c.shape), values(path.join(plain, c.file), c.shape)];
      expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(a, new Float32Array(a.length))).toBeGreaterThan(0.01);
    }
  }
});

test('out of memory at one image: the images fail with CUDA_OOM, exit 1', () => {
  const out = tempDir('backoff-fail');
  const r = run(out, { FEATSCOPE_TEST_OOM_ABOVE: '0' });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/6 inputs failed/);
  expect(r.stderr).toMatch(/\[CUDA_OOM\]/);
});

test('--devices cpu,cpu loads a model per device and spreads the batches; the files equal a one-device run', () => {
  const one = tempDir('devices-one');
  const args = (out: string) => [
    'export',
    photos,
    '--model',
    MODELS.scripted,
    '--layers',
    'layer2,fc',
    '--batch',
    '2',
    '--out',
    out,
  ];
  expect(runCli([...args(one), '--device', 'cpu']).code).toBe(0);
  const out = tempDir('devices');
  const r = runCli([...args(out), '--devices', 'cpu,cpu']);
  expect(r.code).toBe(0);
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  expect(manifest.devices).toEqual([
    { device: 'cpu', batches: 2, images: 4 },
    { device: 'cpu', batches: 1, images: 2 },
  ]);
  for (const img of manifest.images as Array<{ captures: Array<{ file: string }> }>) {
    for (const c of img.captures)
      expect(fs.readFileSync(path.join(out, c.file)).equals(fs.readFileSync(path.join(one, c.file)))).toBe(true);
  }
  const both = runCli([...args(tempDir('devices-bad')), '--device', 'cpu', '--devices', 'cpu,cpu']);
  expect(both.code).toBe(2);
  expect(both.stderr).toMatch(/give --device or --devices, not both/);
  const bad = runCli([...args(tempDir('devices-bad')), '--devices', 'cpu,gpu']);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--devices takes a list of cpu, cuda or cuda:N, not "gpu"/);
});
