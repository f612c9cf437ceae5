// The optimised path (`optimize: true`, the default of forward and capture): the hooked graph,
// frozen and optimised on a clone of the model (optimize_for_inference on the CPU). Its captures
// are checked against Python's register_forward_hook on the eager twin, within
// 1e-4 * max|ref| + 1e-5, on every oracle model; the cases that keep the exact graph are checked
// to do so, and to say so once on the debug channel. oracle.test.ts and loops.test.ts check the
// exact graph (`optimize: false`) at their tighter tolerances.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { loadModel, Model } from '../../lib';
import { ensureBuilt } from '../support/cli';
import {
  edgeModel,
  ensureTestModels,
  MODELS,
  OracleResult,
  pythonHooks,
  ROOT,
  syntheticInput,
} from '../support/models';

beforeAll(() => ensureTestModels());

function expectClose(name: string, got: Float32Array, ref: Float32Array): void {
  expect(got.length).toBe(ref.length);
  let maxRef = 0;
  let d = 0;
  for (let i = 0; i < ref.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
    d = Math.max(d, Math.abs(got[i] - ref[i]));
  }
  const tol = 1e-4 * maxRef + 1e-5;
  if (!(d <= tol)) throw new Error(`${name}: max abs diff ${d} > ${tol} (max |ref| ${maxRef})`);
}

function expectMatchesOracle(
  res: { output: { data: Float32Array } | null; captures: { name: string; shape: number[]; data: Float32Array }[] },
  oracle: OracleResult,
): void {
  expect(res.captures.map((c) => c.name)).toEqual([...oracle.captures.keys()]);
  for (const c of res.captures) {
    const o = oracle.captures.get(c.name)!;
    expect({ name: c.name, shape: c.shape }).toEqual({ name: c.name, shape: o.shape });
    expectClose(c.name, c.data, o.data);
  }
  expectClose('output', res.output!.data, oracle.output.data);
}

// conv1 is followed by bn1 (conv-BN folding must not absorb it), bn1 and layer1.0.bn2 by in-place
// ops (relu_, +=), layer1.0.relu is shared (two calls).
const RESNET_LAYERS = [
  'conv1',
  'bn1',
  'layer1.0.conv1',
  'layer1.0.bn2',
  'layer1.0.relu',
  'layer2',
  'layer4',
  'avgpool',
  'fc',
];

describe.each([
  ['scripted', MODELS.scripted],
  ['traced', MODELS.traced],
])('%s ResNet-18, optimised graph', (_kind, file) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(file, { device: 'cpu' });
  });
  afterAll(() => model.dispose());

  test('captures and output match Python hooks (batch 2)', async () => {
    const x = syntheticInput(2, 224, 224, 21);
    const res = await model.forward(x, { layers: RESNET_LAYERS });
    expect(res.optimized).toBe(true);
    expectMatchesOracle(res, pythonHooks(file, x, RESNET_LAYERS));
  });

  test('optimised and exact graphs are cached apart; the forward without captures is optimised too', async () => {
    const x = syntheticInput(1, 64, 64, 3);
    const before = model.cachedGraphs;
    const exact = await model.forward(x, { layers: ['layer3'], optimize: false });
    const opt = await model.forward(x, { layers: ['layer3'] });
    expect(exact.optimized).toBe(false);
    expect(opt.optimized).toBe(true);
    expect(model.cachedGraphs).toBe(before + 2);
    expectClose('layer3', opt.captures[0].data, exact.captures[0].data);
    const plain = await model.forward(x);
    expect(plain.optimized).toBe(true);
    expect(plain.captures).toEqual([]);
    expectClose('output', plain.output!.data, exact.output!.data);
  });
});

test('MobileNetV2 (captures inside `if` branches): optimised captures match Python hooks', async () => {
  const m = await loadModel(MODELS.mobilenet, { device: 'cpu' });
  try {
    const layers = [
      'features.0.0',
      'features.2.conv.0',
      'features.3.conv.1.2',
      'features.3',
      'features.16.conv.2',
      'classifier.1',
    ];
    const x = syntheticInput(2, 96, 96, 5);
    const res = await m.forward(x, { layers });
    expect(res.optimized).toBe(true);
    expectMatchesOracle(res, pythonHooks(MODELS.mobilenet, x, layers));
  } finally {
    m.dispose();
  }
});

describe('the loop model', () => {
  let model: Model;
  let file: string;
  beforeAll(async () => {
    file = edgeModel('loopnet');
    model = await loadModel(file, { device: 'cpu' });
  });
  afterAll(() => model.dispose());

  test('modules outside the loop: the optimised graph matches Python hooks', async () => {
    const x = syntheticInput(2, 12, 10, 44);
    const res = await model.forward(x, { layers: ['stem', 'head'] });
    expect(res.optimized).toBe(true);
    expectMatchesOracle(res, pythonHooks(file, x, ['stem', 'head']));
  });

  test('a capture of a module called in the loop keeps the exact graph, with every call', async () => {
    const x = syntheticInput(2, 12, 10, 45);
    const layers = ['stem', 'block', 'block.bn', 'gate', 'head'];
    const res = await model.forward(x, { layers });
    expect(res.optimized).toBe(false);
    const oracle = pythonHooks(file, x, layers);
    expect(res.captures.map((c) => c.name).sort()).toEqual([...oracle.captures.keys()].sort());
    for (const c of res.captures) expectClose(c.name, c.data, oracle.captures.get(c.name)!.data);
  });
});

test('forward writing a module attribute keeps the exact graph', async () => {
  const m = await loadModel(edgeModel('counter'), { device: 'cpu' });
  try {
    const x = syntheticInput(1, 8, 8, 2);
    const res = await m.forward(x, { layers: ['conv'] });
    expect(res.optimized).toBe(false);
    const exact = await m.forward(x, { layers: ['conv'], optimize: false });
    expect(Array.from(res.captures[0].data)).toEqual(Array.from(exact.captures[0].data));
  } finally {
    m.dispose();
  }
});

test('a model frozen already (torch.jit.freeze): its forward is optimised further, twice in a row', async () => {
  const m = await loadModel(edgeModel('frozen'), { device: 'cpu' });
  try {
    const x = syntheticInput(1, 32, 32, 6);
    const exact = await m.forward(x, { optimize: false });
    for (let i = 0; i < 2; i++) {
      const r = await m.forward(x);
      expect(r.optimized).toBe(true);
      expectClose('output', r.output!.data, exact.output!.data);
    }
  } finally {
    m.dispose();
  }
});

test('a capture that freezing turned into a constant is copied out: writing into it changes no later forward', async () => {
  const m = await loadModel(edgeModel('constcap'), { device: 'cpu' });
  try {
    const x = syntheticInput(1, 4, 4, 2);
    const [first] = await m.capture(x, 'scaled');
    expect(Array.from(first.data)).toEqual([0, 2, 4, 6]);
    first.data.fill(100);
    const again = await m.forward(x, { layers: ['scaled'] });
    expect(again.optimized).toBe(true);
    expect(Array.from(again.captures[0].data)).toEqual([0, 2, 4, 6]);
    const exact = await m.forward(x, { optimize: false });
    expectClose('output', again.output!.data, exact.output!.data);
  } finally {
    m.dispose();
  }
});

test('optimize must be a boolean', async () => {
  const m = await loadModel(edgeModel('counter'), { device: 'cpu' });
  try {
    const x = syntheticInput(1, 8, 8, 2);
    await expect(m.forward(x, { optimize: 'yes' as unknown as boolean })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/a boolean for optimize but received "yes"/),
    });
    await expect(m.capture(x, 'conv', { optimize: 1 as unknown as boolean })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  } finally {
    m.dispose();
  }
});

test('more layer sets than the cache holds: evicted optimised graphs are freed, results stay right', async () => {
  const m = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    const x = syntheticInput(1, 32, 32, 8);
    const names = (await m.layers())
      .filter((l) => l.calls > 0)
      .map((l) => l.name)
      .slice(0, 34);
    const first = await m.capture(x, names[0], { optimize: false });
    for (const n of names) expect((await m.forward(x, { layers: [n] })).optimized).toBe(true);
    expect(m.cachedGraphs).toBe(32);
    const again = await m.forward(x, { layers: [names[0]] }); // evicted: built again
    expectClose(names[0], again.captures[0].data, first[0].data);
  } finally {
    m.dispose();
  }
});

test('each fallback reason is said once on the debug channel (FEATSCOPE_DEBUG=1), never without it', () => {
  ensureBuilt();
  const script = `
    const { loadModel } = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});
    (async () => {
      const x = { data: new Float32Array(2 * 3 * 12 * 10).fill(0.5), shape: [2, 3, 12, 10] };
      const m = await loadModel(${JSON.stringify(edgeModel('loopnet'))}, { device: 'cpu' });
      for (let i = 0; i < 3; i++) await m.capture(x, ['block', 'head']);
      await m.capture(x, 'head');
      const c = await loadModel(${JSON.stringify(edgeModel('counter'))}, { device: 'cpu' });
      for (let i = 0; i < 2; i++) await c.capture(x, 'conv');
      process.stdout.write('done');
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const run = (debug: string) =>
    spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, FEATSCOPE_DEBUG: debug } });
  const on = run('1');
  expect(on.stdout).toBe('done');
  const lines = on.stderr.split('\n').filter((l) => l.startsWith('featscope: debug:'));
  expect(lines).toHaveLength(2);
  expect(lines[0]).toMatch(
    /loopnet\.pt: the exact graph runs instead of the optimised one for layers \[block, head\]: captures of block, a module called inside a loop/,
  );
  expect(lines[1]).toMatch(/counter\.pt: .*layers \[conv\]: the model's forward writes the module attribute calls/);
  const off = run('');
  expect(off.stdout).toBe('done');
  expect(off.stderr).toBe('');
});
