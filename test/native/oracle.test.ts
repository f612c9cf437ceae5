// Native captures against the independent oracle: Python register_forward_hook on the eager
// torchvision twin (same state_dict), same input. Scripted and traced exports, batch 1 and 4.
import { loadModel, Model } from '../../lib';
import { ensureTestModels, MODELS, maxAbsDiff, pythonHooks, syntheticInput } from '../support/models';

const LAYERS = ['conv1', 'bn1', 'layer1.0.conv1', 'layer1.0.relu', 'layer2', 'layer4', 'avgpool', 'fc'];
const EXPECTED_NAMES = [
  'conv1',
  'bn1',
  'layer1.0.conv1',
  'layer1.0.relu',
  'layer1.0.relu#1',
  'layer2',
  'layer4',
  'avgpool',
  'fc',
];

beforeAll(() => ensureTestModels());

describe.each([
  ['scripted', MODELS.scripted],
  ['traced', MODELS.traced],
])('%s ResNet-18 matches Python forward hooks', (_kind, file) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(file, { device: 'cpu' });
  });
  afterAll(() => model.dispose());

  test.each([1, 4])('batch %i: every capture within 1e-4', async (n) => {
    const input = syntheticInput(n, 224, 224, 7 + n);
    const oracle = pythonHooks(file, input, LAYERS);
    const res = await model.forward(input, { layers: LAYERS, optimize: false }); // the exact graph (optimize.test.ts: the optimised one)

    expect(res.captures.map((c) => c.name)).toEqual(EXPECTED_NAMES);
    expect([...oracle.captures.keys()]).toEqual(EXPECTED_NAMES);
    for (const c of res.captures) {
      const o = oracle.captures.get(c.name)!;
      expect({ name: c.name, shape: c.shape }).toEqual({ name: c.name, shape: o.shape });
      expect(Object.prototype.toString.call(c.data)).toBe('[object Float32Array]');
      const d = maxAbsDiff(c.data, o.data);
      if (!(d <= 1e-4)) throw new Error(`${c.name}: max abs diff ${d}`);
    }
    expect(res.output!.shape).toEqual([n, 1000]);
    expect(maxAbsDiff(res.output!.data, oracle.output.data)).toBeLessThanOrEqual(1e-4);
  });

  test('bn1 is captured before the in-place ReLU that follows it', async () => {
    const input = syntheticInput(1);
    const [bn1, relu] = await model.capture(input, ['bn1', 'relu']);
    // The oracle already showed bn1 equals Python's; here: it really has negative values,
    // which the relu_ right after it would have zeroed in a raw (unguarded) capture.
    expect(bn1.data.some((v) => v < 0)).toBe(true);
    expect(relu.data.every((v) => v >= 0)).toBe(true);
    let same = true;
    for (let i = 0; i < bn1.data.length; i++)
      if (Math.max(bn1.data[i], 0) !== relu.data[i]) {
        same = false;
        break;
      }
    expect(same).toBe(true);
  });

  test('a shared module gives one capture per call, each selectable with #k', async () => {
    const input = syntheticInput(1);
    const all = await model.capture(input, ['layer1.0.relu']);
    expect(all.map((c) => [c.name, c.call])).toEqual([
      ['layer1.0.relu', 0],
      ['layer1.0.relu#1', 1],
    ]);
    const second = await model.capture(input, ['layer1.0.relu#1']);
    expect(second.map((c) => c.name)).toEqual(['layer1.0.relu#1']);
    expect(maxAbsDiff(second[0].data, all[1].data)).toBe(0);
  });
});

test('layers() lists every submodule in call order with types and call counts', async () => {
  const scripted = await loadModel(MODELS.scripted, { device: 'cpu' });
  const traced = await loadModel(MODELS.traced, { device: 'cpu' });
  try {
    const ls = await scripted.layers();
    const lt = await traced.layers();
    expect(ls.length).toBe(67); // torchvision's named_modules() of ResNet-18, minus the root
    expect(ls.slice(0, 6)).toEqual([
      { name: 'conv1', type: 'Conv2d', calls: 1 },
      { name: 'bn1', type: 'BatchNorm2d', calls: 1 },
      { name: 'relu', type: 'ReLU', calls: 1 },
      { name: 'maxpool', type: 'MaxPool2d', calls: 1 },
      { name: 'layer1', type: 'Sequential', calls: 1 },
      { name: 'layer1.0', type: 'BasicBlock', calls: 1 },
    ]);
    expect(ls.find((l) => l.name === 'layer1.0.relu')).toEqual({ name: 'layer1.0.relu', type: 'ReLU', calls: 2 });
    expect(ls.find((l) => l.name === 'layer2.0.downsample.0')).toEqual({
      name: 'layer2.0.downsample.0',
      type: 'Conv2d',
      calls: 1,
    });
    expect(ls.slice(-2).map((l) => l.name)).toEqual(['avgpool', 'fc']);
    // Traced and scripted agree on names, types, counts and order.
    expect(lt).toEqual(ls);

    const withShapes = await scripted.layers({ inputSize: 224 });
    const shape = (n: string) => withShapes.find((l) => l.name === n)!.outputShapes;
    expect(shape('conv1')).toEqual([[1, 64, 112, 112]]);
    expect(shape('layer1.0.relu')).toEqual([
      [1, 64, 56, 56],
      [1, 64, 56, 56],
    ]);
    expect(shape('layer4')).toEqual([[1, 512, 7, 7]]);
    expect(shape('fc')).toEqual([[1, 1000]]);
  } finally {
    scripted.dispose();
    traced.dispose();
  }
});

test('metadata written by export-model.py is read back', async () => {
  const m = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    expect(m.metadata.architecture).toBe('resnet18');
    expect(m.metadata.export).toBe('script');
    expect(m.metadata.weights).toEqual({ source: 'random init (torch.manual_seed(0))', trained: false });
    expect(m.metadata.input!.mean).toEqual([0.485, 0.456, 0.406]);
    expect(m.metadata.input!.std).toEqual([0.229, 0.224, 0.225]);
    expect(m.metadata.input!.size).toEqual([224, 224]);
    expect(m.metadata.classes).toHaveLength(1000);
    expect(m.metadata.classes![207]).toBe('golden retriever');
    expect(m.device).toBe('cpu');
    expect(m.type).toBe('ResNet');
  } finally {
    m.dispose();
  }
});

test('hook() adds captures to every forward until remove(); the README example', async () => {
  const m = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    const x = syntheticInput(1, 64, 64);
    const h1 = m.hook(['layer1.0.conv1', 'layer4']);
    const h2 = m.hook('layer1.0.relu#1');
    let r = await m.forward(x);
    expect(r.captures.map((c) => [c.name, c.shape])).toEqual([
      ['layer1.0.conv1', [1, 64, 16, 16]],
      ['layer1.0.relu#1', [1, 64, 16, 16]],
      ['layer4', [1, 512, 2, 2]],
    ]);
    expect(r.get('layer4').data.length).toBe(512 * 4);
    expect(() => r.get('fc')).toThrow(
      /no capture named "fc" in this result; it has: layer1\.0\.conv1, layer1\.0\.relu#1, layer4/,
    );
    h1.remove();
    r = await m.forward(x, { layers: ['fc'] });
    expect(r.captures.map((c) => c.name)).toEqual(['layer1.0.relu#1', 'fc']);
    h2.remove();
    r = await m.forward(x);
    expect(r.captures).toEqual([]);
    expect(r.output!.shape).toEqual([1, 1000]);
  } finally {
    m.dispose();
  }
});

test('scripted MobileNetV2: layers inside `if self.use_res_connect` match Python hooks', async () => {
  const m = await loadModel(MODELS.mobilenet, { device: 'cpu' });
  try {
    // features.2 has no residual (stride 2 path), features.3 and features.16 do: their inner
    // layers are called inside the `if` branches of InvertedResidual.forward.
    const layers = [
      'features.0.0',
      'features.2.conv.0',
      'features.3.conv.1.2',
      'features.3',
      'features.16.conv.2',
      'classifier.1',
    ];
    const x = syntheticInput(2, 96, 96, 5);
    const oracle = pythonHooks(MODELS.mobilenet, x, layers);
    const res = await m.forward(x, { layers, optimize: false });
    expect(res.captures.map((c) => c.name)).toEqual([...oracle.captures.keys()]);
    for (const c of res.captures) {
      const d = maxAbsDiff(c.data, oracle.captures.get(c.name)!.data);
      if (!(d <= 1e-4)) throw new Error(`${c.name}: max abs diff ${d}`);
    }
  } finally {
    m.dispose();
  }
});
