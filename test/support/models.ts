/** Test models, exported once per machine into test/.cache with Debian's /usr/bin/python3. */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, type Model } from '../../lib';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CACHE = path.join(ROOT, 'test', '.cache');
/** The Python with torch the oracles run: FEATSCOPE_PYTHON (as for the product), else /usr/bin/python3. */
export const PYTHON = process.env.FEATSCOPE_PYTHON || '/usr/bin/python3';

export const MODELS = {
  scripted: path.join(CACHE, 'resnet18-script.pt'),
  traced: path.join(CACHE, 'resnet18-trace.pt'),
  edge: path.join(CACHE, 'edge'),
  /** Scripted MobileNetV2: its residual blocks call their layers inside `if self.use_res_connect`. */
  mobilenet: path.join(CACHE, 'mobilenet_v2-script.pt'),
};

/**
 * AOTInductor packages (.pt2) for the libtorch 2.x leg, each with its state_dict beside it
 * (FILE.pt2.pth) for the Python twin. About 20-70 s each to compile on the CPU: keep them few.
 */
export const PT2_MODELS = {
  /** ResNet-18, every module call tapped. */
  resnet18: path.join(CACHE, 'resnet18-all.pt2'),
  /** MobileNetV2 with three taps only (the rest: LAYER_NOT_EXPORTED). */
  mobilenet: path.join(CACHE, 'mobilenet_v2-taps.pt2'),
};
export const MOBILENET_PT2_TAPS = ['features.1', 'features.3.conv', 'features.18', 'classifier'];

/** Makes the .pt2 test models (needs torch >= 2.6 in PYTHON). */
export function ensurePt2Models(): void {
  fs.mkdirSync(CACHE, { recursive: true });
  const exporter = path.join(ROOT, 'scripts', 'export-model.py');
  const make = (file: string, args: string[]) => {
    if (!fs.existsSync(file))
      execFileSync(PYTHON, [exporter, file, '--format', 'pt2', '--state-dict-out', `${file}.pth`, ...args], {
        stdio: 'inherit',
      });
  };
  make(PT2_MODELS.resnet18, ['--taps', 'all']);
  make(PT2_MODELS.mobilenet, ['--arch', 'mobilenet_v2', '--taps', MOBILENET_PT2_TAPS.join(',')]);
}

export function ensureTestModels(): void {
  fs.mkdirSync(CACHE, { recursive: true });
  const exporter = path.join(ROOT, 'scripts', 'export-model.py');
  if (!fs.existsSync(MODELS.scripted)) execFileSync(PYTHON, [exporter, MODELS.scripted], { stdio: 'inherit' });
  if (!fs.existsSync(MODELS.traced)) execFileSync(PYTHON, [exporter, MODELS.traced, '--trace'], { stdio: 'inherit' });
  if (!fs.existsSync(MODELS.mobilenet))
    execFileSync(PYTHON, [exporter, MODELS.mobilenet, '--arch', 'mobilenet_v2'], { stdio: 'inherit' });
  if (
    ['loopnet', 'constcap', 'pair_head', 'deep_parts'].some((m) => !fs.existsSync(path.join(MODELS.edge, `${m}.pt`)))
  ) {
    execFileSync(PYTHON, [path.join(ROOT, 'test', 'support', 'make_test_models.py'), MODELS.edge], {
      stdio: 'inherit',
    });
  }
}

/**
 * Loads `file` on the CPU before a test file's tests and frees it after them; call at the top
 * level and use the returned getter inside tests.
 */
export function cpuModelForTests(file: () => string = () => MODELS.scripted): () => Model {
  let model: Model | undefined;
  beforeAll(async () => {
    ensureTestModels();
    model = await loadModel(file(), { device: 'cpu' });
  });
  afterAll(() => model?.dispose());
  return () => model!;
}

export function edgeModel(name: string): string {
  return path.join(MODELS.edge, `${name}.pt`);
}

/** A deterministic, image-like NCHW input (values in roughly the normalised range). */
export function syntheticInput(
  n: number,
  h = 224,
  w = 224,
  seed = 1,
): { data: Float32Array; shape: [number, number, number, number] } {
  const data = new Float32Array(n * 3 * h * w);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const noise = s / 2 ** 32 - 0.5;
    const hw = i % (h * w);
    const y = Math.floor(hw / w),
      x = hw % w;
    data[i] = Math.sin(x / 9 + y / 13 + Math.floor(i / (h * w))) * 1.5 + noise;
  }
  return { data, shape: [n, 3, h, w] };
}

export interface OracleResult {
  output: { shape: number[]; data: Float32Array };
  captures: Map<string, { shape: number[]; data: Float32Array }>;
}

/** Python register_forward_hook on the eager twin (test/support/hook_oracle.py). */
export function pythonHooks(
  model: string,
  input: { data: Float32Array; shape: number[] },
  layers: string[],
  device = 'cpu',
): OracleResult {
  const dir = fs.mkdtempSync(path.join(CACHE, 'oracle-'));
  try {
    const inPath = path.join(dir, 'input.f32');
    fs.writeFileSync(inPath, Buffer.from(input.data.buffer, input.data.byteOffset, input.data.byteLength));
    execFileSync(
      PYTHON,
      [path.join(ROOT, 'test', 'support', 'hook_oracle.py'), model, inPath, input.shape.join(','), dir, ...layers],
      { stdio: 'inherit', env: { ...process.env, FEATSCOPE_ORACLE_DEVICE: device } },
    );
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as {
      output: number[];
      captures: Record<string, number[]>;
    };
    const read = (f: string) => {
      const b = fs.readFileSync(path.join(dir, f));
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    };
    const captures = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, shape] of Object.entries(index.captures)) captures.set(k, { shape, data: read(`${k}.f32`) });
    return { output: { shape: index.output, data: read('output.f32') }, captures };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Segmentation and detection test models (scripts/structured_models.py), untrained: DeepLabV3 on
 * MobileNetV3-Large (44 MB; its backbone returns a dict) and RetinaNet on ResNet-50 with an FPN
 * (136 MB), and Faster R-CNN on MobileNetV3 (libtorch lacks torchvision's ops: featscope registers
 * torchvision::nms and torchvision::roi_align itself). Input side 128; the detectors keep every
 * detection (--score-thresh 0: an untrained head scores about 1/91).
 */
export const STRUCTURED_MODELS = {
  segmentation: path.join(CACHE, 'deeplabv3_mobilenet_v3_large-128.pt'),
  detection: path.join(CACHE, 'retinanet_resnet50_fpn-128.pt'),
  /** Faster R-CNN (MobileNetV3-Large 320 FPN, 78 MB): two stages, torchvision::roi_align between them. */
  rcnn: path.join(CACHE, 'fasterrcnn_mobilenet_v3_large_320_fpn-128.pt'),
  /** Mask R-CNN (ResNet-50 FPN, 178 MB): a mask head on RoIAlign, masks pasted into the image. */
  maskrcnn: path.join(CACHE, 'maskrcnn_resnet50_fpn-128.pt'),
  /** Keypoint R-CNN (ResNet-50 FPN, 237 MB): 17 person keypoints per box. */
  keypointrcnn: path.join(CACHE, 'keypointrcnn_resnet50_fpn-128.pt'),
};

const STRUCTURED_ARGS: Record<keyof typeof STRUCTURED_MODELS, string[]> = {
  segmentation: ['--size', '128', '--arch', 'deeplabv3_mobilenet_v3_large'],
  detection: ['--size', '128', '--arch', 'retinanet_resnet50_fpn', '--score-thresh', '0'],
  rcnn: ['--size', '128', '--arch', 'fasterrcnn_mobilenet_v3_large_320_fpn', '--score-thresh', '0'],
  maskrcnn: ['--size', '128', '--arch', 'maskrcnn_resnet50_fpn', '--score-thresh', '0'],
  keypointrcnn: ['--size', '128', '--arch', 'keypointrcnn_resnet50_fpn', '--score-thresh', '0'],
};

/** Exports the structured test models asked for (default both) once per machine. */
export function ensureStructuredModels(
  kinds: readonly (keyof typeof STRUCTURED_MODELS)[] = ['segmentation', 'detection'],
): void {
  for (const kind of kinds) exportedModel(STRUCTURED_MODELS[kind], STRUCTURED_ARGS[kind]);
}

/** `file`, exported once per machine by scripts/export-model.py with `args` (untrained weights). */
export function exportedModel(file: string, args: readonly string[]): string {
  fs.mkdirSync(CACHE, { recursive: true });
  if (!fs.existsSync(file))
    execFileSync(PYTHON, [path.join(ROOT, 'scripts', 'export-model.py'), file, ...args], { stdio: 'inherit' });
  return file;
}

/** A small Vision Transformer (32 px, patch 8, 2 layers, 2 heads), untrained. */
export const VIT_SMALL = path.join(CACHE, 'vit_small.pt');
export const ensureVitSmall = (): string => exportedModel(VIT_SMALL, ['--arch', 'vit_small']);

/** test/support/structured_oracle.py: Python hooks on the eager twin, its output, EigenCAM by SVD. */
export function structuredOracle(
  model: string,
  input: { data: Float32Array; shape: number[] },
  layers: string[],
  eigencamOf?: string,
): Map<string, { shape: number[]; data: Float32Array }> {
  const dir = fs.mkdtempSync(path.join(CACHE, 'oracle-'));
  try {
    const inPath = path.join(dir, 'input.f32');
    fs.writeFileSync(inPath, Buffer.from(input.data.buffer, input.data.byteOffset, input.data.byteLength));
    execFileSync(
      PYTHON,
      [
        path.join(ROOT, 'test', 'support', 'structured_oracle.py'),
        model,
        inPath,
        input.shape.join(','),
        dir,
        ...(eigencamOf ? ['--eigencam', eigencamOf] : []),
        ...layers,
      ],
      { stdio: ['ignore', 'inherit', 'pipe'] },
    );
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as [string, number[], string][];
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, shape, file] of index) {
      const b = fs.readFileSync(path.join(dir, file));
      out.set(name, { shape, data: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) });
    }
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
