/** featscope export -> numpy.load: shapes, dtype and values equal to the API's capture of the same photo. */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, type Model } from '../../lib/model';
import { preprocess } from '../../lib/preprocess';
import { encodeNpy } from '../../lib/npy';
import { MODELS, PYTHON, ensureTestModels, maxAbsDiff } from '../support/models';
import { DOG, ensureBuilt, listFiles, runCli, tempDir } from '../support/cli';

let model: Model;

beforeAll(async () => {
  ensureTestModels();
  ensureBuilt();
  model = await loadModel(MODELS.scripted, { device: 'cpu' });
});

afterAll(() => model?.dispose());

/** numpy.load each file; write its values as raw float32 and report shape and dtype. */
function numpyLoad(files: string[], dir: string): Array<{ shape: number[]; dtype: string; values: Float32Array }> {
  const script = `
import json, sys, numpy as np
out = []
for i, f in enumerate(sys.argv[2:]):
    a = np.load(f, allow_pickle=False)
    a.astype('<f4').tofile(f"{sys.argv[1]}/{i}.f32")
    out.append({"shape": list(a.shape), "dtype": str(a.dtype), "fortran": bool(np.isfortran(a))})
print(json.dumps(out))
`;
  const meta = JSON.parse(execFileSync(PYTHON, ['-c', script, dir, ...files], { encoding: 'utf8' })) as Array<{
    shape: number[];
    dtype: string;
    fortran: boolean;
  }>;
  return meta.map((m, i) => {
    expect(m.fortran).toBe(false);
    const b = fs.readFileSync(path.join(dir, `${i}.f32`));
    return {
      shape: m.shape,
      dtype: m.dtype,
      values: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)),
    };
  });
}

test('export writes one .npy per layer that numpy.load reads with the capture shape and values', async () => {
  const out = tempDir('export');
  const layers = ['layer1.0.conv1', 'layer1.0.relu#1', 'layer4', 'fc'];
  const r = runCli([
    'export',
    DOG,
    '--model',
    MODELS.scripted,
    '--layers',
    layers.join(','),
    '--device',
    'cpu',
    '--out',
    out,
    '--json',
  ]);
  expect(r.stderr).not.toMatch(/failed/);
  expect(r.code).toBe(0);
  expect(listFiles(out)).toEqual([
    'dog/fc.npy',
    'dog/layer1.0.conv1.npy',
    'dog/layer1.0.relu_call1.npy',
    'dog/layer4.npy',
    'dog/record.json',
    'manifest.json',
  ]);

  const pre = await preprocess(DOG, { size: 224 });
  const captures = await model.capture(pre, layers);
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  expect(manifest.command).toBe('export');
  expect(manifest.trained).toBe(false);
  const saved = manifest.images[0].captures as Array<{ name: string; file: string; shape: number[]; dtype: string }>;
  expect(saved.map((s) => s.name)).toEqual(layers);
  const loaded = numpyLoad(
    saved.map((s) => path.join(out, s.file)),
    tempDir('numpy'),
  );
  saved.forEach((s, i) => {
    const c = captures.find((x) => x.name === s.name)!;
    expect(loaded[i].shape).toEqual(c.shape);
    expect(s.shape).toEqual(c.shape);
    expect(loaded[i].dtype).toBe('float32');
    expect(maxAbsDiff(loaded[i].values, c.data)).toBeLessThanOrEqual(1e-5);
  });
});

test('a batch export slices each image out of the batch capture', async () => {
  const dir = tempDir('export-batch');
  const out = tempDir('export-batch-out');
  const photos = ['chelsea.png', 'coffee.png', 'dog.jpg'];
  for (const p of photos) fs.copyFileSync(path.join(path.dirname(DOG), p), path.join(dir, p));
  const r = runCli([
    'export',
    dir,
    '--model',
    MODELS.scripted,
    '--layers',
    'layer2',
    '--batch',
    '3',
    '--device',
    'cpu',
    '--out',
    out,
  ]);
  expect(r.code).toBe(0);
  const files = photos.map((p) => path.join(out, path.basename(p, path.extname(p)), 'layer2.npy'));
  const loaded = numpyLoad(files, tempDir('numpy-batch'));
  for (let i = 0; i < photos.length; i++) {
    const [c] = await model.capture(await preprocess(path.join(dir, photos[i]), { size: 224 }), ['layer2']);
    expect(loaded[i].shape).toEqual([1, 128, 28, 28]);
    expect(maxAbsDiff(loaded[i].values, c.data)).toBeLessThanOrEqual(1e-4);
  }
});

test('encodeNpy: header padded to 64 bytes, 1-D shapes get a trailing comma, bad shapes refused', () => {
  const b = encodeNpy(new Int32Array([1, 2, 3]), [3]);
  const headerLen = b.readUInt16LE(8);
  expect((10 + headerLen) % 64).toBe(0);
  expect(b.toString('latin1', 10, 10 + headerLen)).toMatch(
    /^\{'descr': '<i4', 'fortran_order': False, 'shape': \(3,\), \} *\n$/,
  );
  expect(() => encodeNpy(new Float32Array(4), [3])).toThrow(/needs 3 values but the data holds 4/);
});
