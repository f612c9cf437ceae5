// Weight histograms against a brute-force count over the listed edges; statistics; filter tiles.
import sharp from 'sharp';
import { loadModel, Model } from '../../lib';
import { histogram, renderFirstConvFilters, renderWeightHistograms, weightDistributions } from '../../lib/analysis';
import { ensureTestModels, MODELS } from '../support/models';

let model: Model;
beforeAll(async () => {
  ensureTestModels();
  model = await loadModel(MODELS.scripted, { device: 'cpu' });
});
afterAll(() => model.dispose());

function bruteCounts(data: Float32Array, edges: Float64Array): number[] {
  const bins = edges.length - 1;
  const counts = new Array(bins).fill(0);
  for (const v of data) {
    for (let i = 0; i < bins; i++) {
      if ((v >= edges[i] && v < edges[i + 1]) || (i === bins - 1 && v === edges[bins])) {
        counts[i]++;
        break;
      }
    }
  }
  return counts;
}

test('every parameter histogram equals a brute-force count over its edges', () => {
  const dist = weightDistributions(model, { bins: 37 });
  const params = new Map(model.parameters().map((p) => [p.name, p]));
  expect(dist.tensors.length).toBe(62); // parameters only: BatchNorm running stats are buffers
  for (const t of dist.tensors) {
    const p = params.get(t.name)!;
    expect(Array.from(t.counts)).toEqual(bruteCounts(p.data, t.edges));
    expect(t.counts.reduce((a, b) => a + b, 0)).toBe(p.data.length);
    let s = 0,
      mn = Infinity,
      mx = -Infinity,
      near = 0;
    for (const v of p.data) {
      s += v;
      mn = Math.min(mn, v);
      mx = Math.max(mx, v);
    }
    const mean = s / p.data.length;
    let sq = 0;
    for (const v of p.data) sq += (v - mean) ** 2;
    const absMax = Math.max(-mn, mx);
    for (const v of p.data) if (Math.abs(v) < 1e-3 * absMax) near++;
    expect(t.mean).toBeCloseTo(mean, 10);
    expect(t.std).toBeCloseTo(Math.sqrt(sq / p.data.length), 10);
    expect([t.min, t.max]).toEqual([mn, mx]);
    expect(t.nearZero).toBe(near / p.data.length);
  }
});

test('edge cases: values on bin edges, a constant tensor, all zeros', () => {
  const h = histogram('x.weight', [5], Float32Array.from([0, 0.25, 0.5, 0.75, 1]), 4);
  expect(Array.from(h.counts)).toEqual([1, 1, 1, 2]);
  expect(h.layer).toBe('x');
  expect(h.role).toBe('weight');
  const c = histogram('c', [3], Float32Array.from([2, 2, 2]), 10);
  expect(c.counts.reduce((a, b) => a + b, 0)).toBe(3);
  expect(c.std).toBe(0);
  const z = histogram('z', [4], new Float32Array(4), 3);
  expect(z.nearZero).toBe(1);
});

test('layer filter and bad options', () => {
  const d = weightDistributions(model, { layers: ['layer1.0'] });
  expect(d.tensors.every((t) => t.name.startsWith('layer1.0.'))).toBe(true);
  expect(weightDistributions(model, { layers: ['fc'] }).tensors.map((t) => t.name)).toEqual(['fc.weight', 'fc.bias']);
  expect(() => weightDistributions(model, { bins: 0 })).toThrow(/bins/);
  expect(() => weightDistributions(model, { layers: ['nope'] })).toThrow(/no parameters under nope/);
  expect(weightDistributions(model, { buffers: true }).tensors.some((t) => t.name.endsWith('running_var'))).toBe(true);
});

test('first-conv filters: each tile min-max normalised, so every tile spans 0..255', async () => {
  const r = await renderFirstConvFilters(model, { scale: 4 });
  expect(r.layer).toBe('conv1');
  const { data, info } = await sharp(r.png).raw().toBuffer({ resolveWithObject: true });
  // Tile 0 sits at the top-left of the grid: find its extent from the layout used (8 columns, 7x7 taps x 4).
  const tileW = 28,
    gap = 4,
    columns = 8;
  const gridW = columns * tileW + (columns - 1) * gap;
  const left = Math.floor((info.width - gridW) / 2);
  const top = 30 + 56;
  let lo = 255,
    hi = 0;
  for (let y = 0; y < tileW; y++)
    for (let x = 0; x < tileW; x++)
      for (let c = 0; c < 3; c++) {
        const v = data[((top + y) * info.width + left + x) * info.channels + c];
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
  expect(lo).toBe(0);
  expect(hi).toBe(255);
  const hist = await renderWeightHistograms(model, weightDistributions(model));
  expect(hist.png.subarray(1, 4).toString()).toBe('PNG');
});
