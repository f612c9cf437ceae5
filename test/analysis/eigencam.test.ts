// EigenCAM against a Python reference: numpy's SVD of the same capture (positions x channels,
// channels centred), projected onto the first right singular vector, sign fixed so that the
// vector's components sum to >= 0 (test/support/structured_oracle.py). Within 1e-4 of the map's
// largest magnitude. On a segmentation model's dict part, a detection FPN level, and ResNet-18.
import { execFileSync } from 'child_process';
import { eigenCam, eigenCamOf, firstComponentMap, loadModel } from '../../lib';
import {
  MODELS,
  PYTHON,
  STRUCTURED_MODELS,
  ensureStructuredModels,
  ensureTestModels,
  pythonHooks,
  structuredOracle,
  syntheticInput,
} from '../support/models';

beforeAll(() => {
  ensureTestModels();
  ensureStructuredModels();
}, 300_000);

function expectSameMap(got: Float32Array, want: Float32Array) {
  expect(got.length).toBe(want.length);
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let d = 0;
  for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i] - want[i]));
  if (!(d <= 1e-4 * Math.max(1, scale))) throw new Error(`EigenCAM differs by ${d} (map max ${scale})`);
}

test.each([
  ['segmentation backbone:out', 'segmentation', 'backbone', 'backbone:out', 96, 128],
  ['detection backbone.fpn:1', 'detection', 'backbone.fpn', 'backbone.fpn:1', 64, 64],
] as const)(
  '%s equals numpy SVD',
  async (_name, kind, layer, part, h, w) => {
    const file = STRUCTURED_MODELS[kind];
    const model = await loadModel(file, { device: 'cpu' });
    try {
      const input = syntheticInput(2, h, w, 9);
      const oracle = structuredOracle(file, input, [layer], part);
      const cam = await eigenCam(model, input, { layer: part });
      expect(cam.layer).toBe(part);
      expect(cam.shape).toEqual(oracle.get('eigencam')!.shape);
      expectSameMap(cam.data, oracle.get('eigencam')!.data);
      for (const e of cam.explained) expect(e > 0 && e <= 1).toBe(true);
    } finally {
      model.dispose();
    }
  },
  120_000,
);

test('ResNet-18 layer1 and layer4 (channel-side and position-side Gram matrices) equal numpy SVD', async () => {
  const model = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    const input = syntheticInput(1, 64, 64, 2);
    // layer1: 64 channels x 256 positions (channel Gram); layer4: 512 channels x 4 positions (position Gram).
    for (const layer of ['layer1', 'layer4']) {
      const hooks = pythonHooks(MODELS.scripted, input, [layer]).captures.get(layer)!;
      const [cap] = await model.capture(input, [layer], { optimize: false });
      const cam = eigenCamOf(cap);
      const [, c, hh, ww] = hooks.shape;
      // The reference, by the oracle's numpy SVD on the Python hook's capture.
      const ref = numpySvdMap(hooks.data, c, hh * ww);
      expectSameMap(cam.data, ref);
    }
  } finally {
    model.dispose();
  }
}, 120_000);

test('the sign rule and centring, on a rank-one matrix', () => {
  // a[c][p] = u[p] * v[c] with v summing negative: the map is -(u - mean u) * |v| ... sign fixed by sum(v) >= 0.
  const C = 3,
    P = 4;
  const u = [1, 2, 3, 6],
    v = [-1, -2, 0.5];
  const a = new Float32Array(C * P);
  for (let c = 0; c < C; c++) for (let p = 0; p < P; p++) a[c * P + p] = u[p] * v[c];
  const r = firstComponentMap(a, C, P, true);
  const vs = r.vector.reduce((s, x) => s + x, 0);
  expect(vs).toBeGreaterThanOrEqual(0);
  // M v with v = -v/|v| (the positive-sum orientation): (u - 3) * (-|v|)
  const norm = Math.hypot(...v);
  for (let p = 0; p < P; p++) expect(r.map[p]).toBeCloseTo(-(u[p] - 3) * norm, 5);
  expect(r.explained).toBeCloseTo(1, 10);
  const raw = firstComponentMap(a, C, P, false);
  for (let p = 0; p < P; p++) expect(raw.map[p]).toBeCloseTo(-u[p] * norm, 5);
});

/** numpy's SVD (as test/support/structured_oracle.py computes it) of a Python hook's capture. */
function numpySvdMap(data: Float32Array, c: number, p: number): Float32Array {
  const script = `
import sys, numpy as np
a = np.frombuffer(sys.stdin.buffer.read(), dtype='<f4').astype(np.float64).reshape(${c}, ${p})
m = a.T - a.T.mean(axis=0)
v = np.linalg.svd(m, full_matrices=False)[2][0]
v = -v if v.sum() < 0 else v
sys.stdout.buffer.write((m @ v).astype('<f4').tobytes())`;
  const out = execFileSync(PYTHON, ['-c', script], {
    input: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  });
  return new Float32Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength));
}
