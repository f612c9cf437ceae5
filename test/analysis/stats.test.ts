// Folder statistics: dead channels on a constructed model, exact percentiles, the mergeable sketch past the limit
// (against numpy's percentile), and merged runs equal to one run.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, Model } from '../../lib';
import sharp from 'sharp';
import {
  PercentileSketch,
  SKETCH_ACCURACY,
  folderStats,
  mergeStatsStates,
  percentileSorted,
  renderChannelExamples,
  renderStatsChart,
} from '../../lib/analysis';
import { preprocess } from '../../lib/preprocess';
import { CACHE, ensureTestModels, MODELS, PYTHON, ROOT, pythonHooks } from '../support/models';

const IMAGES = path.join(ROOT, 'test', 'fixtures', 'images');
const files = fs
  .readdirSync(IMAGES)
  .sort()
  .map((f) => path.join(IMAGES, f));
const DEAD_MODEL = path.join(CACHE, 'dead-channels.pt');

let dead: Model;
let resnet: Model;
beforeAll(async () => {
  ensureTestModels();
  if (!fs.existsSync(DEAD_MODEL))
    execFileSync(PYTHON, [path.join(ROOT, 'test', 'support', 'dead_channels_model.py'), DEAD_MODEL]);
  dead = await loadModel(DEAD_MODEL, { device: 'cpu' });
  resnet = await loadModel(MODELS.scripted, { device: 'cpu' });
});
afterAll(() => {
  dead.dispose();
  resnet.dispose();
});

test('dead channels: exactly the constructed ones (2 and 5), whatever the batching', async () => {
  for (const batch of [1, 4, 16]) {
    const s = await folderStats(dead, files, { layers: ['relu', 'conv'], batch });
    expect(s.images).toBe(files.length);
    const relu = s.layers.find((l) => l.name === 'relu')!;
    expect(relu.deadChannels).toEqual([2, 5]);
    expect(relu.deadShare).toBe(2 / 8);
    expect(relu.channel.silentShare[2]).toBe(1);
    // Channel 7 is constant 1: it always fires, with mean and every percentile exactly 1.
    expect(relu.channel.silentShare[7]).toBe(0);
    for (const k of ['mean', 'p50', 'p90', 'p99', 'max'] as const) expect(relu.channel[k][7]).toBeCloseTo(1, 6);
    // Before the ReLU, the dead channels are constant -1: still dead (max <= 0), mean -1.
    const conv = s.layers.find((l) => l.name === 'conv')!;
    expect(conv.deadChannels).toEqual([2, 5]);
    expect(conv.channel.mean[5]).toBeCloseTo(-1, 6);
    expect(s.weights.trained).toBeUndefined();
  }
});

test('means and exact percentiles equal a brute-force pass over per-image captures', async () => {
  const s = await folderStats(resnet, files, { layers: ['layer1.0.relu#1', 'layer3'], batch: 4 });
  const x = await preprocess(files, { size: 224 });
  const caps = await resnet.capture(x, ['layer1.0.relu#1', 'layer3']);
  for (const cap of caps) {
    const [n, c, h, w] = cap.shape;
    const layer = s.layers.find((l) => l.name === cap.name)!;
    expect(layer.percentiles).toBe('exact');
    for (const ch of [0, 7, c - 1]) {
      const means: number[] = [];
      let max = -Infinity;
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let j = 0; j < h * w; j++) {
          const v = cap.data[(i * c + ch) * h * w + j];
          sum += v;
          max = Math.max(max, v);
        }
        means.push(sum / (h * w));
      }
      const sorted = [...means].sort((a, b) => a - b);
      expect(layer.channel.mean[ch]).toBeCloseTo(means.reduce((a, b) => a + b) / n, 4);
      expect(layer.channel.p50[ch]).toBeCloseTo(percentileSorted(sorted, 0.5), 4);
      expect(layer.channel.p90[ch]).toBeCloseTo(percentileSorted(sorted, 0.9), 4);
      expect(layer.channel.p99[ch]).toBeCloseTo(percentileSorted(sorted, 0.99), 4);
      expect(layer.channel.max[ch]).toBeCloseTo(max, 4);
    }
  }
  const chart = await renderStatsChart(resnet, s);
  expect(chart.png.subarray(1, 4).toString()).toBe('PNG');
});

test('past exactLimit, percentiles come from the sketch: constant and dead channels exactly', async () => {
  // 12 images (the fixtures twice) with exactLimit 5: the sketch from the 6th image on.
  const s = await folderStats(dead, [...files, ...files], { layers: ['relu'], batch: 5, exactLimit: 5 });
  const relu = s.layers[0];
  expect(relu.percentiles).toBe('sketch');
  expect(relu.deadChannels).toEqual([2, 5]);
  // Channel 7 is constant 1 (min = max: exact), channel 2 is 0 everywhere (zeros are counted exactly).
  for (const k of ['p50', 'p90', 'p99'] as const) {
    expect(relu.channel[k][7]).toBe(1);
    expect(relu.channel[k][2]).toBe(0);
  }
  expect(s.state[0].means).toBeNull();
  expect(s.state[0].sketch[7]).toMatchObject({ n: 12, zero: 0, min: 1, max: 1 });
  await expect(folderStats(dead, files, { layers: ['relu'], exactLimit: -1 })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/an integer of at least 0 for exactLimit/),
  });
});

/** numpy's percentiles (linear) of float32 values, with the two order statistics each interpolates between. */
function numpyPercentiles(values: Float32Array): { q: number; value: number; lo: number; hi: number }[] {
  const file = path.join(CACHE, `sketch-values-${process.pid}.f32`);
  fs.writeFileSync(file, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  const script = [
    'import sys, json, numpy as np',
    'v = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64)',
    's = np.sort(v)',
    'out = []',
    'for q in (0.5, 0.9, 0.99, 0.01, 0.25):',
    '    at = (len(v) - 1) * q',
    '    out.append({"q": q, "value": float(np.percentile(v, q * 100)), "lo": float(s[int(np.floor(at))]), "hi": float(s[int(np.ceil(at))])})',
    'print(json.dumps(out))',
  ].join('\n');
  const out = execFileSync(PYTHON, ['-c', script, file], { encoding: 'utf8' });
  fs.rmSync(file);
  return JSON.parse(out);
}

test('the sketch against numpy percentile: within SKETCH_ACCURACY, over decades, negatives and zeros', () => {
  let seed = 11;
  const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const streams: Record<string, () => number> = {
    exponential: () => -Math.log(1 - rand()),
    'log-normal over decades': () => Math.exp(3 * normal()),
    'normal around 0': () => normal(),
    'negative only': () => -0.5 - rand(),
    'ReLU-like, 40% zeros': () => (rand() < 0.4 ? 0 : 1e-3 + rand() * 2),
    'tiny, float32 subnormal-near': () => 1e-38 * (1 + rand()),
  };
  expect(SKETCH_ACCURACY).toBe(0.01);
  for (const [name, next] of Object.entries(streams)) {
    const values = Float32Array.from({ length: 5001 }, next);
    const sketch = new PercentileSketch();
    for (const v of values) sketch.add(v);
    for (const { q, value, lo, hi } of numpyPercentiles(values)) {
      const got = sketch.quantile(q);
      // Each order statistic within 1% relative: so the interpolated value is within 1% of the larger of the two.
      const bound = SKETCH_ACCURACY * Math.max(Math.abs(lo), Math.abs(hi)) * (1 + 1e-9);
      if (Math.abs(got - value) > bound) throw new Error(`${name}, q ${q}: sketch ${got}, numpy ${value}`);
      if (Math.sign(lo) === Math.sign(hi) && value !== 0)
        expect(Math.abs(got - value) / Math.abs(value)).toBeLessThanOrEqual(SKETCH_ACCURACY * (1 + 1e-9));
      if (lo === 0 && hi === 0) expect(got).toBe(0);
    }
    expect(sketch.quantile(0)).toBe(Math.min(...values));
    expect(sketch.quantile(1)).toBe(Math.max(...values));
  }
  const withNan = new PercentileSketch();
  [1, NaN, 2].forEach((v) => withNan.add(v));
  expect(withNan.quantile(0.5)).toBeNaN(); // as numpy's percentile
});

test('sketches of a split stream merge into the sketch of the whole: the same counts, the same percentiles', () => {
  let seed = 3;
  const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const values = Float32Array.from({ length: 4000 }, () =>
    rand() < 0.2 ? 0 : (rand() < 0.3 ? -1 : 1) * Math.exp(6 * rand() - 3),
  );
  const whole = new PercentileSketch();
  values.forEach((v) => whole.add(v));
  const parts = [0, 1, 2, 3].map(() => new PercentileSketch());
  values.forEach((v) => parts[Math.floor(rand() * 4)].add(v));
  const merged = new PercentileSketch();
  // Merged through JSON, as shards' states are, and in another order.
  for (const p of [parts[2], parts[0], parts[3], parts[1]]) merged.merge(JSON.parse(JSON.stringify(p.toJSON())));
  expect(merged.toJSON()).toEqual(whole.toJSON());
  for (const q of [0, 0.01, 0.5, 0.9, 0.99, 1]) expect(merged.quantile(q)).toBe(whole.quantile(q));
});

test('four runs merged equal one run, percentiles included, exact and sketched; against Python hooks', async () => {
  const layers = ['layer1.0.relu#1', 'layer3'];
  const parts = [[0, 4], [1, 5], [2], [3]].map((idx) => idx.filter((i) => i < files.length));
  for (const exactLimit of [1000, 0]) {
    const one = await folderStats(resnet, files, { layers, batch: 4, examples: 2, exactLimit });
    const runs = [];
    for (const idx of parts) {
      const r = await folderStats(
        resnet,
        idx.map((i) => files[i]),
        { layers, batch: 2, examples: 2, exactLimit },
      );
      // File indices into the whole list, as `featscope stats --shard` writes them.
      runs.push(r.state.map((l) => ({ ...l, top: l.top.map((t) => t.map(([f, sc, at]) => [idx[f], sc, at])) })));
    }
    const m = mergeStatsStates(runs as (typeof one.state)[], { exactLimit });
    expect(m.images).toBe(one.images);
    m.layers.forEach((l, i) => {
      const o = one.layers[i];
      expect(l.percentiles).toBe(exactLimit ? 'exact' : 'sketch');
      expect(l.percentiles).toBe(o.percentiles);
      for (const k of ['p50', 'p90', 'p99', 'max', 'silentShare'] as const) expect(l.channel[k]).toEqual(o.channel[k]);
      l.channel.mean.forEach((v, ch) =>
        expect(Math.abs(v - o.channel.mean[ch])).toBeLessThanOrEqual(1e-12 * Math.abs(v)),
      );
      expect(l.examples).toEqual(o.examples);
      expect(l.deadChannels).toEqual(o.deadChannels);
    });
    expect(m.state.map((l) => l.sketch)).toEqual(one.state.map((l) => l.sketch));
    if (exactLimit === 0) {
      // The sketched percentiles against the exact ones of Python's hook outputs: within the stated accuracy.
      const x = await preprocess(files, { size: 224 });
      const oracle = pythonHooks(MODELS.scripted, x, ['layer1.0.relu', 'layer3']);
      for (const l of m.layers) {
        const cap = oracle.captures.get(l.name)!;
        const [n, c, h, w] = cap.shape;
        for (let ch = 0; ch < c; ch++) {
          const means = Array.from({ length: n }, (_, i) => {
            let sum = 0;
            for (let j = 0; j < h * w; j++) sum += cap.data[(i * c + ch) * h * w + j];
            return Math.fround(sum / (h * w));
          }).sort((a, b) => a - b);
          const top = Math.max(Math.abs(means[0]), Math.abs(means[n - 1]));
          [0.5, 0.9, 0.99].forEach((q, k) => {
            const got = [l.channel.p50, l.channel.p90, l.channel.p99][k][ch];
            const at = (n - 1) * q;
            const near = Math.max(Math.abs(means[Math.floor(at)]), Math.abs(means[Math.ceil(at)]));
            // Within the stated accuracy of the two order statistics, plus 1e-5 for the float32 sums of the two backends.
            expect(Math.abs(got - percentileSorted(means, q))).toBeLessThanOrEqual(
              SKETCH_ACCURACY * near + 1e-5 * top + 1e-7,
            );
          });
        }
      }
    }
  }
});

test('a bad file fails alone', async () => {
  const bad = path.join(CACHE, 'not-an-image.jpg');
  fs.writeFileSync(bad, 'nope');
  const s = await folderStats(dead, [files[0], bad, files[1]], { layers: ['relu'], batch: 3 });
  expect(s.images).toBe(2);
  expect(s.failed).toHaveLength(1);
  expect(s.failed[0].source).toBe(bad);
});

test('top images per channel: the files with the highest spatial max and where it lies, against Python hooks', async () => {
  // A corrupt file in the middle fails alone; examples still name positions in the list given.
  const withBad: (string | Buffer)[] = [...files.slice(0, 2), Buffer.from('not an image'), ...files.slice(2)];
  const s = await folderStats(resnet, withBad, { layers: ['layer1.0.relu#1', 'layer3'], batch: 4, examples: 3 });
  expect(s.failed).toHaveLength(1);
  const x = await preprocess(files, { size: 224 });
  const oracle = pythonHooks(MODELS.scripted, x, ['layer1.0.relu', 'layer3']);
  for (const name of ['layer1.0.relu#1', 'layer3']) {
    const cap = oracle.captures.get(name)!;
    const [n, c, h, w] = cap.shape;
    const layer = s.layers.find((l) => l.name === name)!;
    expect(layer.examples).toHaveLength(c);
    for (const ch of [0, 5, 17, c - 1]) {
      const maxes = Array.from({ length: n }, (_, i) =>
        Math.max(...cap.data.subarray((i * c + ch) * h * w, (i * c + ch + 1) * h * w)),
      );
      const expected = maxes
        .map((m, i) => ({ m, i }))
        .sort((a, b) => b.m - a.m || a.i - b.i)
        .slice(0, 3);
      const got = layer.examples[ch];
      // File indices refer to withBad: files after the corrupt one moved up by one.
      expect(got.map((e) => (e.file > 2 ? e.file - 1 : e.file))).toEqual(expected.map((e) => e.i));
      got.forEach((e, j) => {
        expect(Math.abs(e.score - expected[j].m)).toBeLessThan(1e-4 * Math.max(1, Math.abs(expected[j].m)));
        // The reported position holds that maximum in Python's map too.
        const i = expected[j].i;
        expect(e.y).toBeLessThan(h);
        expect(e.x).toBeLessThan(w);
        expect(Math.abs(cap.data[(i * c + ch) * h * w + e.y * w + e.x] - expected[j].m)).toBeLessThan(
          1e-4 * Math.max(1, Math.abs(expected[j].m)),
        );
      });
    }
  }
  const none = await folderStats(resnet, files.slice(0, 2), { layers: ['layer4'], examples: 0 });
  expect(none.layers[0].examples.every((e) => e.length === 0)).toBe(true);
});

test('renderChannelExamples: a row per channel (the strongest by default), its top images in order, a cross at each max', async () => {
  const s = await folderStats(resnet, files, { layers: ['layer3'], examples: 3 });
  const layer = s.layers[0];
  const pic = await renderChannelExamples(resnet, s, files, { layer: 'layer3', channels: 4, tile: 96 });
  const strongest = Array.from({ length: layer.channels }, (_, ch) => ch)
    .sort((a, b) => layer.channel.max[b] - layer.channel.max[a] || a - b)
    .slice(0, 4);
  expect([...new Set(pic.layout.map((t) => t.channel))]).toEqual(strongest);
  for (const ch of strongest) {
    const tiles = pic.layout.filter((t) => t.channel === ch);
    expect(tiles.map((t) => t.file)).toEqual(layer.examples[ch].map((e) => e.file));
    expect(tiles.every((t, i) => i === 0 || t.x > tiles[i - 1].x)).toBe(true);
  }
  const { data, info } = await sharp(pic.png).raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height]).toEqual([pic.width, pic.height]);
  expect([data[0], data[1], data[2]]).toEqual([0xc6, 0x28, 0x28]); // UNTRAINED banner
  // The cross: white at the max's cell centre, dark just beside its arms.
  const [h, w] = [14, 14]; // layer3 of a 224 input
  for (const t of pic.layout) {
    const e = layer.examples[t.channel].find((x) => x.file === t.file)!;
    const cx = Math.round(t.x + ((e.x + 0.5) * t.width) / w);
    const cy = Math.round(t.y + ((e.y + 0.5) * t.height) / h);
    const at = (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
    expect(at(cx, cy)).toEqual([255, 255, 255]);
    expect(at(cx + 5, cy)).toEqual([20, 20, 20]);
  }
  const listed = await renderChannelExamples(resnet, s, files, { layer: 'layer3', channels: [5, 2] });
  expect([...new Set(listed.layout.map((t) => t.channel))]).toEqual([5, 2]);
  await expect(renderChannelExamples(resnet, s, files, { layer: 'layer4' })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/one of the layers of these statistics \(layer3\)/),
  });
  await expect(renderChannelExamples(resnet, s, files, { layer: 'layer3', channels: [256] })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  });
});
