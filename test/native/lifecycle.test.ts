// Concurrency, memory and shutdown.
import { execFileSync } from 'child_process';
import * as path from 'path';
import { loadModel } from '../../lib';
import { MODELS, ROOT, cpuModelForTests, maxAbsDiff, syntheticInput } from '../support/models';

const scripted = cpuModelForTests();

test('20 overlapping forwards on one model equal the sequential results', async () => {
  const inputs = Array.from({ length: 20 }, (_, i) => syntheticInput(1, 64, 64, 100 + i));
  const layers = ['layer1.0.relu', 'layer3', 'fc'];
  const sequential = [];
  for (const x of inputs) sequential.push(await scripted().forward(x, { layers }));
  const overlapping = await Promise.all(inputs.map((x) => scripted().forward(x, { layers })));
  for (let i = 0; i < inputs.length; i++) {
    expect(overlapping[i].captures.map((c) => c.name)).toEqual(['layer1.0.relu', 'layer1.0.relu#1', 'layer3', 'fc']);
    for (let j = 0; j < overlapping[i].captures.length; j++) {
      expect(maxAbsDiff(overlapping[i].captures[j].data, sequential[i].captures[j].data)).toBe(0);
    }
    expect(maxAbsDiff(overlapping[i].output!.data, sequential[i].output!.data)).toBe(0);
  }
});

test('several models run forwards at once', async () => {
  const traced = await loadModel(MODELS.traced, { device: 'cpu' });
  try {
    const x = syntheticInput(2, 64, 64);
    const [a, b] = await Promise.all([scripted().capture(x, ['layer2']), traced.capture(x, ['layer2'])]);
    expect(maxAbsDiff(a[0].data, b[0].data)).toBeLessThan(1e-5);
  } finally {
    traced.dispose();
  }
});

test('dispose while forwards run: they finish, later calls are refused', async () => {
  const m = await loadModel(MODELS.scripted, { device: 'cpu' });
  const x = syntheticInput(2, 96, 96);
  const running = [m.capture(x, 'layer4'), m.capture(x, 'layer2')];
  expect(m.running).toBe(2);
  m.dispose();
  const [a, b] = await Promise.all(running);
  expect(a[0].shape).toEqual([2, 512, 3, 3]);
  expect(b[0].shape).toEqual([2, 128, 12, 12]);
  await expect(m.capture(x, 'layer4')).rejects.toMatchObject({ code: 'MODEL_DISPOSED' });
});

test('captures are freed when JS drops them: 1,000 captures keep RSS bounded', async () => {
  const x = syntheticInput(1, 112, 112);
  const layers = ['conv1', 'layer1', 'layer4']; // about 1.1 MB of features per call
  const gc = (global as { gc?: () => void }).gc;
  for (let i = 0; i < 20; i++) await scripted().capture(x, layers); // warm up caches and allocator
  gc?.();
  const before = process.memoryUsage().rss;
  let checksum = 0;
  for (let i = 0; i < 1000; i++) {
    const caps = await scripted().capture(x, layers);
    checksum += caps[2].data[0];
  }
  gc?.();
  await new Promise((r) => setTimeout(r, 50));
  const growth = process.memoryUsage().rss - before;
  // 1,000 calls made 1.1 GB of features; holding them would grow RSS by that much.
  console.log(`RSS growth over 1,000 captures: ${(growth / 2 ** 20).toFixed(1)} MiB`);
  expect(Number.isFinite(checksum)).toBe(true);
  expect(growth).toBeLessThan(300 * 1024 * 1024);
}, 600000);

test('the process exits cleanly while forwards are still running', () => {
  const script = `
    const { loadModel } = require(${JSON.stringify(path.join(ROOT, 'dist'))});
    (async () => {
      const m = await loadModel(${JSON.stringify(MODELS.scripted)}, { device: 'cpu' });
      const x = { data: new Float32Array(4 * 3 * 224 * 224).fill(0.5), shape: [4, 3, 224, 224] };
      for (let i = 0; i < 4; i++) m.capture(x, ['layer4']);
      setTimeout(() => { console.log('exiting'); process.exit(0); }, 30);
    })();`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120000 });
  expect(out.trim()).toBe('exiting');
});

test('captures reach JS without a copy; memory the model or the caller owns is copied', async () => {
  const { binding } = await import('../../lib/native');
  const before = binding().exportCounters();
  const caps = await scripted().capture(syntheticInput(1, 64, 64), ['conv1', 'layer1', 'layer1.1', 'layer4']);
  const after = binding().exportCounters();
  // conv1, layer1 (= layer1.1: one tensor, one buffer) and layer4: three storages, none copied
  // (capture() returns no output: its graph stops at layer4).
  expect(after.zeroCopy - before.zeroCopy).toBe(3);
  expect(after.copied - before.copied).toBe(0);
  expect(caps[1].data.buffer).toBe(caps[2].data.buffer);

  const { edgeModel } = await import('../support/models');
  const m = await loadModel(edgeModel('aliasing'), { device: 'cpu' });
  try {
    const x = syntheticInput(1, 4, 4);
    const c0 = binding().exportCounters().copied;
    const [ident, param] = await m.capture(x, ['ident', 'param']);
    // Only the parameter is copied: `ident` returns featscope's own copy of the input (taken at
    // the call), which is handed to JS as it is; the caller's array is never aliased.
    expect(binding().exportCounters().copied - c0).toBe(1);
    expect(ident.data.buffer).not.toBe(x.data.buffer);
    expect(Array.from(param.data)).toEqual([0, 1, 2, 3]);
    expect(ident.data).toEqual(x.data);
    // Writing into the arrays changes neither the caller's input nor the model's weights.
    ident.data.fill(7);
    param.data.fill(100);
    expect(x.data[0]).not.toBe(7);
    const [again] = await m.capture(x, ['param']);
    expect(Array.from(again.data)).toEqual([0, 1, 2, 3]);
  } finally {
    m.dispose();
  }
});

test('the hooked graph is built once per set of layers and cached (32 most recent)', async () => {
  const m = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    const x = syntheticInput(1, 32, 32);
    expect(m.cachedGraphs).toBe(0);
    await m.capture(x, ['layer1', 'layer2']);
    await m.capture(x, ['layer2', 'layer1']); // same set, other order
    await m.capture(x, ['layer1.0.relu#1', 'layer2']); // a new set: layer1.0.relu (call #1 kept) and layer2
    expect(m.cachedGraphs).toBe(2);
    const names = (await m.layers())
      .filter((l) => l.calls > 0)
      .map((l) => l.name)
      .slice(0, 40);
    for (const n of names) await m.capture(x, [n]);
    expect(m.cachedGraphs).toBe(32);
  } finally {
    m.dispose();
  }
});
