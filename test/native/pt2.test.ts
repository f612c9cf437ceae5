// AOTInductor packages (.pt2, scripts/export-model.py --format pt2): captures of the taps fixed at
// export time against the independent oracle (Python register_forward_hook on the eager torchvision
// twin, same state_dict, same input), error codes, and the CLI. The capture tests need libtorch
// >= 2.6 (the 2.x leg, scripts/test-torch2.sh); on 1.13 only the FORMAT_UNSUPPORTED test runs.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cuda, loadModel, Model } from '../../lib';
import { binding } from '../../lib/native';
import {
  ensurePt2Models,
  ensureTestModels,
  maxAbsDiff,
  MOBILENET_PT2_TAPS,
  MODELS,
  PT2_MODELS,
  pythonHooks,
  syntheticInput,
} from '../support/models';

const supported = binding().pt2Supported;
const versions = binding().versions();

/** |a - ref| <= 1e-4 * max|ref| + 1e-5 everywhere; throws naming the capture otherwise. */
function expectClose(name: string, got: Float32Array, ref: Float32Array): void {
  expect({ name, length: got.length }).toEqual({ name, length: ref.length });
  let maxRef = 0;
  for (const v of ref) maxRef = Math.max(maxRef, Math.abs(v));
  const d = maxAbsDiff(got, ref);
  if (!(d <= 1e-4 * maxRef + 1e-5)) throw new Error(`${name}: max abs diff ${d} (max |ref| ${maxRef})`);
}

(supported ? describe.skip : describe)(`libtorch ${versions.libtorch}, without the .pt2 backend`, () => {
  test('a .pt2 file gets FORMAT_UNSUPPORTED naming the libtorch version needed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-pt2-'));
    const file = path.join(dir, 'm.pt2');
    fs.writeFileSync(file, 'not loaded: refused before it is read');
    try {
      await expect(loadModel(file, { device: 'cpu' })).rejects.toMatchObject({
        code: 'FORMAT_UNSUPPORTED',
        message: expect.stringMatching(
          new RegExp(`libtorch 2\\.6 or newer.*this build uses libtorch ${versions.libtorch.replace(/\./g, '\\.')}`),
        ),
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

if (!supported) {
  // Says why in the test output rather than passing silently.
  test.skip(`.pt2 captures need libtorch >= 2.6 (this build: ${versions.libtorch}); run them with scripts/test-torch2.sh test/native/pt2.test.ts`, () => {});
}

(supported ? describe : describe.skip)('ResNet-18 AOTInductor package, every module call tapped', () => {
  let model: Model;
  let scripted: Model;
  beforeAll(async () => {
    ensurePt2Models();
    ensureTestModels();
    model = await loadModel(PT2_MODELS.resnet18, { device: 'cpu' });
    scripted = await loadModel(MODELS.scripted, { device: 'cpu' });
  }, 600_000);
  afterAll(() => {
    model?.dispose();
    scripted?.dispose();
  });

  test("format, metadata and layers: the taps, with the TorchScript path's names and call counts", async () => {
    expect(model.format).toBe('pt2');
    expect(scripted.format).toBe('torchscript');
    expect(model.metadata.architecture).toBe('resnet18');
    expect(model.metadata.weights?.trained).toBe(false);
    const layers = await model.layers();
    const tsLayers = new Map((await scripted.layers()).map((l) => [l.name, l]));
    // Every module of ResNet-18 returns a tensor: all are tapped, with the same types and calls.
    expect(layers.map((l) => l.name).sort()).toEqual([...tsLayers.keys()].sort());
    for (const l of layers)
      expect({ name: l.name, type: l.type, calls: l.calls }).toEqual({
        name: l.name,
        type: tsLayers.get(l.name)!.type,
        calls: tsLayers.get(l.name)!.calls,
      });
    expect(layers.find((l) => l.name === 'layer1.0.relu')!.calls).toBe(2);
  });

  test.each([1, 4])(
    'batch %i: every tap equals Python forward hooks, named as TorchScript captures',
    async (n) => {
      const input = syntheticInput(n, 224, 224, 30 + n);
      const names = (await model.layers()).map((l) => l.name);
      const res = await model.forward(input, { layers: names });
      const oracle = pythonHooks(PT2_MODELS.resnet18, input, names);
      // Hook-firing order, with #k numbering, exactly as Python and the TorchScript path give them.
      expect(res.captures.map((c) => c.name)).toEqual([...oracle.captures.keys()]);
      if (n === 1) {
        const ts = await scripted.forward(input, { layers: names });
        expect(res.captures.map((c) => c.name)).toEqual(ts.captures.map((c) => c.name));
      }
      expect(res.captures.map((c) => c.name)).toContain('layer1.0.relu#1');
      for (const c of res.captures) {
        const o = oracle.captures.get(c.name)!;
        expect({ name: c.name, shape: c.shape }).toEqual({ name: c.name, shape: o.shape });
        expect(c.layer).toBe(c.name.split('#')[0]);
        expectClose(c.name, c.data, o.data);
      }
      expect(res.output!.shape).toEqual([n, 1000]);
      expectClose('output', res.output!.data, oracle.output.data);
    },
    300_000,
  );

  test('a module called twice: each call is its own tap, selectable with #k', async () => {
    const input = syntheticInput(1, 224, 224, 5);
    const both = await model.capture(input, ['layer2.1.relu']);
    expect(both.map((c) => [c.name, c.call])).toEqual([
      ['layer2.1.relu', 0],
      ['layer2.1.relu#1', 1],
    ]);
    const second = await model.capture(input, ['layer2.1.relu#1']);
    expect(second.map((c) => c.name)).toEqual(['layer2.1.relu#1']);
    expect(maxAbsDiff(second[0].data, both[1].data)).toBe(0);
    // The first call's output is kept as it was when the hook fired (bn2 + identity comes later).
    expect(maxAbsDiff(both[0].data, both[1].data)).toBeGreaterThan(0);
  });

  test('reductions (channels, top-k, maxSize, stats) give what they give on the TorchScript model', async () => {
    const input = syntheticInput(2, 224, 224, 11);
    for (const opts of [{ channels: [3, 0, 7] }, { maxSize: 14 }, { stats: true, channels: [5] }]) {
      const [a] = await model.capture(input, ['layer2'], opts);
      const [b] = await scripted.capture(input, ['layer2'], opts);
      expect(a.shape).toEqual(b.shape);
      expect(a.channels).toEqual(b.channels);
      expectClose(`layer2 ${JSON.stringify(opts)}`, a.data, b.data);
      if (b.stats) {
        expectClose('stats.max', a.stats!.max, b.stats.max);
        expectClose('stats.mean', a.stats!.mean, b.stats.mean);
      }
    }
  });

  test("captures are handed over without a copy; the caller's input is read, not written", async () => {
    const input = syntheticInput(1, 224, 224, 3);
    const before = Float32Array.from(input.data);
    const c0 = binding().exportCounters();
    const caps = await model.capture(input, ['conv1', 'layer4']);
    const c1 = binding().exportCounters();
    expect(c1.zeroCopy - c0.zeroCopy).toBeGreaterThanOrEqual(2);
    expect(caps.every((c) => Object.prototype.toString.call(c.data) === '[object Float32Array]')).toBe(true);
    expect(maxAbsDiff(input.data, before)).toBe(0);
  });

  test('coded errors: unknown layer, wrong input size, CUDA device, gradients, parameters', async () => {
    const input = syntheticInput(1, 224, 224, 3);
    await expect(model.capture(input, ['layer9'])).rejects.toMatchObject({ code: 'UNKNOWN_LAYER' });
    await expect(model.capture(syntheticInput(1, 160, 160), ['layer4'])).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringContaining('[N,3,224,224]'),
    });
    // A CPU package runs on the CPU only: without a GPU, 'cuda' is CUDA_UNAVAILABLE; with one, the
    // package's device is named.
    await expect(loadModel(PT2_MODELS.resnet18, { device: 'cuda' })).rejects.toMatchObject(
      cuda.available()
        ? { code: 'INVALID_ARGUMENT', message: expect.stringContaining('compiled for the CPU') }
        : { code: 'CUDA_UNAVAILABLE', message: expect.stringContaining("use device 'cpu'") },
    );
    await expect(model.gradcam(input, { layer: 'layer4' })).rejects.toMatchObject({
      code: 'NOT_SUPPORTED_PT2',
      message: expect.stringContaining('TorchScript export'),
    });
    await expect(model.backward(input, {})).rejects.toMatchObject({ code: 'NOT_SUPPORTED_PT2' });
    expect(() => model.parameters()).toThrow(expect.objectContaining({ code: 'NOT_SUPPORTED_PT2' }));
  });
});

(supported ? describe : describe.skip)('MobileNetV2 AOTInductor package with chosen taps', () => {
  let model: Model;
  beforeAll(async () => {
    ensurePt2Models();
    model = await loadModel(PT2_MODELS.mobilenet, { device: 'cpu' });
  }, 600_000);
  afterAll(() => model?.dispose());

  test('layers() lists exactly the taps; they equal Python forward hooks (batch 2)', async () => {
    expect((await model.layers()).map((l) => l.name)).toEqual(MOBILENET_PT2_TAPS);
    const input = syntheticInput(2, 224, 224, 21);
    const res = await model.forward(input, { layers: MOBILENET_PT2_TAPS });
    const oracle = pythonHooks(PT2_MODELS.mobilenet, input, MOBILENET_PT2_TAPS);
    expect(res.captures.map((c) => c.name)).toEqual([...oracle.captures.keys()]);
    expect(res.captures).toHaveLength(4);
    for (const c of res.captures) {
      expect(c.shape).toEqual(oracle.captures.get(c.name)!.shape);
      expectClose(c.name, c.data, oracle.captures.get(c.name)!.data);
    }
    expectClose('output', res.output!.data, oracle.output.data);
  }, 300_000);

  test('a module not exported as a tap gets LAYER_NOT_EXPORTED naming the export flag', async () => {
    const input = syntheticInput(1);
    const err = await model.capture(input, ['features.2']).catch((e) => e);
    expect(err.code).toBe('LAYER_NOT_EXPORTED');
    expect(err.message).toMatch(/features\.2 was not exported as a tap/);
    expect(err.message).toContain('--taps all');
    await expect(model.capture(input, ['features.99'])).rejects.toMatchObject({ code: 'UNKNOWN_LAYER' });
  });
});

(supported ? describe : describe.skip)('the CLI on an AOTInductor package of ResNet-18', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const e2e = require('../support/cli') as typeof import('../support/cli');
  beforeAll(() => {
    ensurePt2Models();
    ensureTestModels();
    e2e.ensureBuilt();
  }, 600_000);

  test('render draws the grid the TorchScript model gives (same channel statistics), with the banner', async () => {
    const outs: Record<string, string> = {};
    const manifests: Record<
      string,
      { layers: unknown; images: { layers: { name: string; channels: { max: number[] } }[] }[] }
    > = {};
    for (const [kind, file] of [
      ['pt2', PT2_MODELS.resnet18],
      ['pt', MODELS.scripted],
    ] as const) {
      outs[kind] = e2e.tempDir(`pt2-render-${kind}`);
      const r = e2e.runCli([
        'render',
        e2e.DOG,
        '--model',
        file,
        '--device',
        'cpu',
        '--layers',
        'layer1.0.conv1,layer4',
        '--out',
        outs[kind],
      ]);
      expect({ kind, code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ kind, code: 0, stderr: '' });
      manifests[kind] = JSON.parse(fs.readFileSync(path.join(outs[kind], 'manifest.json'), 'utf8'));
    }
    expect(e2e.listFiles(outs.pt2)).toEqual(e2e.listFiles(outs.pt));
    expect(e2e.listFiles(outs.pt2)).toContain('dog/layer4.png');
    expect(manifests.pt2.layers).toEqual(manifests.pt.layers);
    const [a, b] = [manifests.pt2.images[0].layers, manifests.pt.images[0].layers];
    for (let i = 0; i < 2; i++) {
      expect(a[i].name).toBe(b[i].name);
      expectClose(
        `${a[i].name} channel max`,
        Float32Array.from(a[i].channels.max),
        Float32Array.from(b[i].channels.max),
      );
    }
    // The weights banner (UNTRAINED, red) on the picture.
    const sharp = (await import('sharp')).default;
    const { data, info } = await sharp(path.join(outs.pt2, 'dog', 'layer4.png'))
      .raw()
      .toBuffer({ resolveWithObject: true });
    const ref = await sharp(path.join(outs.pt, 'dog', 'layer4.png')).metadata();
    expect([info.width, info.height]).toEqual([ref.width, ref.height]);
    expect([data[0], data[1], data[2]]).toEqual([0xc6, 0x28, 0x28]);
    for (const dir of Object.values(outs)) fs.rmSync(dir, { recursive: true, force: true });
  }, 300_000);

  test('export writes the .npy files the TorchScript model gives, with close values; info describes the package', () => {
    const outs: Record<string, string> = {};
    for (const [kind, file] of [
      ['pt2', PT2_MODELS.resnet18],
      ['pt', MODELS.scripted],
    ] as const) {
      outs[kind] = e2e.tempDir(`pt2-export-${kind}`);
      const r = e2e.runCli([
        'export',
        e2e.DOG,
        '--model',
        file,
        '--device',
        'cpu',
        '--layers',
        'layer3,fc',
        '--out',
        outs[kind],
      ]);
      expect({ kind, code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ kind, code: 0, stderr: '' });
    }
    const files = e2e.listFiles(outs.pt2).filter((f) => f.endsWith('.npy'));
    expect(files).toHaveLength(2);
    expect(files).toEqual(e2e.listFiles(outs.pt).filter((f) => f.endsWith('.npy')));
    for (const f of files) {
      const [a, b] = [outs.pt2, outs.pt].map((d) => fs.readFileSync(path.join(d, f)));
      expect(a.length).toBe(b.length);
      const headerLen = 10 + a.readUInt16LE(8);
      expect(a.subarray(0, headerLen).toString('latin1')).toBe(b.subarray(0, headerLen).toString('latin1'));
      const view = (buf: Buffer) =>
        new Float32Array(buf.buffer.slice(buf.byteOffset + headerLen, buf.byteOffset + buf.length));
      expectClose(f, view(a), view(b));
    }
    for (const dir of Object.values(outs)) fs.rmSync(dir, { recursive: true, force: true });
    const info = e2e.runCli(['info', '--model', PT2_MODELS.resnet18]);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/resnet18-all\.pt2: resnet18, \d+ layers; UNTRAINED/);
  }, 300_000);

  test('layers lists the taps; gradcam refuses the package with NOT_SUPPORTED_PT2 (exit 2)', () => {
    const r = e2e.runCli(['layers', '--model', PT2_MODELS.resnet18]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('layer1.0.relu');
    const out = e2e.tempDir('pt2-gradcam');
    const g = e2e.runCli(['gradcam', e2e.DOG, '--model', PT2_MODELS.resnet18, '--device', 'cpu', '--out', out]);
    fs.rmSync(out, { recursive: true, force: true });
    expect(g.code).toBe(2);
    expect(g.stderr).toMatch(/NOT_SUPPORTED_PT2|not supported on AOTInductor packages/);
  });
});
