// --devices cuda:0,cuda:0: two models on one GPU, each with a batch in flight; the files equal a
// one-device run on the same GPU. Runs where libtorch sees CUDA; skips elsewhere.
import * as fs from 'fs';
import * as path from 'path';
import { cuda } from '../../lib';
import { DOG, ensureBuilt, runCli, tempDir } from '../support/cli';
import { ensureTestModels, maxAbsDiff, MODELS } from '../support/models';

const hasCuda = (() => {
  try {
    return cuda.available();
  } catch {
    return false;
  }
})();
if (!hasCuda) test('--devices GPU test skipped: libtorch sees no CUDA device', () => expect(hasCuda).toBe(false));

(hasCuda ? test : test.skip)(
  '--devices cuda:0,cuda:0 shares one GPU between two workers; the files equal a one-device run',
  () => {
    ensureTestModels();
    ensureBuilt();
    const photos = tempDir('gpu-devices-photos');
    const fixtures = path.dirname(DOG);
    for (const f of fs.readdirSync(fixtures))
      if (/\.(jpg|png)$/.test(f)) fs.copyFileSync(path.join(fixtures, f), path.join(photos, f));
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
    const one = tempDir('gpu-devices-one');
    expect(runCli([...args(one), '--device', 'cuda:0']).code).toBe(0);
    const out = tempDir('gpu-devices');
    const r = runCli([...args(out), '--devices', 'cuda:0,cuda:0']);
    expect({ code: r.code, stderr: r.stderr.slice(-2000) }).toMatchObject({ code: 0 });
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    const inputs = manifest.counts.inputs as number;
    expect(manifest.counts).toEqual({ inputs, done: inputs, failed: 0 });
    expect(manifest.devices.map((d: { device: string }) => d.device)).toEqual(['cuda:0', 'cuda:0']);
    expect(manifest.devices.reduce((a: number, d: { images: number }) => a + d.images, 0)).toBe(inputs);
    expect(manifest.devices.every((d: { batches: number }) => d.batches >= 1)).toBe(true);
    // The same GPU and kernels: equal up to float rounding (CUDA graph replays vs eager runs).
    const values = (file: string, shape: number[]) => {
      const b = fs.readFileSync(file);
      const bytes = shape.reduce((a, v) => a * v, 4);
      return new Float32Array(b.buffer.slice(b.byteOffset + b.length - bytes, b.byteOffset + b.length));
    };
    for (const img of manifest.images as Array<{ captures: Array<{ file: string; shape: number[] }> }>) {
      for (const c of img.captures) {
        const [a, b] = [values(path.join(out, c.file), c.shape), values(path.join(one, c.file), c.shape)];
        let scale = 0;
        for (const v of b) scale = Math.max(scale, Math.abs(v));
        expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-3 * scale + 1e-5);
      }
    }
  },
  300_000,
);
