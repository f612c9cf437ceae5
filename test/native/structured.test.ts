// Segmentation and detection models: captures of modules that return dicts and tuples (named
// parts), typed structured outputs, and List[Tensor] inputs, against Python forward hooks on the
// eager torchvision twin (same state_dict, same input). Untrained models (random init).
import * as path from 'path';
import sharp from 'sharp';
import {
  argmaxMask,
  paletteColour,
  predictionOverlay,
  preprocess,
  loadModel,
  Model,
  getNumThreads,
  setNumThreads,
  detectionsOf,
  segmentationLogitsOf,
  isTensorValue,
  type OutputValue,
} from '../../lib';
import { MASK_THRESHOLD, tintMask } from '../../lib/analysis/predictions';
import {
  ROOT,
  STRUCTURED_MODELS,
  ensureStructuredModels,
  maxAbsDiff,
  structuredOracle,
  syntheticInput,
} from '../support/models';

beforeAll(() => ensureStructuredModels(), 300_000);

/** Flattens a typed output as the oracle names it: `out:key:0:...`. */
function flatten(name: string, v: OutputValue, out: Map<string, { shape: number[]; data: Float32Array }>) {
  if (isTensorValue(v)) out.set(name, v);
  else if (Array.isArray(v)) v.forEach((e, i) => flatten(`${name}:${i}`, e, out));
  else if (v && typeof v === 'object') for (const [k, e] of Object.entries(v)) flatten(`${name}:${k}`, e, out);
}

function expectClose(
  name: string,
  got: { shape: number[]; data: Float32Array },
  want: { shape: number[]; data: Float32Array } | undefined,
  tol: number,
) {
  expect({ name, shape: got.shape }).toEqual({ name, shape: want?.shape });
  const d = maxAbsDiff(got.data, want!.data);
  // `tol` absolute, or 1e-5 of the tensor's largest magnitude, whichever is larger: ResNet-50's
  // untrained body reaches ~300, where float32 sums in another order (libtorch's thread count is
  // process-wide, and jest reuses a worker across files) differ by ~1e-4 (1.8e-4 at 138 was seen).
  let scale = 0;
  for (const v of want!.data) scale = Math.max(scale, Math.abs(v));
  const bound = Math.max(tol, 1e-5 * scale);
  if (!(d <= bound)) throw new Error(`${name}: max abs diff ${d} > ${bound} (largest |value| ${scale})`);
}

describe('segmentation: DeepLabV3 (MobileNetV3-Large backbone)', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(STRUCTURED_MODELS.segmentation, { device: 'cpu' });
  });
  afterAll(() => model.dispose());

  test('the backbone dict is captured as named parts; captures and the {out} output equal Python', async () => {
    const input = syntheticInput(2, 96, 128, 3);
    const layers = ['backbone', 'backbone.4', 'classifier'];
    const oracle = structuredOracle(STRUCTURED_MODELS.segmentation, input, layers);
    const res = await model.forward(input, { layers, optimize: false });
    expect(res.captures.map((c) => [c.name, c.layer, c.part])).toEqual([
      ['backbone.4', 'backbone.4', undefined],
      ['backbone:out', 'backbone', 'out'],
      ['classifier', 'classifier', undefined],
    ]);
    for (const c of res.captures) expectClose(c.name, c, oracle.get(c.name), 1e-4);
    expect(res.output).toBeNull();
    const logits = segmentationLogitsOf(res.value)!;
    expect(logits.shape).toEqual([2, 21, 96, 128]);
    expect(logits.dtype).toBe('float32');
    const flat = new Map<string, { shape: number[]; data: Float32Array }>();
    flatten('out', res.value, flat);
    expect([...flat.keys()]).toEqual([...oracle.keys()].filter((k) => k.startsWith('out')));
    for (const [k, v] of flat) expectClose(k, v, oracle.get(k), 1e-4);
  });

  test("backward with an objective on a part (backbone:out) or a one-part module: the capture's mean, and its input gradient", async () => {
    const x = syntheticInput(1, 64, 64, 8);
    const [part] = await model.capture(x, ['backbone:out'], { optimize: false });
    const [, c, h, w] = part.shape;
    let mean = 0;
    for (let i = 3 * h * w; i < 4 * h * w; i++) mean += part.data[i];
    mean /= h * w;
    const r = await model.backward(x, { objective: { layer: 'backbone:out', channel: 3 }, inputGrad: true });
    expect(c).toBeGreaterThan(3);
    expect(Math.abs(r.objective![0] - mean)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(mean)));
    const whole = await model.backward(x, { objective: { layer: 'backbone', channel: 3 }, inputGrad: true });
    expect(whole.objective![0]).toBe(r.objective![0]);
    expect(maxAbsDiff(whole.inputGrad!, r.inputGrad!)).toBe(0);
    // The untrained backbone's input gradient is tiny (about 1e-9 in norm) but there.
    expect(r.inputGrad!.some((v) => v !== 0)).toBe(true);
    await expect(model.backward(x, { objective: { layer: 'backbone:zz' } })).rejects.toMatchObject({
      code: 'CAPTURE_NOT_FOUND',
      message: expect.stringContaining("backbone:zz is not a part of backbone's output; its parts: backbone:out"),
    });
  });

  test('the optimised graph gives the same parts', async () => {
    const input = syntheticInput(1, 96, 128, 4);
    const exact = await model.capture(input, ['backbone'], { optimize: false });
    const fast = await model.capture(input, ['backbone'], { optimize: true });
    expect(fast.map((c) => c.name)).toEqual(['backbone:out']);
    expect(maxAbsDiff(fast[0].data, exact[0].data)).toBeLessThanOrEqual(1e-3);
  });
});

/**
 * One intra-op thread for the enclosing describe's tests, restored after them. An untrained
 * detector scores every anchor about 1/91, so thousands of candidates lie within float32 noise of
 * each other: a sum in another order (2 threads instead of 1) reranks them, and the k-th box is
 * another box. The oracle runs one thread too, so boxes can be compared by position. The thread
 * count is process-wide and jest reuses this worker, hence the restore.
 */
function oneIntraOpThread(): void {
  let threads: number;
  beforeAll(() => {
    threads = getNumThreads();
    setNumThreads(1);
  });
  afterAll(() => setNumThreads(threads));
}

describe('detection: RetinaNet (ResNet-50 FPN), List[Tensor] input, (losses, detections) output', () => {
  oneIntraOpThread();
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(STRUCTURED_MODELS.detection, { device: 'cpu' });
  });
  afterAll(() => model.dispose());

  test('FPN and body dicts as parts, the head, and the typed detections equal Python', async () => {
    const input = syntheticInput(2, 112, 128, 5);
    for (let i = 0; i < input.data.length; i++) input.data[i] = Math.min(1, Math.max(0, input.data[i] / 4 + 0.5));
    const layers = ['backbone.body', 'backbone.fpn', 'head.classification_head'];
    const oracle = structuredOracle(STRUCTURED_MODELS.detection, input, layers);
    const res = await model.forward(input, { layers, optimize: false });
    expect(res.captures.map((c) => c.name)).toEqual([
      'backbone.body:0',
      'backbone.body:1',
      'backbone.body:2',
      'backbone.fpn:0',
      'backbone.fpn:1',
      'backbone.fpn:2',
      'backbone.fpn:p6',
      'backbone.fpn:p7',
      'head.classification_head',
    ]);
    for (const c of res.captures) expectClose(c.name, c, oracle.get(c.name), 1e-4);

    const dets = detectionsOf(res.value)!;
    expect(dets).toHaveLength(2);
    expect(dets[0].labels.dtype).toBe('int64');
    expect(dets[0].boxes.dtype).toBe('float32');
    const flat = new Map<string, { shape: number[]; data: Float32Array }>();
    flatten('out', res.value, flat);
    expect([...flat.keys()]).toEqual([...oracle.keys()].filter((k) => k.startsWith('out')));
    // Boxes in pixels: within 1e-3; labels exactly; scores within 1e-5.
    for (const [k, v] of flat)
      expectClose(k, v, oracle.get(k), k.endsWith('boxes') ? 1e-3 : k.endsWith('labels') ? 0 : 1e-5);
    expect(dets[0].boxes.shape[0]).toBeGreaterThan(0);
  }, 120_000);

  test('one part by name (backbone.fpn:p6), and a clear error for a part that does not exist', async () => {
    const input = syntheticInput(1, 64, 64, 6);
    const [p6] = await model.capture(input, ['backbone.fpn:p6']);
    expect(p6.name).toBe('backbone.fpn:p6');
    expect(p6.part).toBe('p6');
    expect(p6.shape[1]).toBe(256);
    await expect(model.capture(input, ['backbone.fpn:pool'])).rejects.toMatchObject({
      code: 'CAPTURE_NOT_FOUND',
      message: expect.stringContaining('backbone.fpn:p7'),
    });
  }, 60_000);

  test('layers() names the FPN and heads', async () => {
    const names = (await model.layers()).filter((l) => l.calls > 0).map((l) => `${l.name}:${l.type}`);
    for (const n of [
      'transform:GeneralizedRCNNTransform',
      'backbone.body:IntermediateLayerGetter',
      'backbone.fpn:FeaturePyramidNetwork',
      'head.classification_head:RetinaNetClassificationHead',
      'anchor_generator:AnchorGenerator',
    ])
      expect(names).toContain(n);
  });
});

describe('detection: Faster R-CNN (MobileNetV3-Large 320 FPN), two stages joined by torchvision::roi_align', () => {
  // libtorch lacks torchvision's ops; featscope registers roi_align (and nms) itself. The oracle is
  // the eager twin running torchvision's own kernels.
  oneIntraOpThread();
  let model: Model;
  beforeAll(async () => {
    ensureStructuredModels(['rcnn']);
    model = await loadModel(STRUCTURED_MODELS.rcnn, { device: 'cpu' });
  }, 300_000);
  afterAll(() => model?.dispose());

  test('the RoI-pooled features, the box head and the typed detections equal Python', async () => {
    const input = syntheticInput(2, 112, 128, 7);
    for (let i = 0; i < input.data.length; i++) input.data[i] = Math.min(1, Math.max(0, input.data[i] / 4 + 0.5));
    const layers = ['backbone.fpn', 'rpn.head', 'roi_heads.box_roi_pool', 'roi_heads.box_head'];
    const oracle = structuredOracle(STRUCTURED_MODELS.rcnn, input, layers);
    const res = await model.forward(input, { layers, optimize: false });
    const names = res.captures.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['roi_heads.box_roi_pool', 'roi_heads.box_head', 'rpn.head:0:0']));
    expect(names.filter((n) => n.startsWith('backbone.fpn:'))).toEqual([
      'backbone.fpn:0',
      'backbone.fpn:1',
      'backbone.fpn:pool',
    ]);
    for (const c of res.captures) expectClose(c.name, c, oracle.get(c.name), 1e-4);
    // 2 images x 150 proposals (the 320 model's RPN post-NMS top-n at test time), 256 channels, 7x7 bins.
    expect(res.get('roi_heads.box_roi_pool').shape).toEqual([300, 256, 7, 7]);
    const dets = detectionsOf(res.value)!;
    expect(dets).toHaveLength(2);
    expect(dets[0].boxes.shape[0]).toBeGreaterThan(0);
    const flat = new Map<string, { shape: number[]; data: Float32Array }>();
    flatten('out', res.value, flat);
    expect([...flat.keys()]).toEqual([...oracle.keys()].filter((k) => k.startsWith('out')));
    for (const [k, v] of flat)
      expectClose(k, v, oracle.get(k), k.endsWith('boxes') ? 1e-3 : k.endsWith('labels') ? 0 : 1e-5);
  }, 180_000);

  test('layers() names both stages and the RoI pooling', async () => {
    const names = (await model.layers()).filter((l) => l.calls > 0).map((l) => `${l.name}:${l.type}`);
    for (const n of [
      'rpn:RegionProposalNetwork',
      'roi_heads:RoIHeads',
      'roi_heads.box_roi_pool:MultiScaleRoIAlign',
      'roi_heads.box_predictor:FastRCNNPredictor',
    ])
      expect(names).toContain(n);
  });
});

describe('instance masks and keypoints: Mask R-CNN and Keypoint R-CNN (ResNet-50 FPN)', () => {
  oneIntraOpThread();
  const models: Partial<Record<'maskrcnn' | 'keypointrcnn', Model>> = {};
  beforeAll(async () => {
    ensureStructuredModels(['maskrcnn', 'keypointrcnn']);
    models.maskrcnn = await loadModel(STRUCTURED_MODELS.maskrcnn, { device: 'cpu' });
    models.keypointrcnn = await loadModel(STRUCTURED_MODELS.keypointrcnn, { device: 'cpu' });
  }, 300_000);
  afterAll(() => Object.values(models).forEach((m) => m.dispose()));

  /** The named heads' captures and the typed detections (with masks or keypoints) against Python. */
  async function againstPython(kind: 'maskrcnn' | 'keypointrcnn', layers: string[], extra: string) {
    const input = syntheticInput(1, 112, 128, 8);
    for (let i = 0; i < input.data.length; i++) input.data[i] = Math.min(1, Math.max(0, input.data[i] / 4 + 0.5));
    const oracle = structuredOracle(STRUCTURED_MODELS[kind], input, layers);
    const res = await models[kind]!.forward(input, { layers, optimize: false });
    // GeneralizedRCNNTransform returns (ImageList, targets): a TorchScript class's attributes are parts.
    expect(res.captures.map((c) => c.name)).toEqual(layers.map((l) => (l === 'transform' ? 'transform:0:tensors' : l)));
    for (const c of res.captures) expectClose(c.name, c, oracle.get(c.name), 1e-4);
    const dets = detectionsOf(res.value)!;
    expect(dets).toHaveLength(1);
    expect(Object.keys(dets[0])).toEqual(expect.arrayContaining(['boxes', 'labels', 'scores', extra]));
    const flat = new Map<string, { shape: number[]; data: Float32Array }>();
    flatten('out', res.value, flat);
    expect([...flat.keys()]).toEqual([...oracle.keys()].filter((k) => k.startsWith('out')));
    // Pixel positions (boxes, keypoints) within 1e-3; labels exactly; probabilities and scores 1e-4.
    for (const [k, v] of flat)
      expectClose(k, v, oracle.get(k), /(boxes|keypoints)$/.test(k) ? 1e-3 : k.endsWith('labels') ? 0 : 1e-4);
    return dets;
  }

  test("Mask R-CNN: the resized input (an ImageList's tensors), the mask head's captures and the pasted masks equal Python", async () => {
    const dets = await againstPython(
      'maskrcnn',
      ['transform', 'roi_heads.mask_roi_pool', 'roi_heads.mask_head', 'roi_heads.mask_predictor'],
      'masks',
    );
    const [D] = dets[0].scores.shape;
    expect(D).toBeGreaterThan(0);
    expect(dets[0].masks!.shape).toEqual([D, 1, 112, 128]);
  }, 180_000);

  test("Keypoint R-CNN: the keypoint head's captures and the keypoints equal Python", async () => {
    const dets = await againstPython(
      'keypointrcnn',
      ['roi_heads.keypoint_roi_pool', 'roi_heads.keypoint_head', 'roi_heads.keypoint_predictor'],
      'keypoints',
    );
    const [D] = dets[0].scores.shape;
    expect(dets[0].keypoints!.shape).toEqual([D, 17, 3]);
    expect(dets[0].keypoints_scores!.shape).toEqual([D, 17]);
  }, 180_000);

  test('predictionOverlay: each drawn box carries its mask size (pixels >= 0.5) or its named keypoints, from the same forward', async () => {
    const dog = path.join(ROOT, 'test', 'fixtures', 'images', 'dog.jpg');
    const input = await preprocess([dog], { resize: 'squash', size: 128, mean: [0, 0, 0], std: [1, 1, 1] });
    for (const model of [models.maskrcnn!, models.keypointrcnn!]) {
      const p = await predictionOverlay(model, dog, { top: 3, displaySize: 128 });
      const d = detectionsOf((await model.forward(input)).value)![0];
      expect(p.boxes).toHaveLength(3);
      for (const b of p.boxes!) {
        const i = Array.from(d.scores.data).indexOf(b.score);
        expect(i).toBeGreaterThanOrEqual(0);
        if (d.masks) {
          const size = 128 * 128;
          const want = d.masks.data.subarray(i * size, (i + 1) * size).filter((v) => v >= MASK_THRESHOLD).length;
          expect(b.maskPixels).toBe(want);
          expect(b.keypoints).toBeUndefined();
        } else {
          expect(b.maskPixels).toBeUndefined();
          expect(b.keypoints!.map((k) => k.name)).toEqual(model.metadata.keypoints);
          expect(b.keypoints![0].name).toBe('nose');
          b.keypoints!.forEach((k, j) => {
            expect(k.x).toBe(d.keypoints!.data[(i * 17 + j) * 3]);
            expect(k.y).toBe(d.keypoints!.data[(i * 17 + j) * 3 + 1]);
            expect(k.score).toBe(d.keypoints_scores!.data[i * 17 + j]);
          });
        }
      }
    }
  }, 120_000);

  test('tintMask: nearest neighbour from pixel centres, only where the mask is >= 0.5, blended by alpha', () => {
    // A 2 x 2 mask over a 4 x 2 canvas: mask column 0 covers canvas columns 0-1, row 0 covers row 0.
    const mask = Float32Array.from([0.5, 0.49, 1, 0]);
    const canvas = { data: Buffer.alloc(4 * 2 * 3, 100), width: 4, height: 2 };
    tintMask(canvas, mask, { width: 2, height: 2 }, [200, 0, 50], 0.25);
    const px = (x: number, y: number) => [...canvas.data.subarray((y * 4 + x) * 3, (y * 4 + x) * 3 + 3)];
    for (const [x, y] of [
      [0, 0],
      [1, 0],
      [0, 1],
      [1, 1],
    ])
      expect(px(x, y)).toEqual([125, 75, 88]); // 0.75 * 100 + 0.25 * (200, 0, 50), rounded
    for (const [x, y] of [
      [2, 0],
      [3, 0],
      [2, 1],
      [3, 1],
    ])
      expect(px(x, y)).toEqual([100, 100, 100]);
  });
});

describe('predictionOverlay: the mask or the boxes over the photo', () => {
  const dog = path.join(ROOT, 'test', 'fixtures', 'images', 'dog.jpg');

  test('detection: the top boxes are the highest-scoring detections of the same forward', async () => {
    const model = await loadModel(STRUCTURED_MODELS.detection, { device: 'cpu' });
    try {
      const p = await predictionOverlay(model, dog, { top: 5, displaySize: 128 });
      expect(p.kind).toBe('detection');
      expect(p.weights.trained).toBe(false);
      const input = await preprocess([dog], { resize: 'squash', size: 128, mean: [0, 0, 0], std: [1, 1, 1] });
      const d = detectionsOf((await model.forward(input)).value)![0];
      const want = Array.from(d.scores.data)
        .sort((a, b) => b - a)
        .slice(0, 5);
      expect(p.boxes!.map((b) => b.score)).toEqual(want);
      for (const b of p.boxes!) expect(b.name).toBe(model.metadata.classes![b.class]);
      const meta = await sharp(p.png).metadata();
      expect([meta.width, meta.height]).toEqual([p.width, p.height]);
    } finally {
      model.dispose();
    }
  }, 60_000);

  test('segmentation: the legend lists the argmax classes, shares summing to 1', async () => {
    const model = await loadModel(STRUCTURED_MODELS.segmentation, { device: 'cpu' });
    try {
      const p = await predictionOverlay(model, dog, { displaySize: 128 });
      expect(p.kind).toBe('segmentation');
      const norm = model.metadata.input!;
      const input = await preprocess([dog], { resize: 'squash', size: 128, mean: norm.mean, std: norm.std });
      const { mask } = argmaxMask(segmentationLogitsOf((await model.forward(input)).value)!);
      const counts = new Map<number, number>();
      for (const k of mask) counts.set(k, (counts.get(k) ?? 0) + 1);
      expect(new Map(p.classes!.map((c) => [c.class, c.share]))).toEqual(
        new Map([...counts].map(([k, n]) => [k, n / mask.length])),
      );
      expect(paletteColour(0)).toEqual([0, 0, 0]);
      expect(paletteColour(1)).toEqual([128, 0, 0]);
      expect(paletteColour(15)).toEqual([192, 128, 128]); // VOC's person
    } finally {
      model.dispose();
    }
  }, 60_000);
});
