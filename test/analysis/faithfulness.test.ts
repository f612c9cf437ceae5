// Deletion/insertion curves and the randomisation sanity check against a Python reference written
// here from the definitions (torch + scipy, on the same .pt file; maps and randomised weights
// handed over as files), on a small test network.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import {
  evaluateSaliency,
  gradCamExplainer,
  mapsAtInputSize,
  randomisationCheck,
  randomisedParameters,
  saliency,
  saliencyExplainer,
  spearman,
} from '../../lib/analysis';
import { loadModel, type Model, type TensorInput } from '../../lib';
import { encodeNpy } from '../../lib/npy';
import { CACHE, PYTHON, ROOT, syntheticInput } from '../support/models';
import { withTempDir, writeF32 } from '../support/oracle';

// The network (scripted for featscope; the same class, eager, for the reference) and the reference.
const PY = String.raw`
import json, sys
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from scipy.stats import spearmanr

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 10)
    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu2(self.conv2(x))
        return self.fc(torch.flatten(self.pool(x), 1))

def twin(path):
    m = Tiny()
    m.load_state_dict(torch.jit.load(path).state_dict())
    return m.eval()

def read(path, shape):
    return torch.from_numpy(np.fromfile(path, dtype='<f4').reshape(shape))

def gradcam(m, x, cls):
    feats = {}
    h = m.conv2.register_forward_hook(lambda mod, i, o: feats.__setitem__('a', o))
    logits = m(x)
    h.remove()
    a = feats['a']
    (g,) = torch.autograd.grad(logits.gather(1, cls.view(-1, 1)).sum(), [a])
    return F.relu((g.mean((2, 3), keepdim=True) * a).sum(1)).detach()

def gradient(m, x, cls):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m(x).gather(1, cls.view(-1, 1)).sum(), [x])
    return g.abs().amax(1)

cmd = sys.argv[1]
if cmd == 'make':
    torch.manual_seed(3)
    m = Tiny()
    with torch.no_grad():  # BatchNorm not at its init, so that the cascade changes it
        m.bn1.weight.uniform_(0.5, 1.5); m.bn1.bias.normal_(0, 0.2)
        m.bn1.running_mean.normal_(0, 0.1); m.bn1.running_var.uniform_(0.5, 1.5)
    torch.jit.script(m.eval()).save(sys.argv[2])
elif cmd == 'curves':
    path, xin, shape, maps, step, out = sys.argv[2:8]
    shape = [int(s) for s in shape.split(',')]; n, c, h, w = shape; step = int(step)
    m = twin(path); x = read(xin, shape); sal = np.fromfile(maps, dtype='<f4').reshape(n, h * w)
    delta = np.zeros((11, 11)); delta[5, 5] = 1
    k = torch.from_numpy(gaussian_filter(delta, 5).astype('float32'))
    kern = torch.zeros(c, c, 11, 11)
    for i in range(c): kern[i, i] = k
    blur = lambda t: F.conv2d(t, kern, padding=5)
    steps = (h * w + step - 1) // step
    res = []
    with torch.no_grad():
        for i in range(n):
            xi = x[i:i + 1]
            cl = int(m(xi).argmax(1))
            order = np.argsort(-sal[i], kind='stable')
            r = {'class': cl}
            for mode in ('deletion', 'insertion'):
                start = xi.clone() if mode == 'deletion' else blur(xi)
                finish = torch.zeros_like(xi) if mode == 'deletion' else xi.clone()
                cur = start.clone(); p = []
                for s in range(steps + 1):
                    p.append(float(torch.softmax(m(cur), 1)[0, cl]))
                    coords = order[s * step:(s + 1) * step]
                    flat = cur.view(1, c, h * w); flat[0, :, coords] = finish.view(1, c, h * w)[0, :, coords]
                r[mode] = {'curve': p, 'auc': (sum(p) - p[0] / 2 - p[-1] / 2) / steps}
            res.append(r)
    json.dump(res, open(out, 'w'))
elif cmd == 'mprt':
    path, xin, shape, wdir, layers, classes, out = sys.argv[2:9]
    shape = [int(s) for s in shape.split(',')]; layers = layers.split(',')
    cls = torch.tensor([int(v) for v in classes.split(',')])
    x = read(xin, shape)
    names = json.load(open(wdir + '/names.json'))
    res = {}
    for method in ('gradcam', 'gradient'):
        fn = gradcam if method == 'gradcam' else gradient
        base = fn(twin(path), x, cls).abs().numpy()
        rows = []
        for s in range(len(layers)):
            m = twin(path)
            sd = m.state_dict()
            for layer in layers[:s + 1]:
                for name in names[layer]:
                    sd[name] = torch.from_numpy(np.load(wdir + '/' + name + '.npy')).view_as(sd[name])
            m.load_state_dict(sd)
            cur = fn(m, x, cls).abs().numpy()
            rows.append([float(spearmanr(base[i].ravel(), cur[i].ravel()).correlation) for i in range(shape[0])])
        res[method] = rows
    json.dump(res, open(out, 'w'))
elif cmd == 'upsample':
    src, shape, size, out = sys.argv[2:6]
    n, h, w = [int(s) for s in shape.split(',')]
    t = read(src, [n, 1, h, w])
    F.interpolate(t, size=(int(size), int(size)), mode='bilinear', align_corners=False).numpy().astype('<f4').tofile(out)
`;

const SCRIPT = path.join(CACHE, 'faithfulness_reference.py');
const MODEL = path.join(CACHE, 'faithfulness-tiny.pt');

function py(args: string[]): void {
  execFileSync(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
}

let model: Model;
beforeAll(async () => {
  fs.mkdirSync(CACHE, { recursive: true });
  fs.writeFileSync(SCRIPT, PY);
  if (!fs.existsSync(MODEL)) py(['make', MODEL]);
  model = await loadModel(MODEL, { device: 'cpu' });
});
afterAll(() => model?.dispose());

const X = syntheticInput(2, 32, 32, 7);

test('Grad-CAM upsampled to the input as F.interpolate(bilinear, align_corners=False)', async () => {
  const cam = await model.gradcam(X, { layer: 'conv2' });
  expect(cam.shape).toEqual([2, 8, 8]);
  const ours = mapsAtInputSize({ data: cam.data, shape: cam.shape }, 32, 32);
  const ref = withTempDir('faith-up-', (dir) => {
    writeF32(path.join(dir, 'm.f32'), cam.data);
    py(['upsample', path.join(dir, 'm.f32'), '2,8,8', '32', path.join(dir, 'o.f32')]);
    const b = fs.readFileSync(path.join(dir, 'o.f32'));
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  });
  let d = 0;
  for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(ours[i] - ref[i]));
  expect(d).toBeLessThan(1e-6 * Math.max(1, ...cam.data));
});

test.each([
  ['Grad-CAM (8x8, upsampled)', 'gradcam', 32],
  ['gradient saliency', 'gradient', 7],
] as const)('deletion and insertion of %s equal the Python reference to 1e-5', async (_name, method, step) => {
  let maps: { data: Float32Array; shape: number[] };
  if (method === 'gradcam') {
    const cam = await model.gradcam(X, { layer: 'conv2' });
    maps = { data: cam.data, shape: cam.shape };
  } else {
    maps = (await saliency(model, X, { method: 'gradient' })).map;
  }
  const ours = await evaluateSaliency(model, X, maps, { step, batch: 13 });
  expect(ours.steps).toBe(Math.ceil(1024 / step));
  const ref = withTempDir('faith-curves-', (dir) => {
    writeF32(path.join(dir, 'x.f32'), X.data);
    writeF32(path.join(dir, 'm.f32'), ours.maps.data); // the map the pixels were ordered by
    py([
      'curves',
      MODEL,
      path.join(dir, 'x.f32'),
      X.shape.join(','),
      path.join(dir, 'm.f32'),
      String(step),
      path.join(dir, 'r.json'),
    ]);
    return JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')) as {
      class: number;
      deletion: { curve: number[]; auc: number };
      insertion: { curve: number[]; auc: number };
    }[];
  });
  ours.images.forEach((im, i) => {
    expect(im.class).toBe(ref[i].class);
    for (const metric of ['deletion', 'insertion'] as const) {
      const p = im[metric]!.probabilities;
      expect(p).toHaveLength(ours.steps + 1);
      for (let s = 0; s < p.length; s++) expect(Math.abs(p[s] - ref[i][metric].curve[s])).toBeLessThan(1e-5);
      expect(Math.abs(im[metric]!.auc - ref[i][metric].auc)).toBeLessThan(1e-5);
    }
    // The curves move: the last deletion step is the all-zero input, the last insertion step the input itself.
    expect(im.deletion!.probabilities[0]).not.toBeCloseTo(im.deletion!.probabilities[ours.steps], 6);
  });
});

test('the randomisation check equals Python (scipy spearmanr) on the same permuted weights to 1e-6', async () => {
  const cam = await model.gradcam(X, { layer: 'conv2' });
  const classes = cam.classes;
  const params = model.parameters();
  const gc = await randomisationCheck(model, X, gradCamExplainer('conv2', classes), { seed: 5 });
  const layers = gc.steps.map((s) => s.layer);
  expect(layers).toEqual(['fc', 'conv2', 'bn1', 'conv1']);
  const sg = await randomisationCheck(model, X, saliencyExplainer({ method: 'gradient', classes }), { seed: 5 });
  // The loaded model is untouched.
  const after = model.parameters();
  params.forEach((p, i) => expect(after[i].data).toEqual(p.data));
  const ref = withTempDir('faith-mprt-', (dir) => {
    const values = randomisedParameters(params, layers, 5);
    const names: Record<string, string[]> = {};
    for (const s of gc.steps) names[s.layer] = s.parameters;
    for (const [name, v] of values) {
      const shape = params.find((p) => p.name === name)!.shape;
      fs.writeFileSync(path.join(dir, `${name}.npy`), encodeNpy(v, shape));
    }
    fs.writeFileSync(path.join(dir, 'names.json'), JSON.stringify(names));
    writeF32(path.join(dir, 'x.f32'), X.data);
    py([
      'mprt',
      MODEL,
      path.join(dir, 'x.f32'),
      X.shape.join(','),
      dir,
      layers.join(','),
      classes.join(','),
      path.join(dir, 'r.json'),
    ]);
    return JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')) as Record<string, number[][]>;
  });
  for (const [result, rows] of [
    [gc, ref.gradcam],
    [sg, ref.gradient],
  ] as const) {
    result.steps.forEach((s, k) =>
      s.correlations.forEach((r, i) => expect(Math.abs(r! - rows[k][i])).toBeLessThan(1e-6)),
    );
    expect(result.half).toBe(1);
  }
  // Randomising the classifier head and conv2 moves a real map away from the original.
  expect(gc.steps[3].correlations.every((r) => r! < 0.9)).toBe(true);
});

test('a map that ignores the model (the Sobel edge map of the input) fails the check', async () => {
  // The input as the explainer gets it (TensorInput); the check hands it float data.
  const sobel = async (_m: Model, input: TensorInput) => {
    const x = { data: input.data as Float32Array, shape: input.shape };
    const [n, c, h, w] = x.shape;
    const out = new Float32Array(n * h * w);
    const at = (i: number, y: number, xx: number) => {
      let s = 0;
      for (let ch = 0; ch < c; ch++)
        s += x.data[((i * c + ch) * h + Math.min(h - 1, Math.max(0, y))) * w + Math.min(w - 1, Math.max(0, xx))];
      return s;
    };
    for (let i = 0; i < n; i++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++) {
          const gx =
            at(i, y - 1, xx + 1) +
            2 * at(i, y, xx + 1) +
            at(i, y + 1, xx + 1) -
            at(i, y - 1, xx - 1) -
            2 * at(i, y, xx - 1) -
            at(i, y + 1, xx - 1);
          const gy =
            at(i, y + 1, xx - 1) +
            2 * at(i, y + 1, xx) +
            at(i, y + 1, xx + 1) -
            at(i, y - 1, xx - 1) -
            2 * at(i, y - 1, xx) -
            at(i, y - 1, xx + 1);
          out[(i * h + y) * w + xx] = Math.hypot(gx, gy);
        }
    return { data: out, shape: [n, h, w] };
  };
  const r = await randomisationCheck(model, X, sobel);
  expect(r.images.map((im) => im.fails)).toEqual([true, true]);
  for (const im of r.images) expect(im.correlationAtHalf).toBeCloseTo(1, 12);
});

test('spearman: ties take their mean rank; constant series give null', () => {
  expect(spearman([1, 2, 3, 4], [10, 20, 30, 40])).toBeCloseTo(1, 12);
  expect(spearman([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1, 12);
  // scipy.stats.spearmanr([0, 0, 1, 2], [1, 2, 3, 4]).correlation = 0.9486832980505138
  expect(spearman([0, 0, 1, 2], [1, 2, 3, 4])).toBeCloseTo(0.9486832980505138, 12);
  expect(spearman([1, 1, 1], [1, 2, 3])).toBeNull();
});

test('withParameters: a copy with the new values; bad names and sizes are errors', async () => {
  const fc = model.parameters().find((p) => p.name === 'fc.bias')!;
  const copy = await model.withParameters({ 'fc.bias': new Float32Array(fc.data.length).fill(2) });
  try {
    expect(
      copy
        .parameters()
        .find((p) => p.name === 'fc.bias')!
        .data.every((v) => v === 2),
    ).toBe(true);
    expect(model.parameters().find((p) => p.name === 'fc.bias')!.data).toEqual(fc.data);
    const a = await model.forward(X);
    const b = await copy.forward(X);
    expect(b.output!.data[0]).not.toBeCloseTo(a.output!.data[0], 3);
  } finally {
    copy.dispose();
  }
  await expect(model.withParameters({ 'fc.bais': new Float32Array(10) })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringContaining('fc.bais'),
  });
  await expect(model.withParameters({ 'fc.bias': new Float32Array(3) })).rejects.toMatchObject({
    code: 'SHAPE_MISMATCH',
  });
  await expect(model.withParameters({ 'fc.bias': [1, 2] as unknown as Float32Array })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  });
});

test('bad evaluateSaliency input', async () => {
  const maps = { data: new Float32Array(2 * 32 * 32), shape: [2, 32, 32] };
  await expect(evaluateSaliency(model, X, maps, { metrics: ['deleton' as 'deletion'] })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  });
  await expect(evaluateSaliency(model, X, { data: maps.data, shape: [1, 64, 32] })).rejects.toMatchObject({
    code: 'SHAPE_MISMATCH',
  });
  const nan = { data: new Float32Array(2 * 32 * 32).fill(NaN), shape: [2, 32, 32] };
  await expect(evaluateSaliency(model, X, nan)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  await expect(evaluateSaliency(model, X, maps, { step: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
});

test('CLI: gradcam --metrics deletion,insertion --sanity writes curves, cascade, JSON and report', async () => {
  const { main } = await import('../../lib/cli/main');
  const dog = path.join(ROOT, 'test', 'fixtures', 'images', 'dog.jpg');
  const out = fs.mkdtempSync(path.join(CACHE, 'faith-cli-'));
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const args = ['gradcam', dog, '--model', MODEL, '--device', 'cpu', '--layer', 'conv2', '--saliency', 'gradient'];
    expect(await main([...args, '--metrics', 'deletion,insertion', '--sanity', '--report', '-o', out])).toBe(0);
    for (const f of ['dog.metrics.png', 'dog.sanity.png', 'report.html', 'gradcam.json'])
      expect(fs.existsSync(path.join(out, f))).toBe(true);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'gradcam.json'), 'utf8'));
    const rec = json.images[0];
    expect(rec.metrics.step).toBe(224);
    for (const map of [rec.metrics.gradcam, rec.metrics.saliency]) {
      expect(map.deletion.probabilities).toHaveLength(225);
      expect(map.insertion.auc).toBeGreaterThan(0);
    }
    expect(rec.metrics.gradcam.class).toBe(rec.target.class);
    expect(rec.sanity.gradcam.steps.map((s: { layer: string }) => s.layer)).toEqual(['fc', 'conv2', 'bn1', 'conv1']);
    expect(typeof rec.sanity.saliency.fails).toBe('boolean');
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain('randomisation check');
    expect(html).toContain('deletion AUC');
    await expect(main([...args, '--metrics', 'delete', '-o', out])).rejects.toMatchObject({ code: 'USAGE' });
  } finally {
    spy.mockRestore();
    fs.rmSync(out, { recursive: true, force: true });
  }
});
