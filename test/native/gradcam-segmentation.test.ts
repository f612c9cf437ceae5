// Grad-CAM with a segmentation target (the class logit summed over its predicted mask) on DeepLabV3
// (MobileNetV3-Large, untrained, 128 px input), against Python autograd on the eager twin with the
// file's weights (test/support/seg_gradcam_oracle.py).
import * as fs from 'fs';
import * as path from 'path';
import { execFileSync } from 'child_process';
import { loadModel, type Model } from '../../lib';
import { gradCamOverlays } from '../../lib/analysis/gradcam';
import { normalisationOf } from '../../lib/analysis/common';
import { preprocess } from '../../lib/preprocess';
import { argmaxMask, segmentationLogitsOf } from '../../lib/structured';
import {
  MODELS,
  PYTHON,
  ROOT,
  STRUCTURED_MODELS,
  ensureStructuredModels,
  ensureTestModels,
  maxAbsDiff,
  syntheticInput,
} from '../support/models';
import { ensureBuilt, listFiles, runCli, tempDir } from '../support/cli';
import { readF32, runOracle, withTempDir, writeF32 } from '../support/oracle';

const MODEL = STRUCTURED_MODELS.segmentation;

function pythonSegGradCam(input: { data: Float32Array; shape: number[] }, layer: string, classes: number[]) {
  return withTempDir('seg-gradcam-', (dir) => {
    const inPath = path.join(dir, 'in.f32');
    const outPath = path.join(dir, 'out.f32');
    writeF32(inPath, input.data);
    runOracle('seg_gradcam_oracle.py', [MODEL, inPath, input.shape.join(','), layer, outPath, ...classes.map(String)]);
    const all = readF32(outPath);
    const n = input.shape[0];
    const camLen = all.length - 3 * n;
    return {
      cam: all.subarray(0, camLen),
      classes: Array.from(all.subarray(camLen, camLen + n)),
      probabilities: all.subarray(camLen + n, camLen + 2 * n),
      maskPixels: Array.from(all.subarray(camLen + 2 * n)),
    };
  });
}

let model: Model;
beforeAll(async () => {
  ensureStructuredModels(['segmentation']);
  model = await loadModel(MODEL, { device: 'cpu' });
}, 300_000);
afterAll(() => model?.dispose());

const target = { kind: 'segmentation' } as const;

function expectOracle(res: Awaited<ReturnType<Model['gradcam']>>, py: ReturnType<typeof pythonSegGradCam>, n: number) {
  expect(res.classes).toEqual(py.classes);
  expect(res.maskPixels).toEqual(py.maskPixels);
  expect(res.data.length).toBe(py.cam.length);
  expect(res.shape[0]).toBe(n);
  const scale = Math.max(...Array.from(py.cam));
  // A CAM with nothing in it would pass trivially.
  expect(scale).toBeGreaterThan(0);
  const rel = maxAbsDiff(res.data, py.cam) / scale;
  expect(rel).toBeLessThanOrEqual(1e-5);
  expect(maxAbsDiff(Float32Array.from(res.probabilities), py.probabilities)).toBeLessThanOrEqual(1e-5);
  return rel;
}

// The untrained head's layers give CAMs with structure (the backbone's gradients all but vanish).
test('default class (most pixels per image), batch 2, the head 3x3 conv: equals Python autograd to 1e-5 rel', async () => {
  const x = syntheticInput(2, 128, 128, 21);
  const res = await model.gradcam(x, { layer: 'classifier.1', target });
  const py = pythonSegGradCam(x, 'classifier.1', []);
  const rel = expectOracle(res, py, 2);
  console.log(`segmentation Grad-CAM, default class: max rel diff ${rel.toExponential(2)}`);
  expect(res.maskPixels!.every((p) => p > 0)).toBe(true);
});

test('a given class that covers part of the image, the head ReLU: equals Python autograd to 1e-5 rel', async () => {
  const x = syntheticInput(1, 128, 128, 22);
  // The second most frequent predicted class: its mask is a part of the image, not all of it.
  const { mask } = argmaxMask(segmentationLogitsOf((await model.forward(x)).value)!);
  const counts = new Map<number, number>();
  for (const c of mask) counts.set(c, (counts.get(c) ?? 0) + 1);
  const ranked = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  expect(ranked.length).toBeGreaterThan(1);
  const cls = ranked[1][0];
  const res = await model.gradcam(x, {
    layer: 'classifier.3',
    classes: cls,
    target: { kind: 'segmentation', output: 'out' },
  });
  const py = pythonSegGradCam(x, 'classifier.3', [cls]);
  const rel = expectOracle(res, py, 1);
  console.log(`segmentation Grad-CAM, class ${cls}: max rel diff ${rel.toExponential(2)}`);
  expect(res.maskPixels).toEqual([ranked[1][1]]);
});

test('a class predicted nowhere: an empty mask, a zero CAM and probability 0', async () => {
  const x = syntheticInput(1, 128, 128, 22);
  const { mask } = argmaxMask(segmentationLogitsOf((await model.forward(x)).value)!);
  const absent = [...Array(21).keys()].find((c) => !mask.includes(c))!;
  expect(absent).toBeDefined();
  const res = await model.gradcam(x, { layer: 'classifier.0', classes: [absent], target });
  expect(res.maskPixels).toEqual([0]);
  expect(res.probabilities).toEqual([0]);
  expect(res.data.every((v) => v === 0)).toBe(true);
});

test('bad class, missing output entry, a classifier, a bad target: coded errors', async () => {
  const x = syntheticInput(1, 128, 128, 23);
  await expect(model.gradcam(x, { layer: 'classifier.0', classes: [21], target })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/class 21 is out of range 0\.\.20/),
  });
  await expect(
    model.gradcam(x, { layer: 'classifier.0', target: { kind: 'segmentation', output: 'logits' } }),
  ).rejects.toMatchObject({ code: 'MODEL_OUTPUT_NOT_LOGITS', message: expect.stringMatching(/'logits'.*has out/) });
  // Without a target the class path is unchanged: a segmentation model's dict is not [N, classes].
  await expect(model.gradcam(x, { layer: 'classifier.0' })).rejects.toMatchObject({ code: 'MODEL_OUTPUT_NOT_LOGITS' });
  await expect(
    // @ts-expect-error not a target kind
    model.gradcam(x, { layer: 'classifier.0', target: { kind: 'keypoints' } }),
  ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/target\.kind/) });
  ensureTestModels();
  const classifier = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    await expect(classifier.gradcam(syntheticInput(1, 64, 64, 1), { layer: 'layer4', target })).rejects.toMatchObject({
      code: 'MODEL_OUTPUT_NOT_LOGITS',
      message: expect.stringMatching(/a classifier/),
    });
  } finally {
    classifier.dispose();
  }
});

test('gradCamOverlays on a segmentation model uses the mask target and lists classes by area', async () => {
  const photo = path.join(ROOT, 'test', 'fixtures', 'images', 'camera.png');
  const [r] = await gradCamOverlays(model, [photo], { layer: 'classifier.1' });
  const norm = normalisationOf(model);
  const x = await preprocess([photo], { resize: 'squash', size: norm.size, mean: norm.mean, std: norm.std });
  const cam = await model.gradcam(x, { layer: 'classifier.1', target });
  expect(r.target.class).toBe(cam.classes[0]);
  expect(r.predictions[0].class).toBe(cam.classes[0]);
  expect(r.predictions[0].probability).toBeCloseTo(cam.maskPixels![0] / (128 * 128), 6);
  expect(r.predictions.reduce((s, p) => s + p.probability, 0)).toBeLessThanOrEqual(1 + 1e-9);
  expect(r.rawMax).toBeCloseTo(Math.max(...Array.from(cam.data)), 5);
  expect(r.maskPixels).toBe(cam.maskPixels![0]);
});

test('featscope gradcam on a segmentation model: the mask size in gradcam.json; classifier-only options refused with nothing written', () => {
  ensureBuilt();
  const photo = path.join(ROOT, 'test', 'fixtures', 'images', 'camera.png');
  const out = tempDir('seg-gradcam-cli-');
  try {
    const ok = runCli(['gradcam', photo, '-m', MODEL, '--layer', 'classifier.1', '--json', '-o', out]);
    expect([ok.code, ok.stderr]).toEqual([0, expect.any(String)]);
    const [record] = JSON.parse(fs.readFileSync(path.join(out, 'gradcam.json'), 'utf8')).images;
    expect(record.maskPixels).toBeGreaterThan(0);
    expect(record.maskPixels).toBeLessThanOrEqual(128 * 128);
    const refusedOut = path.join(out, 'refused');
    const bad = runCli([
      'gradcam',
      photo,
      '-m',
      MODEL,
      '--layer',
      'classifier.1',
      '--saliency',
      'gradient',
      '--flow',
      '-o',
      refusedOut,
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /--saliency, --flow need a classifier's \[N, classes\] logits; .* is a segmentation model.*\[USAGE\]/,
    );
    // featscope.json says `task: segmentation`, so the refusal comes before any work: no folder.
    expect(fs.existsSync(refusedOut)).toBe(false);

    // The same model saved without featscope.json shows its kind only in its output: refused after
    // the first batch's forward, still with no picture written.
    const bare = path.join(out, 'bare.pt');
    execFileSync(PYTHON, [
      '-c',
      'import sys, torch; torch.jit.save(torch.jit.load(sys.argv[1]), sys.argv[2])',
      MODEL,
      bare,
    ]);
    const bareOut = path.join(out, 'bare-refused');
    const late = runCli([
      'gradcam',
      photo,
      '-m',
      bare,
      '--layer',
      'classifier.1',
      '--metrics',
      'deletion',
      '-o',
      bareOut,
    ]);
    expect(late.code).toBe(2);
    expect(late.stderr).toMatch(
      /--metrics need a classifier's \[N, classes\] logits; .*bare\.pt is a segmentation model/,
    );
    expect(listFiles(bareOut).filter((f) => f.endsWith('.png'))).toEqual([]);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
