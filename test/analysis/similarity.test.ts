// Layer similarity (linear CKA on channel means) against numpy on Python hooks' outputs.
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { layerSimilarity, linearCka, renderSimilarity } from '../../lib/analysis';
import { colormapRGB } from '../../lib/render/colormaps';
import { preprocess } from '../../lib/preprocess';
import { MODELS, ROOT, cpuModelForTests } from '../support/models';
import { runOracle, withTempDir, writeF32 } from '../support/oracle';

const IMAGES = path.join(ROOT, 'test', 'fixtures', 'images');
const files = fs
  .readdirSync(IMAGES)
  .sort()
  .map((f) => path.join(IMAGES, f));
const resnet = cpuModelForTests();
const traced = cpuModelForTests(() => MODELS.traced);
const mobilenet = cpuModelForTests(() => MODELS.mobilenet);

async function pythonCka(a: [string, string[]], b?: [string, string[]]): Promise<number[][]> {
  const x = await preprocess(files, { size: 224 });
  return withTempDir('cka-', (dir) => {
    writeF32(path.join(dir, 'in.f32'), x.data);
    const args = [path.join(dir, 'in.f32'), x.shape.join(','), path.join(dir, 'out.json'), a[0], a[1].join(',')];
    if (b) args.push(b[0], b[1].join(','));
    runOracle('cka_oracle.py', args);
    return JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8')).cka;
  });
}

function expectMatrix(ours: number[][], theirs: number[][]): void {
  expect(ours.length).toBe(theirs.length);
  ours.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - theirs[i][j])).toBeLessThan(1e-4)));
}

test('one model against itself equals numpy CKA; the diagonal is 1', async () => {
  const layers = ['layer1', 'layer2', 'layer3', 'layer4', 'avgpool'];
  const sim = await layerSimilarity(resnet(), files, { layers, batch: 4 });
  expect(sim.images).toBe(files.length);
  expect([sim.rows, sim.columns]).toEqual([layers, layers]);
  expectMatrix(sim.cka, await pythonCka([MODELS.scripted, layers]));
  sim.cka.forEach((row, i) => expect(row[i]).toBeCloseTo(1, 6));
});

test('two models: the traced twin matches layer for layer; MobileNet against ResNet equals numpy', async () => {
  const same = await layerSimilarity(resnet(), files, {
    layers: ['layer2', 'layer4'],
    other: { model: traced(), layers: ['layer2', 'layer4'] },
  });
  expect(same.cka[0][0]).toBeCloseTo(1, 5);
  expect(same.cka[1][1]).toBeCloseTo(1, 5);
  const rows = ['layer2', 'layer4'];
  // Early blocks only: in the untrained MobileNetV2 the channel means of deeper blocks hardly vary
  // across images (variance 7e-10 at features.10, 7e-17 at features.18), so their CKA is float
  // rounding noise that only bit-identical kernels reproduce (the optimised graph moved it by
  // 2e-4 and 0.07). Here the variance is 1.7e-7 and more.
  const cols = ['features.1', 'features.3', 'features.6'];
  const cross = await layerSimilarity(resnet(), files, { layers: rows, other: { model: mobilenet(), layers: cols } });
  expect(cross.columns).toEqual(cols);
  expectMatrix(cross.cka, await pythonCka([MODELS.scripted, rows], [MODELS.mobilenet, cols]));
});

test('linearCka: invariant to rotation and scale, low for unrelated features', () => {
  let s = 7;
  const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const n = 40;
  const p = 5;
  const x = Float32Array.from({ length: n * p }, rnd);
  // A rotation in the plane of features 0 and 1, a permutation and a scale.
  const y = new Float32Array(n * p);
  const [c, sn] = [Math.cos(0.7), Math.sin(0.7)];
  for (let i = 0; i < n; i++) {
    const r = x.subarray(i * p, (i + 1) * p);
    y.set([3 * (c * r[0] - sn * r[1]), 3 * (sn * r[0] + c * r[1]), 3 * r[4], 3 * r[2], 3 * r[3]], i * p);
  }
  expect(linearCka(x, p, y, p, n)).toBeCloseTo(1, 5);
  const z = Float32Array.from({ length: n * 3 }, rnd);
  expect(linearCka(x, p, z, 3, n)).toBeLessThan(0.5);
});

test('the heatmap: a cell per pair, coloured by its value, under the weights banner', async () => {
  const sim = await layerSimilarity(resnet(), files.slice(0, 4), { layers: ['layer1', 'layer4'] });
  const pic = await renderSimilarity(resnet(), sim);
  const { data, info } = await sharp(pic.png).raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height]).toEqual([pic.width, pic.height]);
  expect([data[0], data[1], data[2]]).toEqual([0xc6, 0x28, 0x28]);
  await expect(layerSimilarity(resnet(), files.slice(0, 1), { layers: ['layer1'] })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/at least two images/),
  });
  await expect(
    layerSimilarity(resnet(), files, { layers: ['layer1'], other: { layers: ['x'] } as never }),
  ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  // Cell (0, 1) (layer1 against layer4): its top-left corner area has the viridis colour of its value.
  const expected = colormapRGB('viridis', sim.cka[0][1]);
  const hits = [];
  for (let y = 0; y < info.height; y++)
    for (let x = 0; x < info.width; x++) {
      const o = (y * info.width + x) * 3;
      if (data[o] === expected[0] && data[o + 1] === expected[1] && data[o + 2] === expected[2]) hits.push(1);
    }
  expect(hits.length).toBeGreaterThan(1500); // most of a 54 x 54 cell
});
