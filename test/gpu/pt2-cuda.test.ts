// AOTInductor packages compiled for CUDA (scripts/export-model.py --format pt2 --device cuda): the
// package loads on the GPU and its taps equal Python forward hooks on the eager torchvision twin
// (same state_dict, same input, on CUDA). Needs libtorch >= 2.6 with CUDA; skips elsewhere. One
// small package (three taps) keeps the export short on the GPU machine.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { cuda, loadModel, Model } from '../../lib';
import { binding } from '../../lib/native';
import { CACHE, maxAbsDiff, PYTHON, pythonHooks, ROOT, syntheticInput } from '../support/models';

const hasCuda = (() => {
  try {
    return cuda.available() && binding().pt2Supported;
  } catch {
    return false;
  }
})();
const describeGpu = hasCuda ? describe : describe.skip;
if (!hasCuda)
  test('CUDA .pt2 tests skipped: needs libtorch >= 2.6 that sees a CUDA device', () => expect(hasCuda).toBe(false));

const FILE = path.join(CACHE, 'resnet18-cuda-taps.pt2');
const TAPS = ['layer1', 'layer2.0.relu', 'layer4'];

describeGpu('ResNet-18 AOTInductor package compiled for CUDA', () => {
  let model: Model;
  beforeAll(async () => {
    fs.mkdirSync(CACHE, { recursive: true });
    if (!fs.existsSync(FILE))
      execFileSync(
        PYTHON,
        [
          path.join(ROOT, 'scripts', 'export-model.py'),
          FILE,
          '--format',
          'pt2',
          '--device',
          'cuda',
          '--taps',
          TAPS.join(','),
          '--state-dict-out',
          `${FILE}.pth`,
        ],
        { stdio: 'inherit' },
      );
    model = await loadModel(FILE, { device: 'cuda' });
  }, 600_000);
  afterAll(() => model?.dispose());

  test('loads on cuda:0; its taps equal Python hooks on CUDA within TF32 tolerance', async () => {
    expect(model.format).toBe('pt2');
    expect(model.device).toBe('cuda:0');
    expect(model.metadata.architecture).toBe('resnet18');
    const input = syntheticInput(2, 224, 224, 17);
    const res = await model.forward(input, { layers: TAPS });
    const oracle = pythonHooks(FILE, input, TAPS, 'cuda');
    expect(res.captures.map((c) => c.name)).toEqual([...oracle.captures.keys()]);
    expect(res.captures.map((c) => c.name)).toContain('layer2.0.relu#1');
    for (const c of res.captures) {
      const o = oracle.captures.get(c.name)!;
      expect(c.shape).toEqual(o.shape);
      let scale = 0;
      for (const v of o.data) scale = Math.max(scale, Math.abs(v));
      const d = maxAbsDiff(c.data, o.data);
      // The package's convolutions may use TF32; the oracle's do not.
      if (!(d <= 2e-2 * scale)) throw new Error(`${c.name}: max abs diff ${d} (max |ref| ${scale})`);
    }
    expect(res.output!.shape).toEqual([2, 1000]);
  });

  test("'auto' takes the package's device; 'cpu' is refused naming it", async () => {
    const auto = await loadModel(FILE, { device: 'auto' });
    try {
      expect(auto.device).toBe('cuda:0');
    } finally {
      auto.dispose();
    }
    await expect(loadModel(FILE, { device: 'cpu' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('was compiled for CUDA'),
    });
  });
});
