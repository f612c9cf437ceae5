// Feature visualisation: the objective's input gradient against Python autograd, then the
// optimisation loop itself (it climbs, it is deterministic, dead channels are a clear error).
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { loadModel } from '../../lib';
import { featureVisualization, featureVisualizations, renderFeatureVisualization } from '../../lib/analysis';
import { CACHE, MODELS, PYTHON, ROOT, cpuModelForTests, edgeModel, syntheticInput } from '../support/models';
import { readF32, runOracle, withTempDir, writeF32 } from '../support/oracle';

const scripted = cpuModelForTests();

function pythonObjective(
  x: { data: Float32Array; shape: number[] },
  layer: string,
  channel: number,
): { grad: Float32Array; objective: number } {
  return withTempDir('objective-', (dir) => {
    writeF32(path.join(dir, 'in.f32'), x.data);
    runOracle('objective_oracle.py', [
      MODELS.scripted,
      path.join(dir, 'in.f32'),
      x.shape.join(','),
      dir,
      layer,
      String(channel),
    ]);
    return {
      grad: readF32(path.join(dir, 'grad.f32')),
      objective: JSON.parse(fs.readFileSync(path.join(dir, 'result.json'), 'utf8')).objective,
    };
  });
}

test.each([
  ['layer3', 7, 2],
  ['layer2', -1, 1],
  ['layer1.0.conv1', 0, 1],
] as const)(
  'backward with objective %s channel %d (batch %d): the input gradient equals Python autograd',
  async (layer, channel, n) => {
    const x = syntheticInput(n, 96, 96, 12);
    const r = await scripted().backward(x, {
      objective: { layer, ...(channel >= 0 ? { channel } : {}) },
      inputGrad: true,
      layers: ['layer1'],
    });
    const py = pythonObjective(x, layer, channel);
    expect(Math.abs(r.loss - py.objective)).toBeLessThan(1e-4 * Math.max(1, Math.abs(py.objective)));
    let d = 0;
    let s = 0;
    for (let i = 0; i < py.grad.length; i++) {
      d = Math.max(d, Math.abs(r.inputGrad![i] - py.grad[i]));
      s = Math.max(s, Math.abs(py.grad[i]));
    }
    expect(d / s).toBeLessThan(1e-4);
    // Only the layers asked for are reported, not the objective's.
    expect(r.layers.map((l) => l.name)).toEqual(['layer1']);
  },
);

test('objective errors, and a model that is not a classifier', async () => {
  const x = syntheticInput(1, 64, 64, 3);
  await expect(scripted().backward(x, { objective: { layer: 'layer1.0.relu' } })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/called 2 times/),
  });
  await expect(scripted().backward(x, { objective: { layer: 'layer3', channel: 256 } })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/channel 256 does not exist: layer3 has channels 0..255/),
  });
  await expect(scripted().backward(x, { objective: { layer: 'layer3', channel: -1 } })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  });
  await expect(scripted().backward(x, { objective: { layer: 'layer9' } })).rejects.toMatchObject({
    code: 'UNKNOWN_LAYER',
  });
  await expect(scripted().backward(x, { objective: { layer: 'layer3', chanel: 1 } as never })).rejects.toMatchObject({
    code: 'UNKNOWN_OPTION',
  });
  // tuple_out returns a tuple: no logits, but a layer objective still has a gradient.
  const m = await loadModel(edgeModel('tuple_out'), { device: 'cpu' });
  try {
    const r = await m.backward(syntheticInput(1, 16, 16, 1), {
      objective: { layer: 'conv', channel: 1 },
      inputGrad: true,
    });
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(r.inputGrad).toHaveLength(3 * 16 * 16);
    expect(r.classes).toEqual([]);
  } finally {
    m.dispose();
  }
});

test('featureVisualization climbs the objective, deterministically per seed, within the valid pixel range', async () => {
  const o = { layer: 'layer3', channel: 12, steps: 10, size: 64 };
  const a = await featureVisualization(scripted(), o);
  expect(a.objective).toHaveLength(11);
  expect(a.objective[10]).toBeGreaterThan(a.objective[0] * 1.2);
  expect([a.image.width, a.image.height, a.image.rgb.length]).toEqual([64, 64, 64 * 64 * 3]);
  // The normalised input stays within what 0..255 pixels can express.
  const lo = (0 - 0.485) / 0.229;
  const hi = (1 - 0.485) / 0.229;
  for (let i = 0; i < 64 * 64; i++) expect(a.input.data[i] >= lo - 1e-6 && a.input.data[i] <= hi + 1e-6).toBe(true);
  const b = await featureVisualization(scripted(), o);
  expect(b.image.rgb.equals(a.image.rgb)).toBe(true);
  const c = await featureVisualization(scripted(), { ...o, seed: 5 });
  expect(c.image.rgb.equals(a.image.rgb)).toBe(false);
  const pic = await renderFeatureVisualization(scripted(), a, { scale: 3 });
  const { data, info } = await sharp(pic.png).raw().toBuffer({ resolveWithObject: true });
  expect(info.width).toBe(420);
  expect([data[0], data[1], data[2]]).toEqual([0xc6, 0x28, 0x28]);
});

test('a dead channel has no gradient: ZERO_GRADIENT, not a picture of noise', async () => {
  const file = path.join(CACHE, 'dead-channels.pt');
  if (!fs.existsSync(file)) execFileSync(PYTHON, [path.join(ROOT, 'test', 'support', 'dead_channels_model.py'), file]);
  const m = await loadModel(file, { device: 'cpu' });
  try {
    await expect(featureVisualization(m, { layer: 'relu', channel: 2, steps: 3, size: 32 })).rejects.toMatchObject({
      code: 'ZERO_GRADIENT',
      message: expect.stringMatching(/objective \(relu channel 2\) has no gradient/),
    });
    const ok = await featureVisualization(m, { layer: 'relu', channel: 0, steps: 3, size: 32 });
    expect(ok.objective[3]).toBeGreaterThan(ok.objective[0]);
  } finally {
    m.dispose();
  }
});

test("one objective channel per image: each row gets its own channel's value and gradient", async () => {
  const x = syntheticInput(2, 64, 64, 21);
  const per = 3 * 64 * 64;
  const r = await scripted().backward(x, { objective: { layer: 'layer3', channel: [3, 9] }, inputGrad: true });
  expect(r.objective).toHaveLength(2);
  expect(r.loss).toBeCloseTo(r.objective![0] + r.objective![1], 4);
  for (const [k, ch] of [
    [0, 3],
    [1, 9],
  ]) {
    const one = { data: x.data.slice(k * per, (k + 1) * per), shape: [1, 3, 64, 64] };
    const s = await scripted().backward(one, { objective: { layer: 'layer3', channel: ch }, inputGrad: true });
    expect(Math.abs(r.objective![k] - s.loss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(s.loss)));
    let d = 0;
    let m = 0;
    for (let i = 0; i < per; i++) {
      d = Math.max(d, Math.abs(r.inputGrad![k * per + i] - s.inputGrad![i]));
      m = Math.max(m, Math.abs(s.inputGrad![i]));
    }
    expect(d / m).toBeLessThan(1e-4);
  }
  await expect(scripted().backward(x, { objective: { layer: 'layer3', channel: [1, 2, 3] } })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/one objective channel or one per image \(2\), not 3/),
  });
});

test('featureVisualizations runs several channels in one batch, each as it would run alone', async () => {
  const o = { layer: 'layer2', steps: 6, size: 48 };
  const both = await featureVisualizations(scripted(), { ...o, channels: [3, 9] });
  expect(both.map((r) => r.channel)).toEqual([3, 9]);
  for (const r of both) {
    const alone = await featureVisualization(scripted(), { ...o, channel: r.channel });
    r.objective.forEach((v, i) =>
      expect(Math.abs(v - alone.objective[i])).toBeLessThan(1e-3 * Math.max(1, Math.abs(alone.objective[i]))),
    );
    let d = 0;
    for (let i = 0; i < r.image.rgb.length; i++) d = Math.max(d, Math.abs(r.image.rgb[i] - alone.image.rgb[i]));
    expect(d).toBeLessThanOrEqual(2);
  }
  await expect(featureVisualizations(scripted(), { ...o, channels: [] })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  });
});
