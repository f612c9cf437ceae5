// saliency() against the same formulas in Python torch (eager twin, autograd).
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { gaussianNoise, saliency, saliencyOverlays } from '../../lib/analysis';
import { preprocess } from '../../lib/preprocess';
import { cpuModelForTests, MODELS, syntheticInput } from '../support/models';
import { readF32, runOracle, withTempDir, writeF32 } from '../support/oracle';

interface OracleResult {
  attributions: Float32Array;
  classes: number[];
  scores: number[];
  attributionSum?: number[];
  scoreDelta?: number[];
}

function python(
  x: { data: Float32Array; shape: number[] },
  method: string,
  samples: number,
  noise: number,
  classes: number[],
): OracleResult {
  return withTempDir('saliency-', (dir) => {
    writeF32(path.join(dir, 'in.f32'), x.data);
    let noisePath = '-';
    if (method === 'smoothgrad') {
      noisePath = path.join(dir, 'noise.f32');
      writeF32(noisePath, gaussianNoise(0, (x.shape[0] * samples * x.data.length) / x.shape[0]));
    }
    runOracle('saliency_oracle.py', [
      MODELS.scripted,
      path.join(dir, 'in.f32'),
      x.shape.join(','),
      dir,
      method,
      String(samples),
      String(noise),
      noisePath,
      ...classes.map(String),
    ]);
    return {
      ...JSON.parse(fs.readFileSync(path.join(dir, 'result.json'), 'utf8')),
      attributions: readF32(path.join(dir, 'attributions.f32')),
    };
  });
}

/** max |a - b| relative to max |b|. */
function relMax(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}

const scripted = cpuModelForTests();

test.each([
  ['gradient', 1, [] as number[]],
  ['smoothgrad', 6, [3, 907]],
  ['integrated-gradients', 8, [] as number[]],
] as const)('%s equals Python to 1e-4 (relative to the largest attribution)', async (method, samples, classes) => {
  const x = syntheticInput(2, 64, 64, 31);
  const ours = await saliency(scripted(), x, {
    method,
    samples,
    classes: classes.length ? [...classes] : undefined,
    batch: 5,
  });
  const py = python(x, method, samples, 0.15, [...classes]);
  expect(ours.classes).toEqual(py.classes);
  ours.scores.forEach((s, i) =>
    expect(Math.abs(s - py.scores[i])).toBeLessThan(1e-4 * Math.max(1, Math.abs(py.scores[i]))),
  );
  expect(ours.attributions.shape).toEqual([2, 3, 64, 64]);
  // The clean input's logits come with the result (no second forward needed for predictions); they
  // come from the gradient pass, which runs the exact graph: bit-equal to an exact forward.
  expect(Array.from(ours.logits.data)).toEqual(
    Array.from((await scripted().forward(x, { optimize: false })).output!.data),
  );
  expect(relMax(ours.attributions.data, py.attributions)).toBeLessThan(1e-4);
  // The display map: per pixel, max |a| over channels (|sum| for integrated gradients).
  const [n, h, w] = ours.map.shape;
  expect([n, h, w]).toEqual([2, 64, 64]);
  for (const p of [0, 1234, 2 * 64 * 64 - 1]) {
    const i = Math.floor(p / (h * w));
    const q = p % (h * w);
    const vals = [0, 1, 2].map((ch) => py.attributions[i * 3 * h * w + ch * h * w + q]);
    const expected =
      method === 'integrated-gradients' ? Math.abs(vals.reduce((a, b) => a + b, 0)) : Math.max(...vals.map(Math.abs));
    expect(ours.map.data[p]).toBeCloseTo(expected, 4);
  }
  if (method === 'integrated-gradients') {
    ours.completeness!.attributionSum.forEach((s, i) =>
      expect(Math.abs(s - py.attributionSum![i])).toBeLessThan(1e-3 * Math.max(1, Math.abs(py.attributionSum![i]))),
    );
    ours.completeness!.scoreDelta.forEach((s, i) =>
      expect(Math.abs(s - py.scoreDelta![i])).toBeLessThan(1e-3 * Math.max(1, Math.abs(py.scoreDelta![i]))),
    );
  }
});

test('integrated gradients approach completeness as the steps grow', async () => {
  const x = syntheticInput(1, 48, 48, 8);
  const gap = async (samples: number) => {
    const r = await saliency(scripted(), x, { method: 'integrated-gradients', samples, batch: 32 });
    return (
      Math.abs(r.completeness!.attributionSum[0] - r.completeness!.scoreDelta[0]) /
      Math.abs(r.completeness!.scoreDelta[0])
    );
  };
  const coarse = await gap(4);
  const fine = await gap(64);
  expect(fine).toBeLessThan(coarse);
  expect(fine).toBeLessThan(0.05);
});

test('the same seed gives the same smoothgrad map; another seed a different one', async () => {
  const x = syntheticInput(1, 32, 32, 2);
  const a = await saliency(scripted(), x, { method: 'smoothgrad', samples: 3 });
  const b = await saliency(scripted(), x, { method: 'smoothgrad', samples: 3 });
  const c = await saliency(scripted(), x, { method: 'smoothgrad', samples: 3, seed: 7 });
  expect(a.map.data).toEqual(b.map.data);
  expect(a.map.data).not.toEqual(c.map.data);
});

test('bad options are clear errors', async () => {
  const x = syntheticInput(1, 32, 32, 2);
  await expect(saliency(scripted(), x, { method: 'lime' as never })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/'gradient', 'smoothgrad', 'integrated-gradients' for method but received "lime"/),
  });
  await expect(saliency(scripted(), x, { samples: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  await expect(saliency(scripted(), x, { steps: 3 } as never)).rejects.toMatchObject({ code: 'UNKNOWN_OPTION' });
  await expect(saliency(scripted(), { data: x.data, shape: [3, 32, 32] })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  });
});

test('gaussianNoise is standard normal', () => {
  const e = gaussianNoise(1, 100001);
  let m = 0;
  let v = 0;
  for (const x of e) m += x;
  m /= e.length;
  for (const x of e) v += (x - m) ** 2;
  v /= e.length;
  expect(Math.abs(m)).toBeLessThan(0.02);
  expect(Math.abs(v - 1)).toBeLessThan(0.02);
});

test('saliencyOverlays: the drawn map is saliency() of the preprocessed photo scaled to its 99th percentile', async () => {
  const dog = path.join(__dirname, '..', 'fixtures', 'images', 'dog.jpg');
  const [o] = await saliencyOverlays(scripted(), [dog], { method: 'gradient', classes: 207 });
  const x = await preprocess(dog, { resize: 'squash' });
  const r = await saliency(scripted(), x, { classes: 207 });
  const sorted = Float32Array.from(r.map.data).sort();
  const pos = 0.99 * (sorted.length - 1);
  const p99 = sorted[Math.floor(pos)] + (sorted[Math.ceil(pos)] - sorted[Math.floor(pos)]) * (pos - Math.floor(pos));
  expect(o.clipValue).toBeCloseTo(p99, 6);
  expect([o.map.width, o.map.height]).toEqual([224, 224]);
  for (const j of [0, 5000, 40000]) expect(o.map.data[j]).toBeCloseTo(Math.min(1, r.map.data[j] / p99), 5);
  expect(o.target.class).toBe(207);
  expect(o.weights.trained).toBe(false);
  // The framed picture starts with the red UNTRAINED banner.
  const { data } = await sharp(o.png).raw().toBuffer({ resolveWithObject: true });
  expect([data[0], data[1], data[2]]).toEqual([0xc6, 0x28, 0x28]);
});
