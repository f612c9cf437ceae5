// Grad-CAM with a detection target (the score of each image's k-th detection, summed over the
// batch) on RetinaNet (ResNet-50 FPN, untrained, 128 px), against Python autograd on the eager twin
// with the file's weights (test/support/det_gradcam_oracle.py). Faster R-CNN's scores reach its
// backbone only through featscope's roi_align, which has no backward: a coded refusal naming EigenCAM.
import * as fs from 'fs';
import * as path from 'path';
import {
  detectionOrder,
  detectionsOf,
  getNumThreads,
  gradCamOverlays,
  loadModel,
  preprocess,
  setNumThreads,
  type Model,
} from '../../lib';
import {
  MODELS,
  ROOT,
  STRUCTURED_MODELS,
  ensureStructuredModels,
  ensureTestModels,
  maxAbsDiff,
} from '../support/models';
import { ensureBuilt, runCli, tempDir } from '../support/cli';
import { readF32, runOracle, withTempDir, writeF32 } from '../support/oracle';

const MODEL = STRUCTURED_MODELS.detection;

/** Images in [0, 1], as detection models take them (they normalise themselves). */
function photoLike(n: number, h: number, w: number, seed: number) {
  const data = new Float32Array(n * 3 * h * w);
  for (let i = 0; i < data.length; i++) data[i] = 0.5 + 0.45 * Math.sin(i * 0.0137 * seed + seed);
  return { data, shape: [n, 3, h, w] };
}

function pythonDetGradCam(input: { data: Float32Array; shape: number[] }, layer: string, box: number) {
  return withTempDir('det-gradcam-', (dir) => {
    const inPath = path.join(dir, 'in.f32');
    const outPath = path.join(dir, 'out.f32');
    writeF32(inPath, input.data);
    runOracle('det_gradcam_oracle.py', [MODEL, inPath, input.shape.join(','), layer, String(box), outPath]);
    const all = readF32(outPath);
    const n = input.shape[0];
    const camLen = all.length - 6 * n;
    return {
      cam: all.subarray(0, camLen),
      labels: Array.from(all.subarray(camLen, camLen + n)),
      scores: all.subarray(camLen + n, camLen + 2 * n),
      boxes: all.subarray(camLen + 2 * n),
    };
  });
}

let model: Model;
// Near-tied scores of an untrained detector: one intra-op thread on both sides, as structured.test.ts.
let threads = 1;
beforeAll(async () => {
  ensureStructuredModels(['detection']);
  threads = getNumThreads();
  setNumThreads(1);
  model = await loadModel(MODEL, { device: 'cpu' });
}, 300_000);
afterAll(() => {
  model?.dispose();
  setNumThreads(threads);
});

test.each([
  ['the top detection, batch 2, layer3', 'backbone.body.layer3', 0, 2],
  ['the third detection, layer2', 'backbone.body.layer2', 2, 1],
])(
  '%s: equals Python autograd to 1e-4 of its maximum',
  async (_what, layer, box, n) => {
    const x = photoLike(n, 112, 128, 3 + box);
    const res = await model.gradcam(x, { layer, target: { kind: 'detection', box } });
    const py = pythonDetGradCam(x, layer, box);
    expect(res.classes).toEqual(py.labels);
    expect(maxAbsDiff(Float32Array.from(res.probabilities), py.scores)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(Float32Array.from(res.boxes!.flat()), py.boxes)).toBeLessThanOrEqual(1e-3);
    expect(res.shape[0]).toBe(n);
    expect(res.data.length).toBe(py.cam.length);
    const scale = Math.max(...Array.from(py.cam));
    expect(scale).toBeGreaterThan(0); // a CAM with nothing in it would pass trivially
    const rel = maxAbsDiff(res.data, py.cam) / scale;
    console.log(`detection Grad-CAM (${layer}, box ${box}): max rel diff ${rel.toExponential(2)}`);
    expect(rel).toBeLessThanOrEqual(1e-4);
  },
  120_000,
);

test('a box past the detections, classes with a detection target, a bad box, a classifier: coded errors; the model stays usable', async () => {
  const x = photoLike(1, 112, 128, 5);
  await expect(
    model.gradcam(x, { layer: 'backbone.body.layer3', target: { kind: 'detection', box: 100_000 } }),
  ).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/image 0 has \d+ detection\(s\), so box 100000 .* does not exist/),
  });
  await expect(
    model.gradcam(x, { layer: 'backbone.body.layer3', classes: 3, target: { kind: 'detection' } }),
  ).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/not a class: leave out classes/),
  });
  await expect(
    model.gradcam(x, { layer: 'backbone.body.layer3', target: { kind: 'detection', box: -1 } }),
  ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/target\.box/) });
  const ok = await model.gradcam(x, { layer: 'backbone.body.layer3', target: { kind: 'detection' } });
  expect(ok.boxes).toHaveLength(1);
  ensureTestModels();
  const classifier = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    await expect(
      classifier.gradcam(photoLike(1, 64, 64, 1), { layer: 'layer4', target: { kind: 'detection' } }),
    ).rejects.toMatchObject({
      code: 'MODEL_OUTPUT_NOT_LOGITS',
      message: expect.stringMatching(/boxes, labels, scores/),
    });
  } finally {
    classifier.dispose();
  }
}, 120_000);

test('Faster R-CNN: its scores reach the backbone only through roi_align (no backward here): refused naming EigenCAM', async () => {
  ensureStructuredModels(['rcnn']);
  const rcnn = await loadModel(STRUCTURED_MODELS.rcnn, { device: 'cpu' });
  try {
    const x = photoLike(1, 112, 128, 6);
    await expect(rcnn.gradcam(x, { layer: 'backbone.body.13', target: { kind: 'detection' } })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/do not depend on backbone\.body\.13 .*roi_align.*EigenCAM/),
    });
    expect((await rcnn.capture(x, ['backbone.body.13']))[0].shape).toEqual([1, 160, 4, 4]);
  } finally {
    rcnn.dispose();
  }
}, 300_000);

test('gradCamOverlays on a detection model: the top box is the target, drawn, and the predictions are the top detections', async () => {
  const photo = path.join(ROOT, 'test', 'fixtures', 'images', 'dog.jpg');
  const [r] = await gradCamOverlays(model, [photo], { layer: 'backbone.body.layer3', top: 3 });
  const x = await preprocess([photo], { resize: 'squash', size: 128, mean: [0, 0, 0], std: [1, 1, 1] });
  const cam = await model.gradcam(x, { layer: 'backbone.body.layer3', target: { kind: 'detection' } });
  const d = detectionsOf((await model.forward(x)).value)![0];
  const order = detectionOrder(d).slice(0, 3);
  expect(r.box).toEqual(cam.boxes![0]);
  expect(r.target).toMatchObject({ class: cam.classes[0], probability: cam.probabilities[0] });
  expect(r.predictions.map((p) => [p.class, p.probability])).toEqual(
    order.map((k) => [d.labels.data[k], d.scores.data[k]]),
  );
  expect(r.predictions[0].probability).toBe(r.target.probability);
  expect(r.rawMax).toBeCloseTo(Math.max(...Array.from(cam.data)), 5);
}, 60_000);

test('featscope gradcam on a detection model: the box in gradcam.json; --saliency and --class refused with nothing written', () => {
  ensureBuilt();
  const photo = path.join(ROOT, 'test', 'fixtures', 'images', 'camera.png');
  const out = tempDir('det-gradcam-cli-');
  try {
    const ok = runCli(['gradcam', photo, '-m', MODEL, '--layer', 'backbone.body.layer3', '--json', '-o', out]);
    expect([ok.code, ok.stderr]).toEqual([0, expect.any(String)]);
    const [record] = JSON.parse(fs.readFileSync(path.join(out, 'gradcam.json'), 'utf8')).images;
    expect(record.box).toHaveLength(4);
    expect(record.target.probability).toBe(record.predictions[0].probability);
    for (const [args, message] of [
      [['--saliency', 'gradient'], /--saliency need a classifier's .* is a detection model/],
      [['--class', '3'], /--class picks a classifier's .* is a detection model/],
    ] as const) {
      const refusedOut = path.join(out, 'refused');
      const bad = runCli(['gradcam', photo, '-m', MODEL, '--layer', 'backbone.body.layer3', ...args, '-o', refusedOut]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(message);
      expect(fs.existsSync(refusedOut)).toBe(false);
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 120_000);
