// Bad input: each case asserts class, code and message, and that the model stays usable.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cuda, FeatscopeError, loadModel, Model } from '../../lib';
import { edgeModel, ensureTestModels, MODELS, PYTHON, syntheticInput } from '../support/models';

let model: Model;
let tmp: string;
beforeAll(async () => {
  ensureTestModels();
  model = await loadModel(MODELS.scripted, { device: 'cpu' });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-errors-'));
});
afterAll(() => {
  model.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function expectError(p: Promise<unknown> | (() => unknown), code: string, message: RegExp): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FeatscopeError);
  expect((err as FeatscopeError).code).toBe(code);
  expect((err as Error).message).toMatch(message);
}

afterEach(async () => {
  // The model is still usable after every bad call.
  const [c] = await model.capture(syntheticInput(1, 32, 32), 'conv1');
  expect(c.shape).toEqual([1, 64, 16, 16]);
});

describe('model files', () => {
  test('missing file', () =>
    expectError(loadModel('/nonexistent/resnet.pt'), 'MODEL_NOT_FOUND', /"\/nonexistent\/resnet.pt" does not exist/));
  test('a directory', () => expectError(loadModel(tmp), 'MODEL_INVALID', /is a directory/));
  test('a file that is not TorchScript', async () => {
    const f = path.join(tmp, 'notes.pt');
    fs.writeFileSync(f, 'hello, I am text');
    await expectError(loadModel(f, { device: 'cpu' }), 'MODEL_INVALID', /notes\.pt: it is not a TorchScript archive/);
  });
  test('a truncated model', async () => {
    const f = path.join(tmp, 'truncated.pt');
    const whole = fs.readFileSync(MODELS.scripted);
    fs.writeFileSync(f, whole.subarray(0, Math.floor(whole.length / 2)));
    await expectError(loadModel(f, { device: 'cpu' }), 'MODEL_INVALID', /truncated\.pt: .*truncated or corrupt/);
  });
  test('a state_dict saved with torch.save', async () => {
    const f = path.join(tmp, 'weights.pth');
    execFileSync(PYTHON, [
      '-c',
      `import torch, torchvision; torch.save(torchvision.models.resnet18().state_dict(), ${JSON.stringify(f)})`,
    ]);
    await expectError(
      loadModel(f, { device: 'cpu' }),
      'MODEL_INVALID',
      /saved with torch\.save .*export-model\.py --arch ARCH --weights FILE\.pth \(add --num-classes N and --labels FILE/,
    );
  });
  test('a frozen model has no module calls left', async () => {
    const m = await loadModel(edgeModel('frozen'), { device: 'cpu' });
    try {
      expect(await m.layers()).toEqual([]);
      await expectError(
        m.capture(syntheticInput(1, 32, 32), 'conv1'),
        'MODEL_FROZEN',
        /has no submodules to hook: it was frozen \(torch\.jit\.freeze/,
      );
      const r = await m.forward(syntheticInput(1, 32, 32));
      expect(r.output!.shape).toEqual([1, 1000]);
    } finally {
      m.dispose();
    }
  });
  test('bad device and options', async () => {
    await expectError(
      loadModel(MODELS.scripted, { device: 'gpu' as never }),
      'INVALID_ARGUMENT',
      /'auto', 'cpu', 'cuda' or 'cuda:N' for device but received "gpu"/,
    );
    await expectError(
      loadModel(MODELS.scripted, { devcie: 'cpu' } as never),
      'UNKNOWN_OPTION',
      /Unknown option "devcie" for loadModel options/,
    );
  });
  test('CUDA asked for where there is none', async () => {
    if (cuda.available()) return; // the GPU suite covers this machine
    await expectError(
      loadModel(MODELS.scripted, { device: 'cuda:0' }),
      'CUDA_UNAVAILABLE',
      /device cuda:0 asked for, but this libtorch sees no CUDA device/,
    );
  });
});

describe('inputs', () => {
  test('a plain array instead of a Float32Array', () =>
    expectError(
      model.capture({ data: [1, 2, 3] as never, shape: [1, 3, 1, 1] }, 'conv1'),
      'INVALID_INPUT',
      /Float32Array for input\.data but received an array of length 3 \(wrap it/,
    ));
  test('wrong rank', () =>
    expectError(
      model.capture({ data: new Float32Array(3 * 4), shape: [3, 2, 2] }, 'conv1'),
      'INVALID_INPUT',
      /\[N, C, H, W\] .* received \[3, 2, 2\]/,
    ));
  test('data length not matching the shape', () =>
    expectError(
      model.capture({ data: new Float32Array(10), shape: [1, 3, 32, 32] }, 'conv1'),
      'INVALID_INPUT',
      /has 10 values but input\.shape \[1, 3, 32, 32\] needs 3072/,
    ));
  test('batch 0', () =>
    expectError(
      model.capture({ data: new Float32Array(0), shape: [0, 3, 32, 32] }, 'conv1'),
      'INVALID_INPUT',
      /batch size 0/,
    ));
  test('wrong channel count', () =>
    expectError(
      model.capture({ data: new Float32Array(4 * 32 * 32), shape: [1, 4, 32, 32] }, 'conv1'),
      'FORWARD_FAILED',
      /input of shape \[1, 4, 32, 32\] does not fit model .*resnet18-script\.pt: Given groups=1, weight of size \[64, 3, 7, 7\], expected input\[1, 4, 32, 32\] to have 3 channels, but got 4 channels instead$/,
    ));
  test('NaN and Inf propagate as in PyTorch (documented)', async () => {
    const x = syntheticInput(1, 32, 32);
    x.data[0] = NaN;
    x.data[1] = Infinity;
    const [c] = await model.capture(x, 'conv1');
    expect(Number.isNaN(c.data[0])).toBe(true);
  });
});

describe('layers', () => {
  test('unknown layer suggests the closest names', () =>
    expectError(
      model.capture(syntheticInput(1, 32, 32), 'layer1.0.conv'),
      'UNKNOWN_LAYER',
      /unknown layer "layer1\.0\.conv"; closest: layer1\.0\.conv1, layer1\.0\.conv2/,
    ));
  test('empty list', () =>
    expectError(model.capture(syntheticInput(1, 32, 32), []), 'INVALID_ARGUMENT', /at least one layer name/));
  test('duplicates', () =>
    expectError(
      model.capture(syntheticInput(1, 32, 32), ['conv1', 'conv1']),
      'DUPLICATE_LAYER',
      /"conv1" is listed twice/,
    ));
  test('a call that does not exist', () =>
    expectError(
      model.capture(syntheticInput(1, 32, 32), ['layer1.0.relu#2']),
      'LAYER_NOT_CALLED',
      /layer1\.0\.relu is called 2 time\(s\)/,
    ));
  test('a layer whose output is a tuple is captured as its parts, pair:0 and pair:1', async () => {
    const m = await loadModel(edgeModel('tuple_layer'), { device: 'cpu' });
    try {
      const x = syntheticInput(1, 8, 8);
      const [c, p0, p1] = await m.capture(x, ['conv', 'pair']);
      expect([p0.name, p0.part, p1.name, p1.part]).toEqual(['pair:0', '0', 'pair:1', '1']);
      expect(c.shape).toEqual([1, 4, 8, 8]);
      // Pair returns (x, x * 2) of the conv's output.
      expect(Array.from(p0.data)).toEqual(Array.from(c.data));
      expect(Array.from(p1.data)).toEqual(Array.from(c.data, (v) => Math.fround(v * 2)));
      await expectError(
        m.capture(x, 'pair:2'),
        'CAPTURE_NOT_FOUND',
        /pair:2 is not a part of pair's output; its parts: pair:0, pair:1/,
      );
    } finally {
      m.dispose();
    }
  });
  test('a layer whose output nests deeper than 32 levels (34 nested tuples) is refused naming the limit; the model stays usable', async () => {
    const m = await loadModel(edgeModel('deep_parts'), { device: 'cpu' });
    try {
      const x = syntheticInput(1, 8, 8);
      await expectError(
        m.capture(x, 'deep'),
        'LAYER_OUTPUT_NOT_TENSOR',
        /deep: its output nests deeper than 32 levels/,
      );
      const [c] = await m.capture(x, 'conv');
      expect(c.shape).toEqual([1, 4, 8, 8]);
    } finally {
      m.dispose();
    }
  });
  test('a module that forward never calls', async () => {
    const m = await loadModel(edgeModel('unused'), { device: 'cpu' });
    try {
      expect((await m.layers()).map((l) => [l.name, l.calls])).toEqual([
        ['conv', 1],
        ['spare', 0],
      ]);
      await expectError(
        m.capture(syntheticInput(1, 8, 8), 'spare'),
        'LAYER_NOT_CALLED',
        /spare exists but the model's forward never calls it/,
      );
    } finally {
      m.dispose();
    }
  });
  test("a module with an overloaded forward (forward__0, as DenseNet's layers) is hooked", async () => {
    const m = await loadModel(edgeModel('overloaded'), { device: 'cpu' });
    try {
      expect((await m.layers()).map((l) => [l.name, l.type, l.calls])).toEqual([
        ['layer', 'Overloaded', 1],
        ['layer.conv', 'Conv2d', 1],
      ]);
      const r = await m.forward(syntheticInput(1, 8, 8), { layers: ['layer', 'layer.conv'] });
      expect(r.captures.map((c) => c.name)).toEqual(['layer.conv', 'layer']);
      expect(r.get('layer').data).toEqual(r.output!.data);
    } finally {
      m.dispose();
    }
  });
  test('a module called inside a loop', async () => {
    const m = await loadModel(edgeModel('looped'), { device: 'cpu' });
    try {
      // One capture per iteration (test/native/loops.test.ts checks the values against Python).
      expect((await m.capture(syntheticInput(1, 8, 8), 'step')).map((c) => c.name)).toEqual(['step']);
      expect((await m.capture(syntheticInput(3, 8, 8), 'step')).map((c) => c.name)).toEqual([
        'step',
        'step#1',
        'step#2',
      ]);
      const r = await m.forward(syntheticInput(2, 8, 8));
      expect(r.output!.shape).toEqual([2, 3, 8, 8]);
    } finally {
      m.dispose();
    }
  });
  test('a module called inside an `if`: captured when its branch runs, absent when not', async () => {
    const m = await loadModel(edgeModel('branchy'), { device: 'cpu' });
    try {
      // branchy: y = conv(x); if y.sum() > 0: y = extra(y); return y
      // Scaled far up, the conv's bias is negligible: x and -x give sums of opposite signs.
      const base = syntheticInput(1, 8, 8, 3);
      const scaled = (k: number) => ({ data: base.data.map((v) => v * k), shape: base.shape });
      const [probe] = await m.capture(scaled(100), 'conv');
      const k = probe.data.reduce((a, b) => a + b, 0) > 0 ? 100 : -100;
      const findSign = async (positive: boolean) => scaled(positive ? k : -k);
      const taken = await m.forward(await findSign(true), { layers: ['conv', 'extra'] });
      expect(taken.captures.map((c) => c.name)).toEqual(['conv', 'extra']);
      expect(taken.get('extra').data).toEqual(taken.output!.data);
      const skipped = await m.forward(await findSign(false), { layers: ['conv', 'extra'] });
      expect(skipped.captures.map((c) => c.name)).toEqual(['conv']);
      expect(skipped.get('conv').data).toEqual(skipped.output!.data);
    } finally {
      m.dispose();
    }
  });
  test('a model with no submodules', async () => {
    const m = await loadModel(edgeModel('no_submodules'), { device: 'cpu' });
    try {
      expect(await m.layers()).toEqual([]);
      const r = await m.forward(syntheticInput(1, 8, 8));
      expect(r.output!.shape).toEqual([1, 3]);
      expect(r.captures).toEqual([]);
    } finally {
      m.dispose();
    }
  });
  test('a model whose forward returns a tuple: output is null, captures still work (documented)', async () => {
    const m = await loadModel(edgeModel('tuple_out'), { device: 'cpu' });
    try {
      const r = await m.forward(syntheticInput(1, 8, 8), { layers: ['conv'] });
      expect(r.output).toBeNull();
      expect(r.get('conv').shape).toEqual([1, 4, 8, 8]);
      // The (logits, features) tuple comes back typed: an array of two tensors.
      const [logits, features] = r.value as { shape: number[]; data: Float32Array; dtype?: string }[];
      expect([logits.shape, logits.dtype, features.shape]).toEqual([[1, 4], 'float32', [1, 4, 8, 8]]);
      expect(Array.from(features.data)).toEqual(Array.from(r.get('conv').data));
    } finally {
      m.dispose();
    }
  });
  test("a model that writes to its input does not change the caller's array", async () => {
    const m = await loadModel(edgeModel('inplace_input'), { device: 'cpu' });
    try {
      const x = syntheticInput(1, 8, 8);
      const before = Float32Array.from(x.data);
      await m.capture(x, 'conv');
      expect(Buffer.compare(Buffer.from(before.buffer), Buffer.from(x.data.buffer))).toBe(0);
    } finally {
      m.dispose();
    }
  });
});

describe('options', () => {
  test('unknown key', () =>
    expectError(
      model.capture(syntheticInput(1, 32, 32), 'conv1', { chanels: [1] } as never),
      'UNKNOWN_OPTION',
      /Unknown option "chanels" for capture options; known options: channels, maxSize, stats/,
    ));
  test('wrong types', () =>
    expectError(
      model.capture(syntheticInput(1, 32, 32), 'conv1', { stats: 'yes' } as never),
      'INVALID_ARGUMENT',
      /Expected a boolean for stats but received "yes"/,
    ));
  test('zero or negative k', async () => {
    await expectError(
      model.capture(syntheticInput(1, 32, 32), 'conv1', { channels: { top: 0 } }),
      'INVALID_ARGUMENT',
      /positive integer for channels\.top but received 0/,
    );
    await expectError(
      model.capture(syntheticInput(1, 32, 32), 'conv1', { channels: { top: -3 } }),
      'INVALID_ARGUMENT',
      /received -3/,
    );
  });
  test('a channel that does not exist', () =>
    expectError(
      model.capture(syntheticInput(1, 32, 32), 'conv1', { channels: [64] }),
      'INVALID_ARGUMENT',
      /channel 64 does not exist: the capture has channels 0\.\.63/,
    ));
});

test('use after dispose', async () => {
  const m = await loadModel(MODELS.scripted, { device: 'cpu' });
  m.dispose();
  expect(m.disposed).toBe(true);
  await expectError(
    m.capture(syntheticInput(1, 32, 32), 'conv1'),
    'MODEL_DISPOSED',
    /was disposed; load it again with loadModel\(\)/,
  );
  await expectError(() => m.hook('conv1'), 'MODEL_DISPOSED', /was disposed/);
  m.dispose(); // twice is fine
});
