// The GPU suite: runs where libtorch sees CUDA (scripts/gpu-check.sh on the GPU machine) and
// skips cleanly elsewhere.
import { type Capture, cuda, FeatscopeError, loadModel, Model } from '../../lib';
import { edgeModel, ensureTestModels, MODELS, maxAbsDiff, pythonHooks, syntheticInput } from '../support/models';

const hasCuda = (() => {
  try {
    return cuda.available();
  } catch {
    return false;
  }
})();
const describeGpu = hasCuda ? describe : describe.skip;
if (!hasCuda) test('GPU suite skipped: libtorch sees no CUDA device', () => expect(hasCuda).toBe(false));

const LAYERS = ['conv1', 'bn1', 'layer1.0.conv1', 'layer1.0.relu', 'layer2', 'layer4', 'avgpool', 'fc'];

function relDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  return maxAbsDiff(a, b) / Math.max(scale, 1e-12);
}

describeGpu('CUDA', () => {
  let exact: Model;
  let fast: Model;
  beforeAll(async () => {
    ensureTestModels();
    exact = await loadModel(MODELS.scripted, { device: 'cuda', precision: 'exact' });
    fast = await loadModel(MODELS.scripted, { device: 'auto' });
  });
  afterAll(() => {
    exact?.dispose();
    fast?.dispose();
  });

  test('auto picks cuda:0', () => {
    expect(fast.device).toBe('cuda:0');
    expect(cuda.deviceCount()).toBeGreaterThanOrEqual(1);
  });

  test.each([
    ['scripted', MODELS.scripted],
    ['traced', MODELS.traced],
  ])('%s: captures equal Python hooks on CUDA (TF32 off on both sides)', async (_k, file) => {
    const m = await loadModel(file, { device: 'cuda', precision: 'exact' });
    try {
      for (const n of [1, 4]) {
        const input = syntheticInput(n, 224, 224, 3 + n);
        const oracle = pythonHooks(file, input, LAYERS, 'cuda');
        const res = await m.forward(input, { layers: LAYERS });
        expect(res.captures.map((c) => c.name)).toEqual([...oracle.captures.keys()]);
        for (const c of res.captures) {
          const o = oracle.captures.get(c.name)!;
          expect(c.shape).toEqual(o.shape);
          // Relative to the capture's scale: cuDNN picks different (exact, non-TF32) conv algorithms
          // on the two sides, whose float32 summation orders differ by ~1e-6 relative per layer;
          // deep activations reach |x| ~ 10, so an absolute 1e-3 failed at 0.0013 on an H200.
          const d = maxAbsDiff(c.data, o.data);
          let peak = 0;
          for (const v of o.data) peak = Math.max(peak, Math.abs(v));
          const bound = 1e-3 * Math.max(1, peak);
          if (!(d <= bound))
            throw new Error(`${c.name} (batch ${n}): max abs diff ${d} > ${bound} (max |ref| ${peak})`);
        }
      }
    } finally {
      m.dispose();
    }
  });

  test('fast (TF32) stays within TF32 tolerance of exact', async () => {
    const x = syntheticInput(2);
    const [a, b] = await Promise.all([exact.capture(x, ['layer4', 'fc']), fast.capture(x, ['layer4', 'fc'])]);
    for (let i = 0; i < a.length; i++) expect(relDiff(b[i].data, a[i].data)).toBeLessThan(2e-2);
  });

  test('fast and exact models running at the same time each keep their own precision', async () => {
    // TF32 is one process-wide switch; featscope's precision gate keeps runs of the two policies apart.
    const x = syntheticInput(2);
    const [exactAlone] = await exact.capture(x, ['layer4']);
    const [fastAlone] = await fast.capture(x, ['layer4']);
    const gap = relDiff(fastAlone.data, exactAlone.data);
    // On GPUs with TF32 (Ampere and later) the two policies differ measurably.
    expect(gap).toBeGreaterThan(1e-5);
    const runs: Promise<Capture[]>[] = [];
    for (let i = 0; i < 24; i++) runs.push((i % 2 === 0 ? exact : fast).capture(x, ['layer4']));
    const results = await Promise.all(runs);
    results.forEach(([c], i) => {
      const d = relDiff(c.data, (i % 2 === 0 ? exactAlone : fastAlone).data);
      if (!(d < gap / 10))
        throw new Error(`run ${i} (${i % 2 === 0 ? 'exact' : 'fast'}) drifted by ${d} (the policies differ by ${gap})`);
    });
  });

  test('reductions on the GPU equal the same reductions of the full capture', async () => {
    const x = syntheticInput(2);
    const [full] = await exact.capture(x, 'layer3');
    const [top] = await exact.capture(x, 'layer3', { channels: { top: 16, by: 'max' }, stats: true });
    const [C, H, W] = full.shape.slice(1);
    expect(top.shape).toEqual([2, 16, H, W]);
    for (let n = 0; n < 2; n++) {
      const maxes = Array.from({ length: C }, (_, c) =>
        Math.max(...full.data.subarray((n * C + c) * H * W, (n * C + c + 1) * H * W)),
      );
      const expected = maxes
        .map((v, c) => [v, c])
        .sort((p, q) => q[0] - p[0])
        .slice(0, 16)
        .map((p) => p[1]);
      expect(Array.from(top.channels!.subarray(n * 16, n * 16 + 16))).toEqual(expected);
      for (let k = 0; k < 16; k++) {
        const c = expected[k];
        expect(
          maxAbsDiff(
            top.data.subarray((n * 16 + k) * H * W, (n * 16 + k + 1) * H * W),
            full.data.subarray((n * C + c) * H * W, (n * C + c + 1) * H * W),
          ),
        ).toBe(0);
        expect(top.stats!.max[n * C + c]).toBeCloseTo(maxes[c], 5);
      }
    }
    const [small] = await exact.capture(x, 'layer1', { maxSize: 14 });
    expect(small.shape).toEqual([2, 64, 14, 14]);
  });

  test('modules called in a loop: every call equals Python hooks on CUDA', async () => {
    const file = edgeModel('loopnet');
    const m = await loadModel(file, { device: 'cuda', precision: 'exact' });
    try {
      const x = syntheticInput(3, 16, 12, 4);
      const layers = ['stem', 'block', 'block.bn', 'gate'];
      const oracle = pythonHooks(file, x, layers, 'cuda');
      const res = await m.forward(x, { layers });
      expect(res.captures.map((c) => c.name).sort()).toEqual([...oracle.captures.keys()].sort());
      for (const c of res.captures) {
        const d = maxAbsDiff(c.data, oracle.captures.get(c.name)!.data);
        if (!(d <= 1e-4)) throw new Error(`${c.name}: max abs diff ${d}`);
      }
    } finally {
      m.dispose();
    }
  });

  test('a layer objective (feature visualisation) has the same input gradient on CUDA as on the CPU', async () => {
    const cpu = await loadModel(MODELS.scripted, { device: 'cpu' });
    try {
      const x = syntheticInput(2, 96, 96, 6);
      const o = { objective: { layer: 'layer3', channel: 7 }, inputGrad: true };
      const [a, b] = [await exact.backward(x, o), await cpu.backward(x, o)];
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(b.loss)));
      expect(relDiff(a.inputGrad!, b.inputGrad!)).toBeLessThan(1e-3);
    } finally {
      cpu.dispose();
    }
  });

  test('Grad-CAM on CUDA equals Grad-CAM on the CPU', async () => {
    const cpu = await loadModel(MODELS.scripted, { device: 'cpu' });
    try {
      const x = syntheticInput(2);
      const a = await exact.gradcam(x, { layer: 'layer4' });
      const b = await cpu.gradcam(x, { layer: 'layer4' });
      expect(a.classes).toEqual(b.classes);
      expect(relDiff(a.data, b.data)).toBeLessThan(1e-3);
    } finally {
      cpu.dispose();
    }
  });

  test('a missing CUDA device is a clear error', async () => {
    const n = cuda.deviceCount();
    await expect(loadModel(MODELS.scripted, { device: `cuda:${n}` as `cuda:${number}` })).rejects.toMatchObject({
      code: 'CUDA_DEVICE_NOT_FOUND',
      message: expect.stringMatching(new RegExp(`device cuda:${n} does not exist: this machine has ${n} CUDA device`)),
    });
  });

  test('CUDA out of memory becomes CUDA_OOM and the model stays usable', async () => {
    // 32 images of 4096x4096 with every leaf captured needs far more than any GPU has.
    const n = 32,
      s = 4096;
    const x = { data: new Float32Array(n * 3 * s * s).fill(0.1), shape: [n, 3, s, s] };
    const leaves = (await exact.layers())
      .filter((l) => ['Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d'].includes(l.type))
      .map((l) => l.name);
    let err: unknown;
    try {
      await exact.capture(x, leaves);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FeatscopeError);
    expect((err as FeatscopeError).code).toBe('CUDA_OOM');
    expect((err as Error).message).toMatch(/CUDA out of memory\. Use a smaller batch/);
    const [c] = await exact.capture(syntheticInput(1), 'layer4');
    expect(c.shape).toEqual([1, 512, 7, 7]);
  }, 300000);

  test('GPU memory stays bounded over 2,000 captures', async () => {
    const x = syntheticInput(4);
    for (let i = 0; i < 2000; i++) {
      const caps = await fast.capture(x, ['layer1', 'layer4']);
      if (i === 0) expect(caps[0].shape).toEqual([4, 64, 56, 56]);
    }
    // Captures live in pinned host memory; nothing is left behind on the device between calls.
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 500; i++) await fast.capture(x, ['layer1', 'layer4']);
    expect(process.memoryUsage().rss - before).toBeLessThan(512 * 1024 * 1024);
  }, 300000);
});
