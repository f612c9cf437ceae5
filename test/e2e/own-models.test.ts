/**
 * Own models: a fine-tuned 10-class ResNet-18 saved as users save it (a checkpoint dict, a
 * DataParallel state_dict) goes through scripts/export-model.py into featscope; its logits equal
 * the eager PyTorch model's, and render and gradcam name its classes. A model without featscope
 * metadata warns once per run, and --mean/--std/--labels supply what it lacks.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadModel } from '../../lib/model';
import { preprocess } from '../../lib/preprocess';
import { PYTHON, ROOT, maxAbsDiff } from '../support/models';
import { DOG, ensureBuilt, runCli, tempDir } from '../support/cli';

const LABELS = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const EXPORTER = path.join(ROOT, 'scripts', 'export-model.py');
const CHELSEA = path.join(path.dirname(DOG), 'chelsea.png');
let dir: string;

beforeAll(() => {
  ensureBuilt();
  dir = tempDir('own-models');
  execFileSync(PYTHON, [path.join(ROOT, 'test', 'support', 'finetuned_checkpoints.py'), dir], { stdio: 'inherit' });
});

function exportModel(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(PYTHON, [EXPORTER, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, FEATSCOPE_DEBUG: '', ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The eager torchvision model, loaded from the checkpoint by the test's own code (not the
 * exporter's), run on `input`: its logits.
 */
function eagerLogits(
  checkpoint: string,
  key: string | null,
  input: { data: Float32Array; shape: number[] },
): Float32Array {
  const inFile = path.join(dir, `input-${Math.random().toString(36).slice(2)}.f32`);
  fs.writeFileSync(inFile, Buffer.from(input.data.buffer, input.data.byteOffset, input.data.byteLength));
  const script = `
import sys, numpy as np, torch, torchvision
ckpt = torch.load(sys.argv[1], map_location="cpu")
sd = ckpt if sys.argv[2] == "" else ckpt[sys.argv[2]]
sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
m = torchvision.models.resnet18(weights=None, num_classes=10)
m.load_state_dict(sd)
m.eval()
x = torch.from_numpy(np.fromfile(sys.argv[3], dtype="<f4").reshape(${JSON.stringify(input.shape)}))
with torch.no_grad():
    m(x).numpy().astype("<f4").tofile(sys.argv[3] + ".out")
`;
  execFileSync(PYTHON, ['-c', script, path.join(dir, checkpoint), key ?? '', inFile], { stdio: 'inherit' });
  const b = fs.readFileSync(`${inFile}.out`);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const argmax = (a: Float32Array) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);

describe.each([
  { name: 'wrapped', checkpoint: 'wrapped.pth', key: 'model', source: /checkpoint wrapped\.pth \['model'\], epoch 7/ },
  {
    name: 'dataparallel',
    checkpoint: 'dataparallel.pth',
    key: 'state_dict',
    source: /checkpoint dataparallel\.pth \['state_dict'\], epoch 3, DataParallel 'module\.' prefix stripped/,
  },
])('a $name checkpoint of a 10-class fine-tuned ResNet-18', ({ name, checkpoint, key, source }) => {
  const model = () => path.join(dir, `${name}.pt`);
  /** The eager model's logits for the dog photo, from the first test. */
  let dogLogits: Float32Array;

  test('exports with its labels, loads with the eager logits and renders', async () => {
    const e = exportModel([`${name}.pt`, '--arch', 'resnet18', '--weights', checkpoint, '--labels', 'labels.txt']);
    expect(e.stderr).toBe('');
    expect(e.code).toBe(0);
    expect(e.stdout).toMatch(/10 classes/);

    const m = await loadModel(model(), { device: 'cpu' });
    try {
      expect(m.metadata.classes).toEqual(LABELS);
      expect(m.metadata.weights?.trained).toBe(true);
      expect(m.metadata.weights?.source).toMatch(source);
      const x = await preprocess([DOG, CHELSEA], { model: m });
      const { output } = await m.forward(x);
      expect(output!.shape).toEqual([2, 10]);
      const want = eagerLogits(checkpoint, key, x);
      expect(maxAbsDiff(output!.data, want)).toBeLessThanOrEqual(1e-4 * Math.max(1, ...Array.from(want, Math.abs)));
      dogLogits = want.slice(0, 10);
    } finally {
      m.dispose();
    }

    const out = tempDir(`own-${name}-render`);
    const r = runCli([
      'render',
      DOG,
      '--model',
      model(),
      '--layers',
      'layer1.0.conv1,layer4',
      '--report',
      '--device',
      'cpu',
      '--out',
      out,
    ]);
    expect(r.stderr).not.toMatch(/warning/);
    expect(r.code).toBe(0);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.trained).toBe(true);
    expect(manifest.model.classes).toBe(10);
    expect(manifest.model.weights.source).toMatch(source);
    expect(manifest.images).toHaveLength(1);
    for (const f of ['dog/layer1.0.conv1.png', 'dog/layer4.png', 'report.html'])
      expect(fs.statSync(path.join(out, f)).size).toBeGreaterThan(1000);
  });

  test("gradcam names its predictions with the labels, in the eager model's order", async () => {
    const want = dogLogits; // gradcam preprocesses as preprocess(DOG, { model }) did
    const order = Array.from(want.keys()).sort((a, b) => want[b] - want[a]);
    const out = tempDir(`own-${name}-gradcam`);
    const r = runCli(['gradcam', DOG, '--model', model(), '--top', '3', '--device', 'cpu', '--out', out, '--json']);
    expect(r.code).toBe(0);
    const predictions = JSON.parse(r.stdout).images[0].predictions as Array<{ class: number; name: string }>;
    expect(predictions.map((p) => p.class)).toEqual(order.slice(0, 3));
    expect(predictions.map((p) => p.name)).toEqual(order.slice(0, 3).map((c) => LABELS[c]));
    expect(argmax(want)).toBe(predictions[0].class);
  });
});

describe('export-model.py failures are one line naming the fix', () => {
  test.each([
    {
      args: ['x.pt', '--weights', 'wrapped.pth', '--arch', 'resnet34'],
      message: /does not fit --arch resnet34: \d+ parameters missing .*pass the --arch the weights were trained with/,
      code: 2,
    },
    {
      args: ['x.pt', '--weights', 'wrapped.pth', '--arch', 'resnt18'],
      message: /unknown --arch 'resnt18'.*did you mean resnet18/,
      code: 2,
    },
    {
      args: ['x.pt', '--weights', 'wrapped.pth', '--num-classes', '5'],
      message: /--num-classes 5 does not match .*fc\.weight has 10 outputs/,
      code: 2,
    },
    {
      args: ['x.pt', '--weights', 'wrapped.pth', '--labels', 'short.txt'],
      message: /--labels short\.txt has 3 names but the model has 10 classes/,
      code: 2,
    },
    {
      args: ['x.pt', '--weights', 'labels.txt'],
      message: /torch\.load cannot read it .*torch\.save\(model\.state_dict\(\), FILE\)/,
      code: 1,
    },
    {
      args: ['x.pt', '--weights', 'nokey.pth'],
      message: /checkpoint dict with keys epoch, optimizer but none of model, state_dict, model_state_dict/,
      code: 2,
    },
    { args: ['x.pt', '--weights', 'missing.pth'], message: /--weights 'missing\.pth': no such file/, code: 2 },
    { args: ['x.pt', '--mean', '0.5,0.5'], message: /--mean takes three numbers for R,G,B/, code: 2 },
    { args: ['x.pt', '--script', '--trace'], message: /not allowed with argument/, code: 2 },
  ])('$args', ({ args, message, code }) => {
    const r = exportModel(args);
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/Traceback/);
    expect(fs.existsSync(path.join(dir, 'x.pt'))).toBe(false);
  });

  test('FEATSCOPE_DEBUG shows the traceback', () => {
    const r = exportModel(['x.pt', '--mean', '0.5,0.5'], { FEATSCOPE_DEBUG: '1' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Traceback/);
  });

  test('a 10-class state_dict exports without --num-classes, and with --trace', async () => {
    const r = exportModel([
      'plain-trace.pt',
      '--weights',
      'plain.pth',
      '--trace',
      '--mean',
      '0.5,0.5,0.5',
      '--std',
      '0.25,0.25,0.25',
      '--size',
      '160',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/no --labels, so featscope will name the 10 classes 'class 0' to 'class 9'/);
    const m = await loadModel(path.join(dir, 'plain-trace.pt'), { device: 'cpu' });
    try {
      expect(m.metadata.export).toBe('trace');
      expect(m.metadata.input).toMatchObject({ size: [160, 160], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
      expect(m.metadata.classes).toBeUndefined();
      const x = await preprocess(DOG, { model: m });
      expect(x.shape).toEqual([1, 3, 160, 160]);
      const { output } = await m.forward(x);
      expect(maxAbsDiff(output!.data, eagerLogits('plain.pth', null, x))).toBeLessThanOrEqual(1e-3);
    } finally {
      m.dispose();
    }
  });
});

describe('a model without featscope metadata', () => {
  const nometa = () => path.join(dir, 'nometa.pt');
  const warning = /warning: .*nometa\.pt stores no input normalisation .*ImageNet's is assumed/g;

  test('warns once per run that ImageNet normalisation is assumed', () => {
    const out = tempDir('own-nometa');
    const r = runCli(['render', DOG, CHELSEA, '--model', nometa(), '--batch', '1', '--device', 'cpu', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stderr.match(warning)).toHaveLength(1);
    expect(r.stderr).toMatch(/pass --mean\/--std\/--size\/--labels/);
  });

  test('--mean/--std/--labels supply the normalisation and class names: no warning, and the values reach the forward', async () => {
    const mean = [0.5, 0.4, 0.3],
      std = [0.2, 0.25, 0.3];
    const out = tempDir('own-nometa-export');
    const r = runCli([
      'export',
      DOG,
      '--model',
      nometa(),
      '--layers',
      'fc',
      '--mean',
      mean.join(','),
      '--std',
      std.join(','),
      '--labels',
      path.join(dir, 'labels.txt'),
      '--device',
      'cpu',
      '--out',
      out,
    ]);
    expect(r.stderr).not.toMatch(/warning/);
    expect(r.code).toBe(0);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.model.input).toEqual({ size: [224, 224], mean, std });
    expect(manifest.model.commandLine).toEqual(['mean', 'std', 'labels']);
    expect(manifest.model.classes).toBe(10);
    const npy = (file: string) => {
      const b = fs.readFileSync(file);
      return new Float32Array(b.buffer.slice(b.byteOffset + b.length - 40, b.byteOffset + b.length));
    };
    const fc = npy(path.join(out, 'dog', 'fc.npy'));
    const want = eagerLogits('plain.pth', null, await preprocess(DOG, { mean, std }));
    expect(maxAbsDiff(fc, want)).toBeLessThanOrEqual(1e-4);
    const imagenet = eagerLogits('plain.pth', null, await preprocess(DOG, {}));
    expect(maxAbsDiff(fc, imagenet)).toBeGreaterThan(1e-2);

    // --resume with other values redoes the image instead of keeping the old file.
    const r2 = runCli([
      'export',
      DOG,
      '--model',
      nometa(),
      '--layers',
      'fc',
      '--device',
      'cpu',
      '--out',
      out,
      '--resume',
      '--mean',
      '0.485,0.456,0.406',
      '--std',
      '0.229,0.224,0.225',
    ]);
    expect(r2.code).toBe(0);
    expect(maxAbsDiff(npy(path.join(out, 'dog', 'fc.npy')), imagenet)).toBeLessThanOrEqual(1e-4);

    const g = runCli([
      'gradcam',
      DOG,
      '--model',
      nometa(),
      '--labels',
      path.join(dir, 'labels.txt'),
      '--mean',
      mean.join(','),
      '--std',
      std.join(','),
      '--device',
      'cpu',
      '--out',
      tempDir('own-nometa-gc'),
      '--json',
    ]);
    expect(g.code).toBe(0);
    expect(JSON.parse(g.stdout).images[0].predictions[0]).toMatchObject({
      class: argmax(want),
      name: LABELS[argmax(want)],
    });
  });

  test('bad --labels, --mean and --size are usage errors naming the value', () => {
    const short = path.join(dir, 'short.txt');
    const cases: Array<[string[], RegExp]> = [
      [['--labels', short], /--labels ".*short\.txt" has 3 names but the model has 10 classes/],
      [['--labels', path.join(dir, 'none.txt')], /--labels .*none\.txt": no such file/],
      [['--mean', '0.5,x,0.5'], /--mean takes three numbers for R,G,B .*not "0\.5,x,0\.5"/],
      [['--std', '0.2,-1,0.2'], /--std takes three positive numbers/],
      [['--size', '3'], /--size must be the input side in pixels, an integer from 8 to 8192, not "3"/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(['render', DOG, '--model', nometa(), '--device', 'cpu', '--out', tempDir('own-bad'), ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/\[USAGE\]/);
    }
  });
});
