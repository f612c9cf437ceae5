// `Model.capture` returns only captures, so its graph returns None for the model's output and
// TorchScript's dead-code pass removes the layers after the last capture. Checked three ways:
// the captures equal Python hooks and forward()'s own (bitwise, on the exact graph); the graph
// really loses the later layers (FEATSCOPE_DEBUG_GRAPH); and an input the later layers reject
// still gives the captures, as a Python hook sees them before the forward raises.
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { FeatscopeError, loadModel, type Model } from '../../lib';
import { ensureBuilt } from '../support/cli';
import {
  CACHE,
  ensureTestModels,
  maxAbsDiff,
  MODELS,
  PYTHON,
  pythonHooks,
  ROOT,
  syntheticInput,
} from '../support/models';

beforeAll(() => ensureTestModels());

function within(got: Float32Array, ref: Float32Array): number {
  let maxRef = 0;
  for (const v of ref) maxRef = Math.max(maxRef, Math.abs(v));
  return maxAbsDiff(got, ref) / (1e-4 * maxRef + 1e-5);
}

describe.each([
  ['scripted', MODELS.scripted],
  ['traced', MODELS.traced],
  ['MobileNetV2', MODELS.mobilenet],
])('%s: capture() stops at the last captured layer', (kind, file) => {
  let model: Model;
  const layers =
    kind === 'MobileNetV2'
      ? ['features.0.0', 'features.3.conv.1.2']
      : ['conv1', 'bn1', 'layer1.0.conv1', 'layer1.0.relu'];
  beforeAll(async () => {
    model = await loadModel(file, { device: 'cpu' });
  });
  afterAll(() => model.dispose());

  test('exact graph: bitwise equal to forward()’s captures, and to Python hooks', async () => {
    const x = syntheticInput(2, 96, 96, 7);
    const caps = await model.capture(x, layers, { optimize: false });
    const full = await model.forward(x, { layers, optimize: false });
    expect(caps.map((c) => c.name)).toEqual(full.captures.map((c) => c.name));
    for (const [i, c] of caps.entries()) {
      expect(c.shape).toEqual(full.captures[i].shape);
      expect(maxAbsDiff(c.data, full.captures[i].data)).toBe(0);
    }
    const oracle = pythonHooks(file, x, layers);
    for (const c of caps) expect(within(c.data, oracle.captures.get(c.name)!.data)).toBeLessThanOrEqual(1);
  });

  test('optimised graph: equal to Python hooks within 1e-4 x max|ref| + 1e-5', async () => {
    const x = syntheticInput(1, 96, 96, 8);
    const caps = await model.capture(x, layers);
    const oracle = pythonHooks(file, x, layers);
    expect(caps.map((c) => c.name)).toEqual([...oracle.captures.keys()]);
    for (const c of caps) expect(within(c.data, oracle.captures.get(c.name)!.data)).toBeLessThanOrEqual(1);
  });
});

test('the captures-only graph has no layers after the last capture; forward() keeps them all', () => {
  ensureBuilt();
  const script = `
    const { loadModel } = require(${JSON.stringify(path.join(ROOT, 'dist'))});
    (async () => {
      const m = await loadModel(${JSON.stringify(MODELS.scripted)}, { device: 'cpu' });
      const x = { data: new Float32Array(3 * 64 * 64), shape: [1, 3, 64, 64] };
      process.stderr.write('=== capture\\n');
      await m.capture(x, ['layer1.0.conv1'], { optimize: false });
      process.stderr.write('=== forward\\n');
      await m.forward(x, { layers: ['layer1.0.conv1'], optimize: false });
      m.dispose();
    })();`;
  // stderr into a file: Node makes a pipe non-blocking, and the native graph dump (std::cerr) would
  // lose what does not fit the pipe's buffer.
  const log = path.join(fs.mkdtempSync(path.join(CACHE, 'graph-')), 'stderr.txt');
  const fd = fs.openSync(log, 'w');
  const r = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, FEATSCOPE_DEBUG_GRAPH: '1' },
    stdio: ['ignore', 'ignore', fd],
  });
  fs.closeSync(fd);
  expect(r.status).toBe(0);
  const [, capture, forward] = fs.readFileSync(log, 'utf8').split(/=== (?:capture|forward)\n/);
  fs.rmSync(path.dirname(log), { recursive: true, force: true });
  const convs = (g: string) => (g.match(/aten::_?conv(?:olution|2d)\(/g) ?? []).length;
  // conv1 and layer1.0.conv1 only: the other 18 convolutions and the fc are dead code there.
  expect(convs(capture)).toBe(2);
  expect(capture).not.toMatch(/aten::(linear|addmm)\(/);
  expect(convs(forward)).toBe(20);
  expect(forward).toMatch(/aten::(linear|addmm)\(/);
});

describe('an input the later layers reject', () => {
  const dir = path.join(CACHE, 'captures-only');
  const file = path.join(dir, 'fixed-head.pt');
  const ref = path.join(dir, 'conv-10x10.f32');
  let model: Model;
  beforeAll(async () => {
    fs.mkdirSync(dir, { recursive: true });
    // conv -> flatten -> Linear(4*8*8): 8x8 inputs only. A Python hook on conv still fires on a
    // 10x10 input before the Linear raises; it saves what it saw.
    execFileSync(
      PYTHON,
      [
        '-c',
        `
import torch
torch.manual_seed(3)
m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5)).eval()
torch.jit.save(torch.jit.script(m), ${JSON.stringify(file)})
x = torch.arange(3 * 10 * 10, dtype=torch.float32).reshape(1, 3, 10, 10).sin()
seen = {}
m[0].register_forward_hook(lambda _m, _i, out: seen.setdefault('conv', out.detach().clone()))
try:
    m(x)
    raise SystemExit('the Linear accepted a 10x10 input')
except RuntimeError:
    pass
seen['conv'].numpy().astype('<f4').tofile(${JSON.stringify(ref)})
`,
      ],
      // Without the ASan runtime that scripts/test-asan.sh preloads for node: this Python throws a
      // C++ exception inside libtorch (the Linear's shape check), which ASan's interceptor cannot.
      { env: { ...process.env, LD_PRELOAD: '' } },
    );
    model = await loadModel(file, { device: 'cpu' });
  });
  afterAll(() => model?.dispose());

  test('forward() fails in the Linear; capture() of the conv equals the Python hook', async () => {
    const data = new Float32Array(3 * 10 * 10).map((_, i) => Math.sin(i));
    const x = { data, shape: [1, 3, 10, 10] };
    const err = await model.forward(x, { layers: ['0'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FeatscopeError);
    const b = fs.readFileSync(ref);
    const want = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    for (const optimize of [false, true]) {
      const [conv] = await model.capture(x, ['0'], { optimize });
      expect(conv.shape).toEqual([1, 4, 10, 10]);
      expect(within(conv.data, want)).toBeLessThanOrEqual(1);
    }
  });
});
