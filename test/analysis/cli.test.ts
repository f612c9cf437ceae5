// The analysis subcommands end to end, in process: files written, JSON contents, usage errors.
import * as fs from 'fs';
import * as path from 'path';
import { main } from '../../lib/cli/main';
import { CACHE, ensureTestModels, MODELS, ROOT } from '../support/models';

const IMAGES = path.join(ROOT, 'test', 'fixtures', 'images');
let out: string;
beforeAll(() => {
  ensureTestModels();
  out = fs.mkdtempSync(path.join(CACHE, 'analysis-cli-'));
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
});
afterAll(() => {
  fs.rmSync(out, { recursive: true, force: true });
  jest.restoreAllMocks();
});

const common = () => ['--model', MODELS.scripted, '--device', 'cpu'];

test('weights: pictures, JSON and a report with the UNTRAINED banner', async () => {
  const dir = path.join(out, 'w');
  expect(await main(['weights', ...common(), '--report', '-o', dir])).toBe(0);
  for (const f of ['weights.png', 'first-conv-filters.png', 'weights.json', 'report.html'])
    expect(fs.existsSync(path.join(dir, f))).toBe(true);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'weights.json'), 'utf8'));
  expect(json.model.trained).toBe(false);
  expect(json.tensors).toHaveLength(62);
  expect(fs.readFileSync(path.join(dir, 'report.html'), 'utf8')).toContain('UNTRAINED WEIGHTS');
});

test('gradcam, attack and stats write their files', async () => {
  const dog = path.join(IMAGES, 'dog.jpg');
  expect(await main(['gradcam', dog, ...common(), '--layer', 'layer4', '-o', path.join(out, 'g')])).toBe(0);
  expect(fs.existsSync(path.join(out, 'g', 'dog.gradcam-layer4.png'))).toBe(true);
  expect(
    await main([
      'attack',
      dog,
      ...common(),
      '--method',
      'fgsm',
      '--epsilon',
      '2/255',
      '-l',
      'layer1,layer2,layer3,layer4,fc',
      '-o',
      path.join(out, 'a'),
    ]),
  ).toBe(0);
  const attack = JSON.parse(fs.readFileSync(path.join(out, 'a', 'attack.json'), 'utf8'));
  expect(attack.images[0].layers).toHaveLength(5);
  expect(attack.options.epsilon).toBeCloseTo(2 / 255, 10);
  expect(
    await main(['stats', IMAGES, ...common(), '--layers', 'relu,layer4', '--batch', '4', '-o', path.join(out, 's')]),
  ).toBe(0);
  const stats = JSON.parse(fs.readFileSync(path.join(out, 's', 'stats.json'), 'utf8'));
  expect(stats.images).toBe(fs.readdirSync(IMAGES).length);
  expect(stats.layers.map((l: { name: string }) => l.name)).toEqual(['relu', 'layer4']);
  // Top images per channel in the JSON, and one examples picture per layer.
  const [source, score, y, x] = stats.layers[1].topImages[0][0];
  expect(fs.existsSync(source)).toBe(true);
  expect(score).toBeGreaterThanOrEqual(stats.layers[1].topImages[0][1]?.[1] ?? -Infinity);
  expect([y, x].every((v: number) => Number.isInteger(v) && v >= 0 && v < 7)).toBe(true);
  expect(stats.layers[1].examplesPicture).toBe('examples-layer4.png');
  expect(fs.existsSync(path.join(out, 's', 'examples-layer4.png'))).toBe(true);
});

test('gradcam --saliency ig adds a saliency picture and its completeness to the JSON', async () => {
  const dir = path.join(out, 'sal');
  expect(
    await main([
      'gradcam',
      path.join(IMAGES, 'dog.jpg'),
      ...common(),
      '--saliency',
      'ig',
      '--samples',
      '8',
      '--class',
      '207',
      '-o',
      dir,
    ]),
  ).toBe(0);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'gradcam.json'), 'utf8'));
  const rec = json.images[0];
  expect(rec.saliency).toMatchObject({ file: 'dog.saliency-ig.png', method: 'integrated-gradients' });
  expect(rec.saliency.clipValue).toBeGreaterThan(0);
  expect(Number.isFinite(rec.saliency.completeness.attributionSum)).toBe(true);
  expect(json.options).toMatchObject({ saliency: 'integrated-gradients', samples: 8, classes: [207] });
  expect(fs.existsSync(path.join(dir, 'dog.saliency-ig.png'))).toBe(true);
});

test('maximize writes a picture per channel and the objective per step', async () => {
  const dir = path.join(out, 'max');
  expect(
    await main([
      'maximize',
      ...common(),
      '--layer',
      'layer2',
      '--channels',
      '3,7',
      '--steps',
      '6',
      '--size',
      '48',
      '-o',
      dir,
    ]),
  ).toBe(0);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'maximize.json'), 'utf8'));
  expect(json.results.map((r: { file: string }) => r.file)).toEqual([
    'maximize-layer2-c3.png',
    'maximize-layer2-c7.png',
  ]);
  for (const r of json.results) {
    expect(r.objective).toHaveLength(7);
    expect(r.objective[6]).toBeGreaterThan(r.objective[0]);
    expect(fs.existsSync(path.join(dir, r.file))).toBe(true);
  }
});

test('similarity: a model against another, matrix in the JSON and a picture', async () => {
  const dir = path.join(out, 'sim');
  expect(
    await main([
      'similarity',
      IMAGES,
      ...common(),
      '--layers',
      'layer2,layer4',
      '--other-model',
      MODELS.traced,
      '-o',
      dir,
    ]),
  ).toBe(0);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'similarity.json'), 'utf8'));
  expect(json.rows).toEqual(['layer2', 'layer4']);
  expect(json.columns).toEqual(['layer2', 'layer4']);
  expect(json.cka[0][0]).toBeCloseTo(1, 4);
  expect(json.otherModel.path).toBe(MODELS.traced);
  expect(fs.existsSync(path.join(dir, 'similarity.png'))).toBe(true);
});

test('usage errors', async () => {
  await expect(main(['similarity', IMAGES, ...common(), '--other-layers', 'layer1'])).rejects.toMatchObject({
    code: 'USAGE',
    message: expect.stringMatching(/--other-model/),
  });
  await expect(main(['maximize', ...common()])).rejects.toMatchObject({
    code: 'USAGE',
    message: expect.stringMatching(/--layer/),
  });
  await expect(main(['maximize', ...common(), '--layer', 'layer2', '--channels', 'a,b'])).rejects.toMatchObject({
    code: 'USAGE',
  });
  await expect(main(['gradcam', 'x.jpg', ...common(), '--saliency', 'lime'])).rejects.toMatchObject({
    code: 'USAGE',
    message: expect.stringMatching(/gradient, smoothgrad or ig/),
  });
  await expect(main(['attack', 'x.jpg', ...common(), '--epsilon', '8'])).rejects.toMatchObject({
    code: 'USAGE',
    message: expect.stringMatching(/--epsilon/),
  });
  await expect(main(['attack', 'x.jpg', ...common(), '--method', 'cw'])).rejects.toMatchObject({ code: 'USAGE' });
  await expect(main(['gradcam', 'x.jpg', ...common(), '--class', 'dog'])).rejects.toMatchObject({ code: 'USAGE' });
  await expect(main(['stats', ...common()])).rejects.toMatchObject({ code: 'USAGE' });
});
