// Native Grad-CAM against the same formula in Python (eager twin, autograd).
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadModel } from '../../lib';
import {
  CACHE,
  MODELS,
  PYTHON,
  ROOT,
  cpuModelForTests,
  edgeModel,
  ensureTestModels,
  syntheticInput,
} from '../support/models';

function pythonGradCam(
  model: string,
  input: { data: Float32Array; shape: number[] },
  layer: string,
  classes: number[],
) {
  const dir = fs.mkdtempSync(path.join(CACHE, 'gradcam-'));
  try {
    const inPath = path.join(dir, 'in.f32');
    const outPath = path.join(dir, 'out.f32');
    fs.writeFileSync(inPath, Buffer.from(input.data.buffer, input.data.byteOffset, input.data.byteLength));
    execFileSync(PYTHON, [
      path.join(ROOT, 'test', 'support', 'gradcam_oracle.py'),
      model,
      inPath,
      input.shape.join(','),
      layer,
      outPath,
      ...classes.map(String),
    ]);
    const b = fs.readFileSync(outPath);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Per-image max-normalised maps, as Grad-CAM is shown. */
function normalise(data: Float32Array, n: number): Float32Array {
  const per = data.length / n;
  const out = new Float32Array(data.length);
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let j = 0; j < per; j++) m = Math.max(m, data[i * per + j]);
    for (let j = 0; j < per; j++) out[i * per + j] = m > 0 ? data[i * per + j] / m : 0;
  }
  return out;
}

const scripted = cpuModelForTests();

test.each([
  ['layer4, top-1 class, batch 2', 'layer4', 2, [] as number[]],
  ['layer3, given classes, batch 2', 'layer3', 2, [207, 281]],
  ['layer4.0, one class for all, batch 2', 'layer4.0', 2, [3]],
])('%s equals Python to 1e-4 after normalisation', async (_t, layer, n, classes) => {
  const x = syntheticInput(n, 224, 224, 11);
  const res = await scripted().gradcam(x, { layer, classes: classes.length ? classes : undefined });
  const py = pythonGradCam(MODELS.scripted, x, layer, classes);
  const camLen = res.data.length;
  expect(py.length).toBe(camLen + n);
  const pyClasses = Array.from(py.subarray(camLen));
  expect(res.classes).toEqual(pyClasses);
  const a = normalise(res.data, n),
    b = normalise(py.subarray(0, camLen), n);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  expect(d).toBeLessThanOrEqual(1e-4);
  expect(res.shape[0]).toBe(n);
  expect(res.probabilities.every((p) => p > 0 && p < 1)).toBe(true);
  // A CAM with nothing in it would pass trivially: it must have structure.
  expect(Math.max(...a)).toBe(1);
});

test('Grad-CAM leaves forward() unaffected (no gradient state leaks)', async () => {
  const x = syntheticInput(1);
  const before = await scripted().capture(x, 'layer4');
  await scripted().gradcam(x, { layer: 'layer4' });
  const after = await scripted().capture(x, 'layer4');
  expect(
    Buffer.compare(
      Buffer.from(before[0].data.buffer, before[0].data.byteOffset, before[0].data.byteLength),
      Buffer.from(after[0].data.buffer, after[0].data.byteOffset, after[0].data.byteLength),
    ),
  ).toBe(0);
});

test('bad Grad-CAM requests', async () => {
  const x = syntheticInput(1, 64, 64);
  await expect(scripted().gradcam(x, { layer: 'layer1.0.relu' })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/called 2 times/),
  });
  await expect(scripted().gradcam(x, { layer: 'fc' })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/\[N, C, H, W\] output; fc gives 2-D/),
  });
  await expect(scripted().gradcam(x, { layer: 'layer4', classes: [5000] })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/class 5000 is out of range 0\.\.999/),
  });
  await expect(scripted().gradcam(x, { layer: 'layr4' })).rejects.toMatchObject({
    code: 'UNKNOWN_LAYER',
    message: expect.stringMatching(/closest: layer4/),
  });
});

// A module that returns a tuple: Grad-CAM on it, or on one part of it by name, is a coded error
// naming the parts (it said "called 2 times"); the one-tensor module beside it works.
test('Grad-CAM on a tuple-returning module or one of its parts: a coded error naming the parts', async () => {
  ensureTestModels();
  const m = await loadModel(edgeModel('pair_head'), { device: 'cpu' });
  try {
    const x = syntheticInput(2, 12, 10);
    await expect(m.gradcam(x, { layer: 'pair' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/one tensor output; pair returns 2 \(pair:0, pair:1\): name the inner module/),
    });
    await expect(m.gradcam(x, { layer: 'pair:1' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(
        /takes a module, not one part of its output \(pair:1; pair returns pair:0, pair:1\)/,
      ),
    });
    await expect(m.gradcam(x, { layer: 'pair:7' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await m.gradcam(x, { layer: 'conv' })).shape).toEqual([2, 12, 10]);
  } finally {
    m.dispose();
  }
});
