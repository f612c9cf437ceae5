// Input staging, pixel input, release() and the memory pool (issue 20, items 1 and 2), on the CPU.
// - The input is copied once, at the call, into pooled memory reused across calls: a
//   [128, 3, 224, 224] input cost 18,819 minor page faults per call before (a fresh 77 MB
//   mapping each time), about 1 after.
// - Uint8Array pixels are normalised natively; oracle: the float path of preprocess() on the same
//   image, through a model that returns x * 1.0.
// - release() frees the output and captures at once and detaches their arrays.
// - Pool accounting with the garbage collector in a child process (test/support/pool-gc.js).
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as v8 from 'v8';
import * as vm from 'vm';
import { FeatscopeError, loadModel, memoryStats, preprocess, type Model } from '../../lib';
import { binding } from '../../lib/native';
import { cpuModelForTests, MODELS, PYTHON, ROOT, syntheticInput } from '../support/models';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-staging-'));
const FILES = {
  gap: path.join(tmp, 'gap.pt'),
  scaled: path.join(tmp, 'scaled.pt'),
  same: path.join(tmp, 'same.pt'),
};
const resnet = cpuModelForTests();

beforeAll(() => {
  const script = `
import sys, torch
class GlobalAvgPool(torch.nn.Module):
    def forward(self, x):
        return x.mean((2, 3))
class Scaled(torch.nn.Module):
    def forward(self, x):
        return x * 1.0
class Same(torch.nn.Module):
    def forward(self, x):
        return x
torch.jit.script(GlobalAvgPool()).save(sys.argv[1])
torch.jit.script(Scaled()).save(sys.argv[2])
torch.jit.script(Same()).save(sys.argv[3])
`;
  // torch.jit.script reads the classes' source: a file, not -c.
  const file = path.join(tmp, 'export.py');
  fs.writeFileSync(file, script);
  execFileSync(PYTHON, [file, FILES.gap, FILES.scaled, FILES.same], { stdio: 'inherit' });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function withModel<T>(file: string, fn: (m: Model) => Promise<T>): Promise<T> {
  const m = await loadModel(file, { device: 'cpu' });
  try {
    return await fn(m);
  } finally {
    m.dispose();
  }
}

test('a [128, 3, 224, 224] input costs fewer than 1,000 minor page faults per call after warm-up', async () => {
  await withModel(FILES.gap, async (m) => {
    const n = 128 * 3 * 224 * 224;
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = ((i * 7919) % 1001) / 1000;
    const x = { data, shape: [128, 3, 224, 224] };
    for (let i = 0; i < 2; i++) await m.forward(x);
    const calls = 5;
    const before = process.resourceUsage().minorPageFault;
    let last;
    for (let i = 0; i < calls; i++) last = await m.forward(x);
    const perCall = (process.resourceUsage().minorPageFault - before) / calls;
    console.log(`staging: ${perCall} minor page faults per call at [128, 3, 224, 224] (18,819 before issue 20)`);
    expect(perCall).toBeLessThan(1000);
    // The staged copy is the input: the pooled means equal JS's own (double) means.
    const plane = 224 * 224;
    for (const k of [0, 200, 383]) {
      let s = 0;
      for (let i = 0; i < plane; i++) s += data[k * plane + i];
      expect(Math.abs(last!.output!.data[k] - s / plane)).toBeLessThan(1e-5);
    }
  });
}, 120_000);

test('Uint8Array pixels normalised natively equal the float path of preprocess within 1e-6', async () => {
  const images = ['dog.jpg', 'chelsea.png'].map((f) => path.join(ROOT, 'test', 'fixtures', 'images', f));
  const floats = await preprocess(images, { resize: 'crop' });
  const pixels = await preprocess(images, { resize: 'crop', output: 'uint8' });
  expect(pixels.data).toBeInstanceOf(Uint8Array);
  expect(pixels.shape).toEqual(floats.shape);
  expect(pixels.data.length).toBe(floats.data.length);
  expect(pixels.mean).toEqual([0.485, 0.456, 0.406]);
  await withModel(FILES.scaled, async (m) => {
    const viaPixels = (await m.forward(pixels)).output!.data;
    const viaFloats = (await m.forward(floats)).output!.data;
    let worst = 0;
    for (let i = 0; i < viaFloats.length; i++) worst = Math.max(worst, Math.abs(viaPixels[i] - viaFloats[i]));
    expect(viaPixels.length).toBe(floats.data.length);
    expect(worst).toBeLessThanOrEqual(1e-6);
    // The model's output is the normalised input itself: equal to preprocess's floats too.
    let inputDiff = 0;
    for (let i = 0; i < viaFloats.length; i++) inputDiff = Math.max(inputDiff, Math.abs(viaFloats[i] - floats.data[i]));
    expect(inputDiff).toBe(0);
  });
  // Captures too (a real network), and the JS fallback of gradcam() agrees with the native path.
  const cap = (x: object) => resnet().capture(x as never, ['layer1'], { optimize: false });
  const [a] = await cap(pixels);
  const [b] = await cap(floats);
  let worst = 0;
  let peak = 0;
  for (let i = 0; i < a.data.length; i++) {
    worst = Math.max(worst, Math.abs(a.data[i] - b.data[i]));
    peak = Math.max(peak, Math.abs(b.data[i]));
  }
  expect(worst).toBeLessThanOrEqual(1e-5 * Math.max(1, peak));
  // gradcam normalises pixels in JS with preprocess's own table: the same input bit for bit.
  const g1 = await resnet().gradcam(pixels, { layer: 'layer4' });
  const g2 = await resnet().gradcam(floats, { layer: 'layer4' });
  expect(Buffer.from(g1.data.buffer, g1.data.byteOffset, g1.data.byteLength)).toEqual(
    Buffer.from(g2.data.buffer, g2.data.byteOffset, g2.data.byteLength),
  );
}, 120_000);

test('a Uint8Array input needs mean and std per channel; a Float32Array refuses them', async () => {
  const data = new Uint8Array(3 * 8 * 8);
  const fails = async (x: object, re: RegExp) => {
    const err = await resnet()
      .forward(x as never)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FeatscopeError);
    expect((err as FeatscopeError).code).toBe('INVALID_INPUT');
    expect((err as FeatscopeError).message).toMatch(re);
  };
  await fails({ data, shape: [1, 3, 8, 8] }, /input\.mean .*3 finite number/);
  await fails({ data, shape: [1, 3, 8, 8], mean: [0, 0, 0], std: [1, 0, 1] }, /input\.std .*above 0/);
  await fails({ data: new Float32Array(3 * 64), shape: [1, 3, 8, 8], mean: [0, 0, 0], std: [1, 1, 1] }, /drop them/);
  // The addon checks too (a caller of the raw binding).
  const native = binding();
  const raw = await native.load(FILES.gap, 'cpu', 'fast');
  // Thrown at the call, as the addon's other input checks.
  expect(() => raw.forward(data, [1, 3, 8, 8], [], {}, false, false, { mean: [0, 0], std: [1, 1] } as never)).toThrow(
    /mean: one number per channel \(3\)/,
  );
  raw.dispose();
});

/**
 * A full collection, with the finalizers it queues run: the arrays earlier tests dropped are gone
 * before a test counts exported bytes, so a collection during the test cannot lower the count.
 * (jest runs without --expose-gc; V8's flag is set at run time and `gc` read from a new context.)
 */
async function settleGc(): Promise<void> {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('release() frees output and captures at once and detaches their arrays; Symbol.dispose is release', async () => {
  const x = syntheticInput(2, 32, 32);
  await resnet().forward(x, { layers: ['layer1'] }); // the model's first run, and its garbage, before counting
  await settleGc();
  const base = memoryStats().exportedBytes;
  const r = await resnet().forward(x, { layers: ['layer1', 'layer1.1', 'conv1'], optimize: false });
  const held = memoryStats().exportedBytes - base;
  const bytes = [r.output!.data, ...r.captures.map((c) => c.data)].reduce((s, a) => s + a.byteLength, 0);
  // layer1 and layer1.1 share one storage: held counts it once.
  expect(held).toBe(bytes - r.get('layer1.1').data.byteLength);
  expect(r.captures.every((c) => c.data.length > 0)).toBe(true);
  r.release();
  expect(memoryStats().exportedBytes).toBe(base);
  expect(r.output!.data.length).toBe(0);
  expect(r.captures.map((c) => c.data.length)).toEqual([0, 0, 0]);
  expect(r.captures[0].data.buffer.byteLength).toBe(0);
  r.release(); // again: nothing left to free
  expect(memoryStats().exportedBytes).toBe(base);

  const r2 = await resnet().forward(x, { layers: ['layer4'] });
  expect(r2.get('layer4').data.length).toBe(2 * 512 * 1 * 1);
  r2[Symbol.dispose]();
  expect(r2.get('layer4').data.length).toBe(0);
  expect(memoryStats().exportedBytes).toBe(base);
});

function poolChild(env: NodeJS.ProcessEnv = {}, args: string[] = [FILES.same]) {
  const r = spawnSync(process.execPath, ['--expose-gc', path.join(ROOT, 'test', 'support', 'pool-gc.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0 || r.signal)
    throw new Error(`pool-gc.js: exit ${r.status} signal ${r.signal}\n${r.stderr.slice(-3000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('pool accounting: a staged block is held by the array viewing it, returns when it is collected or released, and is reused', () => {
  const s = poolChild();
  const block = 2 * 2 ** 20; // 1,204,224 bytes, rounded up to whole MiB
  expect(s.maxDiff).toBe(0);
  expect(s.start.inUseBytes).toBe(0);
  // The model returns its input: the output array is the staging block itself.
  expect(s.held.inUseBytes).toBe(block);
  expect(s.held.exportedBytes).toBe(s.bytes);
  expect(s.held.blocksAllocated).toBe(1);
  // Collected: the finalizer returned the block.
  expect(s.collected.inUseBytes).toBe(0);
  expect(s.collected.pooledBytes).toBe(block);
  expect(s.collected.exportedBytes).toBe(0);
  // The next call reuses it: no new block.
  expect(s.again.blocksReused).toBe(1);
  expect(s.again.blocksAllocated).toBe(1);
  expect(s.again.pooledBytes).toBe(0);
  // release(): back at once, the array detached.
  expect(s.releasedLength).toBe(0);
  expect(s.released.inUseBytes).toBe(0);
  expect(s.released.pooledBytes).toBe(block);
  expect(s.end.pooledBytes).toBe(block);
  expect(s.end.poolCapBytes).toBe(512 * 2 ** 20);
}, 150_000);

test('FEATSCOPE_PINNED_POOL_MB caps the pool: a block past the cap is freed, not kept', () => {
  const s = poolChild({ FEATSCOPE_PINNED_POOL_MB: '1' });
  expect(s.end.poolCapBytes).toBe(2 ** 20);
  expect(s.held.inUseBytes).toBe(2 * 2 ** 20);
  expect(s.collected.pooledBytes).toBe(0);
  expect(s.again.blocksAllocated).toBe(2);
  expect(s.end.pooledBytes).toBe(0);
  expect(s.end.inUseBytes).toBe(0);
}, 150_000);

test('the output arena (the CUDA path, run on the CPU with FEATSCOPE_ARENA_ON_CPU=1) holds the same values in one pooled block, freed by release()', async () => {
  const out = path.join(tmp, 'arena.bin');
  const s = poolChild({ FEATSCOPE_ARENA_ON_CPU: '1' }, ['arena', MODELS.scripted, out]);
  // This process hands libtorch's storages over as they are: the oracle for the arena copies.
  const data = new Float32Array(4 * 3 * 112 * 112);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37);
  const r = await resnet().forward(
    { data, shape: [4, 3, 112, 112] },
    { layers: ['conv1', 'layer1', 'layer1.1', 'layer4'], stats: true, optimize: false },
  );
  expect(s.names).toEqual(r.captures.map((c) => c.name));
  const arrays = [r.output!.data];
  for (const c of r.captures) arrays.push(c.data, c.stats!.max, c.stats!.mean);
  expect(s.lengths).toEqual(arrays.map((a) => a.length));
  const got = new Float32Array(new Uint8Array(fs.readFileSync(out)).buffer);
  let at = 0;
  for (const a of arrays) {
    expect(
      Buffer.from(got.buffer, at * 4, a.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength)),
    ).toBe(true);
    at += a.length;
  }
  const total = arrays.reduce((n, a) => n + a.byteLength, 0);
  const shared = r.get('layer1.1').data.byteLength;
  r.release();
  // layer1 and layer1.1 are one tensor: one copy, one buffer, as on the zero-copy path.
  expect(s.sameBuffer).toBe(true);
  const arenaBytes = s.held.inUseBytes - s.start.inUseBytes;
  expect(arenaBytes).toBeGreaterThanOrEqual(total - shared);
  expect(s.held.exportedBytes).toBe(total - shared);
  expect(s.held.exportedBuffers).toBe(s.lengths.length - 1);
  expect(s.releasedLengths.every((n: number) => n === 0)).toBe(true);
  expect(s.released.inUseBytes).toBe(0);
  expect(s.released.exportedBytes).toBe(0);
  expect(s.released.pooledBytes).toBeGreaterThanOrEqual(arenaBytes);
}, 150_000);

test("libtorch's CUDA out-of-memory errors map to CUDA_OOM on 1.13 and 2.x alike", () => {
  const classify = binding()._classifyError;
  const oom113 = 'CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.7 GiB total capacity)';
  const oom2 =
    'CUDA out of memory. Tried to allocate 70.00 GiB. GPU 0 has a total capacity of 139.8 GiB of which 12 MiB is free.';
  expect(classify('Error', oom113).code).toBe('CUDA_OOM');
  expect(classify('OutOfMemoryError', oom2).code).toBe('CUDA_OOM');
  expect(classify('OutOfMemoryError', oom2).message).toMatch(/smaller batch.*libtorch said: CUDA out of memory/);
  expect(classify('Error', 'CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported').code).toBe(
    'CUDA_OOM',
  );
  expect(
    classify(
      'runtime_error',
      'The following operation failed in the TorchScript interpreter.\nRuntimeError: CUDA out of memory.',
    ).code,
  ).toBe('CUDA_OOM');
  expect(
    classify('Error', 'cuBLAS error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle): out of memory').code,
  ).toBe('CUDA_OOM');
  // Not CUDA: host memory, and other failures keep their codes.
  expect(classify('OutOfMemoryError', 'DefaultCPUAllocator: not enough memory: you tried to allocate 1 TB').code).toBe(
    'OUT_OF_MEMORY',
  );
  expect(classify('Error', 'Expected 4-dimensional input for 4-dimensional weight').code).toBe('FORWARD_FAILED');
  expect(classify('Error', 'out of memory').code).toBe('FORWARD_FAILED');
});
