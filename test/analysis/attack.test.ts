// FGSM against the same step in Python torch; PGD lowers the target probability; divergence.
import * as path from 'path';
import { fgsm, pgd, renderAttackGrids, renderDivergenceChart } from '../../lib/analysis';
import { MODELS, cpuModelForTests, syntheticInput } from '../support/models';
import { readF32, runOracle, withTempDir, writeF32 } from '../support/oracle';

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** syntheticInput clamped into the normalised image of [0, 1] pixels, as a real photo would be. */
function validInput(n: number, h: number, w: number, seed: number) {
  const x = syntheticInput(n, h, w, seed);
  const plane = h * w;
  for (let i = 0; i < x.data.length; i++) {
    const c = Math.floor(i / plane) % 3;
    x.data[i] = Math.fround(Math.min(Math.max(x.data[i], (0 - MEAN[c]) / STD[c]), (1 - MEAN[c]) / STD[c]));
  }
  return x;
}

const scripted = cpuModelForTests();

function pythonFgsm(x: { data: Float32Array; shape: number[] }, eps: number, classes: number[]) {
  return withTempDir('fgsm-', (dir) => {
    writeF32(path.join(dir, 'in.f32'), x.data);
    runOracle('fgsm_oracle.py', [
      MODELS.scripted,
      path.join(dir, 'in.f32'),
      x.shape.join(','),
      String(eps),
      path.join(dir, 'out.f32'),
      ...classes.map(String),
    ]);
    const out = readF32(path.join(dir, 'out.f32'));
    return { adv: out.subarray(0, x.data.length), gradAbs: out.subarray(x.data.length) };
  });
}

test.each([
  ['top-1 targets, batch 2, eps 8/255', 2, 8 / 255, [] as number[]],
  ['given classes, batch 2, eps 2/255', 2, 2 / 255, [207, 3]],
])('FGSM equals Python (%s) on >= 99.9%% of elements', async (_t, n, eps, classes) => {
  const x = validInput(n, 224, 224, 5);
  const r = await fgsm(scripted(), x, {
    epsilon: eps,
    classes: classes.length ? classes : undefined,
    layers: ['layer4'],
  });
  const py = pythonFgsm(x, eps, classes);
  let equal = 0;
  let unequalWithClearSign = 0;
  // A gradient sign can only honestly differ where |grad| is tiny relative to the image's gradients.
  let maxGrad = 0;
  for (const g of py.gradAbs) maxGrad = Math.max(maxGrad, g);
  for (let i = 0; i < x.data.length; i++) {
    if (Math.abs(r.adversarial.data[i] - py.adv[i]) <= 1e-5) equal++;
    else if (py.gradAbs[i] > 1e-3 * maxGrad) unequalWithClearSign++;
  }
  expect(equal / x.data.length).toBeGreaterThanOrEqual(0.999);
  expect(unequalWithClearSign).toBe(0);
  // The step stays within eps per pixel, and the clamp keeps pixels in [0, 1].
  for (const im of r.images) expect(im.linf).toBeLessThanOrEqual(eps + 1e-6);
  const plane = 224 * 224;
  let outside = 0;
  for (let i = 0; i < x.data.length; i++) {
    const c = Math.floor(i / plane) % 3;
    const pixel = r.adversarial.data[i] * STD[c] + MEAN[c];
    if (pixel < -1e-6 || pixel > 1 + 1e-6) outside++;
  }
  expect(outside).toBe(0);
});

test('PGD lowers the probability of the true class, step by step, and stays in the eps-ball', async () => {
  const x = validInput(1, 224, 224, 9);
  const eps = 4 / 255;
  const r = await pgd(scripted(), x, { epsilon: eps, stepSize: 1 / 255, steps: 6 });
  const probs = r.path!.map((p) => p.targetProbability[0]);
  expect(probs).toHaveLength(7);
  expect(probs[probs.length - 1]).toBeLessThan(probs[0] * 0.8);
  // Each step with a fixed target increases the cross-entropy: the probability falls (allow float noise).
  for (let k = 1; k < probs.length; k++) expect(probs[k]).toBeLessThanOrEqual(probs[k - 1] * 1.001);
  expect(r.images[0].after.targetProbability).toBeCloseTo(probs[probs.length - 1], 6);
  expect(r.images[0].linf).toBeLessThanOrEqual(eps + 1e-6);
  expect(r.images[0].target.class).toBe(r.images[0].before.top.class);
  // Divergence: one entry per default layer (conv and linear), non-negative, and a feature-map winner.
  expect(r.layers.length).toBe(21);
  expect(r.layers.every((l) => l.divergence > 0 && Number.isFinite(l.divergence))).toBe(true);
  expect(r.mostDivergent).toMatch(/^(conv1|layer)/);
  expect(r.weights.trained).toBe(false);
});

test('relative L2 divergence matches a direct computation', async () => {
  const x = syntheticInput(2, 64, 64, 3);
  const r = await fgsm(scripted(), x, { epsilon: 0.02, layers: ['layer2', 'fc'] });
  const [c] = await scripted().capture(x, 'layer2');
  const [a] = await scripted().capture(r.adversarial, 'layer2');
  let num = 0,
    den = 0;
  for (let i = 0; i < c.data.length; i++) {
    num += (a.data[i] - c.data[i]) ** 2;
    den += c.data[i] ** 2;
  }
  expect(r.layers.find((l) => l.name === 'layer2')!.divergence).toBeCloseTo(Math.sqrt(num / den), 6);
  expect(r.layers.find((l) => l.name === 'fc')!.perImage).toHaveLength(2);
});

test('charts: PNGs with the untrained banner area', async () => {
  const x = syntheticInput(1, 96, 96, 4);
  const r = await pgd(scripted(), x, { epsilon: 2 / 255, steps: 2, layers: ['layer1', 'layer2', 'layer3', 'fc'] });
  const chart = await renderDivergenceChart(scripted(), r);
  expect(chart.png.subarray(1, 4).toString()).toBe('PNG');
  const grids = await renderAttackGrids(scripted(), x, r);
  expect(grids.layer).toBe(r.mostDivergent);
  expect(grids.png.subarray(1, 4).toString()).toBe('PNG');
});

test('bad attack options', async () => {
  const x = syntheticInput(1, 32, 32);
  await expect(fgsm(scripted(), x, { epsilon: 8 })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/epsilon/),
  });
  await expect(pgd(scripted(), x, { epsilon: 0.03, steps: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  await expect(fgsm(scripted(), x, { epsilon: 0.03, std: [1, 2] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
});
