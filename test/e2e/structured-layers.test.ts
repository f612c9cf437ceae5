/**
 * Layers whose output is a tuple, list or dict, named whole or by part, in the commands that check
 * layer names before any work: render (a whole layer stands for its parts) and gradcam (one tensor
 * output only, refused with the parts named before any file is written).
 */
import * as fs from 'fs';
import * as path from 'path';
import { STRUCTURED_MODELS, ensureStructuredModels } from '../support/models';
import { DOG, ensureBuilt, listFiles, runCli, tempDir } from '../support/cli';
import { startViewer } from '../../lib/viewer/server';
import { argmaxMask, detectionsOf, loadModel, preprocess, segmentationLogitsOf } from '../../lib';

beforeAll(() => {
  ensureStructuredModels(['segmentation', 'rcnn']);
  ensureBuilt();
}, 300_000);

const RCNN = STRUCTURED_MODELS.rcnn;

test('render --layers backbone.fpn renders each of its parts; a part alone renders that part', () => {
  const out = tempDir('structured-render');
  try {
    const whole = runCli(['render', DOG, '-m', RCNN, '--layers', 'backbone.fpn', '-o', path.join(out, 'whole')]);
    expect([whole.code, whole.stderr]).toEqual([0, expect.stringContaining('rendered 1 image')]);
    const record = JSON.parse(fs.readFileSync(path.join(out, 'whole', 'dog', 'record.json'), 'utf8'));
    expect(record.layers.map((l: { name: string }) => l.name)).toEqual([
      'backbone.fpn:0',
      'backbone.fpn:1',
      'backbone.fpn:pool',
    ]);
    const one = runCli(['render', DOG, '-m', RCNN, '--layers', 'backbone.fpn:pool', '-o', path.join(out, 'one')]);
    expect(one.code).toBe(0);
    expect(listFiles(path.join(out, 'one', 'dog')).filter((f) => f.endsWith('.png') && f !== 'input.png')).toEqual([
      expect.stringMatching(/^backbone\.fpn_pool-[0-9a-f]+\.png$/),
      expect.stringMatching(/^backbone\.fpn_pool-[0-9a-f]+\.top\.png$/),
    ]);
    const bad = runCli(['render', DOG, '-m', RCNN, '--layers', 'backbone.fpn:p9', '-o', path.join(out, 'bad')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(
      /backbone\.fpn:p9 is not a part of backbone\.fpn's output; its parts: backbone\.fpn:0, backbone\.fpn:1, backbone\.fpn:pool \[CAPTURE_NOT_FOUND\]/,
    );
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 240_000);

test('gradcam: a part or a several-part layer is refused naming the parts, before any file; a one-part layer is its tensor', () => {
  const out = tempDir('structured-gradcam');
  try {
    for (const [layer, message] of [
      ['backbone.fpn:0', /Grad-CAM takes a module, not one part of its output \(backbone\.fpn:0\)/],
      [
        'backbone.fpn',
        /Grad-CAM needs a layer with one tensor output; backbone\.fpn returns 3 \(backbone\.fpn:0, backbone\.fpn:1, backbone\.fpn:pool\)/,
      ],
    ] as const) {
      const dir = path.join(out, layer);
      const r = runCli(['gradcam', DOG, '-m', RCNN, '--layer', layer, '-o', dir]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain('[INVALID_ARGUMENT]');
      expect(fs.existsSync(dir)).toBe(false);
    }
    const zz = runCli(['gradcam', DOG, '-m', RCNN, '--layer', 'backbone.fpn:zz', '-o', path.join(out, 'zz')]);
    expect(zz.stderr).toMatch(
      /backbone\.fpn:zz is not a part of backbone\.fpn's output; its parts: backbone\.fpn:0, backbone\.fpn:1, backbone\.fpn:pool \[CAPTURE_NOT_FOUND\]/,
    );
    // DeepLabV3's backbone returns {out}: one tensor, so Grad-CAM takes the module.
    const seg = runCli(['gradcam', DOG, '-m', STRUCTURED_MODELS.segmentation, '--layer', 'backbone', '-o', out]);
    expect([seg.code, seg.stderr]).toEqual([0, expect.any(String)]);
    expect(fs.existsSync(path.join(out, 'dog.gradcam-backbone.png'))).toBe(true);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 240_000);

test('the viewer lists each part after its layer; a several-part layer is refused naming its parts, a part shows its maps', async () => {
  const viewer = await startViewer({ images: [DOG], models: [RCNN], device: 'cpu', port: 0 });
  try {
    const get = (route: string, q: string) =>
      fetch(`http://${viewer.host}:${viewer.port}/api/${route}?token=${viewer.token}&model=0&${q}`);
    const layers = (await (await get('layers', '')).json()) as Array<{
      name: string;
      shape: number[] | null;
      part?: string;
    }>;
    const names = layers.map((l) => l.name);
    const at = names.indexOf('backbone.fpn');
    expect(names.slice(at, at + 4)).toEqual(['backbone.fpn', 'backbone.fpn:0', 'backbone.fpn:1', 'backbone.fpn:pool']);
    expect(layers[at + 3]).toMatchObject({ part: 'pool', shape: [1, 256, expect.any(Number), expect.any(Number)] });
    const whole = await get('channels', 'image=i0&layer=backbone.fpn');
    expect(whole.status).toBe(400);
    expect(((await whole.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('returns 3 tensors (backbone.fpn:0, backbone.fpn:1, backbone.fpn:pool)'),
    });
    const part = await get('channels', 'image=i0&layer=backbone.fpn:pool');
    expect(part.status).toBe(200);
    expect(((await part.json()) as { shape: number[] }).shape[0]).toBe(256);
  } finally {
    await viewer.close();
  }
}, 240_000);

test("the viewer's predictions: a detector's top boxes by score, a segmentation model's classes by share", async () => {
  const viewer = await startViewer({
    images: [DOG],
    models: [RCNN, STRUCTURED_MODELS.segmentation],
    device: 'cpu',
    port: 0,
  });
  const det = await loadModel(RCNN, { device: 'cpu' });
  const seg = await loadModel(STRUCTURED_MODELS.segmentation, { device: 'cpu' });
  try {
    const predict = async (model: number) =>
      (await (
        await fetch(`http://${viewer.host}:${viewer.port}/api/predict?token=${viewer.token}&model=${model}&image=i0`)
      ).json()) as Array<{ class: number; name: string; probability: number }>;
    const d = detectionsOf((await det.forward(await preprocess(DOG, { model: det }))).value)![0];
    const order = [...d.scores.data.keys()].sort((a, b) => d.scores.data[b] - d.scores.data[a] || a - b).slice(0, 5);
    expect(await predict(0)).toEqual(
      order.map((i) => ({
        class: d.labels.data[i],
        name: det.metadata.classes![d.labels.data[i]],
        probability: d.scores.data[i],
      })),
    );
    const { mask } = argmaxMask(
      segmentationLogitsOf((await seg.forward(await preprocess(DOG, { model: seg }))).value)!,
    );
    const counts = new Map<number, number>();
    for (const k of mask) counts.set(k, (counts.get(k) ?? 0) + 1);
    const shares = await predict(1);
    expect(shares.length).toBe(Math.min(5, counts.size));
    for (const p of shares) expect(p.probability).toBe(counts.get(p.class)! / mask.length);
    expect(shares.map((p) => p.probability)).toEqual([...shares.map((p) => p.probability)].sort((a, b) => b - a));
  } finally {
    det.dispose();
    seg.dispose();
    await viewer.close();
  }
}, 240_000);

test('maximize on a part, and a several-part layer refused naming its parts', () => {
  const out = tempDir('structured-maximize');
  try {
    const part = runCli([
      'maximize',
      '-m',
      RCNN,
      '--layer',
      'backbone.fpn:pool',
      '--channels',
      '0',
      '--steps',
      '2',
      '-o',
      out,
    ]);
    expect([part.code, part.stderr]).toEqual([0, expect.any(String)]);
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.png'))).toEqual([
      expect.stringMatching(/^maximize-backbone\.fpn_pool-[0-9a-f]+-c0\.png$/),
    ]);
    const whole = runCli([
      'maximize',
      '-m',
      RCNN,
      '--layer',
      'backbone.fpn',
      '--steps',
      '2',
      '-o',
      path.join(out, 'w'),
    ]);
    expect(whole.code).not.toBe(0);
    expect(whole.stderr).toMatch(
      /objective layer backbone\.fpn returns 3 tensors \(backbone\.fpn:0, backbone\.fpn:1, backbone\.fpn:pool\); name one part \[INVALID_ARGUMENT\]/,
    );
    // Refused before any file: no output folder.
    expect(fs.existsSync(path.join(out, 'w'))).toBe(false);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 240_000);
