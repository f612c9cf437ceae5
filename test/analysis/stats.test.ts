// Folder statistics: dead channels on a constructed model, exact percentiles, P² past the limit.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, Model } from '../../lib';
import sharp from 'sharp';
import { P2Quantile, folderStats, percentileSorted, renderChannelExamples, renderStatsChart } from '../../lib/analysis';
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

test('past exactLimit, percentiles switch to P² and stay close', async () => {
  // 12 images (the fixtures twice) with exactLimit 5: P² from the 6th image on.
  const s = await folderStats(dead, [...files, ...files], { layers: ['relu'], batch: 5, exactLimit: 5 });
  const relu = s.layers[0];
  expect(relu.percentiles).toBe('p2');
  expect(relu.deadChannels).toEqual([2, 5]);
  expect(relu.channel.p50[7]).toBeCloseTo(1, 6);
});

test('P² estimator against exact percentiles on a long stream', () => {
  let seed = 7;
  const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const values = Array.from({ length: 20000 }, () => -Math.log(1 - rand())); // exponential(1)
  for (const q of [0.5, 0.9, 0.99]) {
    const est = new P2Quantile(
      q,
      values.slice(0, 100).sort((a, b) => a - b),
    );
    for (const v of values.slice(100)) est.add(v);
    const exact = percentileSorted(
      [...values].sort((a, b) => a - b),
      q,
    );
    expect(Math.abs(est.value - exact) / exact).toBeLessThan(0.03);
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
