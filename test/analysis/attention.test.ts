// Vision Transformers: token captures as maps, attention weights of nn.MultiheadAttention calls,
// rollout and Grad-CAM on token layers, against the eager twin in Python (attention_oracle.py).
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, type Model } from '../../lib';
import { attentionRollout, attentionLayers, classTokenRow } from '../../lib/analysis/attention';
import {
  CACHE,
  MODELS,
  ROOT,
  VIT_SMALL,
  ensureTestModels,
  ensureVitSmall,
  maxAbsDiff,
  syntheticInput,
} from '../support/models';
import { readF32, runOracle, withTempDir, writeF32 } from '../support/oracle';

const VIT = VIT_SMALL;
const L0 = 'encoder.layers.encoder_layer_0';
const L1 = 'encoder.layers.encoder_layer_1';
const W0 = `${L0}.self_attention.weights`;
const W1 = `${L1}.self_attention.weights`;

let model: Model;
beforeAll(async () => {
  model = await loadModel(ensureVitSmall(), { device: 'cpu' });
}, 120_000);
afterAll(() => model?.dispose());

/** test/support/attention_oracle.py: Python hooks on the eager twin, rollout and Grad-CAM references. */
function oracle(input: { data: Float32Array; shape: number[] }, layers: string[]) {
  return withTempDir('attention-', (dir) => {
    const inPath = path.join(dir, 'input.f32');
    writeF32(inPath, input.data);
    runOracle('attention_oracle.py', [VIT, inPath, input.shape.join(','), dir, ...layers]);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as {
      captures: Record<string, number[]>;
    };
    const read = (f: string) => readF32(path.join(dir, f));
    const captures = new Map(
      Object.entries(index.captures).map(([k, shape]) => [k, { shape, data: read(`${k}.f32`) }]),
    );
    return {
      captures,
      rollout: read('rollout.f32'),
      gradcam: fs.existsSync(path.join(dir, 'gradcam.f32')) ? read('gradcam.f32') : undefined,
    };
  });
}

const x = syntheticInput(2, 32, 32, 5);

test('layers() lists the attention weights after each MultiheadAttention, and token layouts with inputSize', async () => {
  const names = (await model.layers()).map((l) => l.name);
  expect(names.indexOf(W0)).toBe(names.indexOf(`${L0}.self_attention`) + 1);
  expect(await attentionLayers(model)).toEqual([W0, W1]);
  const shaped = await model.layers({ inputSize: 32 });
  const l0 = shaped.find((l) => l.name === L0)!;
  expect(l0.outputShapes).toEqual([[1, 17, 64]]);
  expect(l0).toMatchObject({ layout: 'tokens', mapShapes: [[1, 64, 4, 4]] });
  expect(shaped.find((l) => l.name === W0)!.outputShapes).toEqual([[1, 2, 17, 17]]);
  expect(shaped.find((l) => l.name === 'conv_proj')!.layout).toBeUndefined();
  // The module itself returns (output, None): one part, in tokens.
  expect(shaped.find((l) => l.name === `${L0}.self_attention`)!.outputParts).toEqual([{ '0': [1, 17, 64] }]);
});

test('the MultiheadAttention module itself: its output is part :0 (tokens as maps) and equals the hook; the None weights are no part', async () => {
  const part = `${L1}.self_attention:0`;
  for (const layers of [[`${L1}.self_attention`], [part]]) {
    const res = await model.forward(x, { layers });
    expect(res.captures.map((c) => c.name)).toEqual([part]);
    expect(res.captures[0]).toMatchObject({
      part: '0',
      layout: 'tokens',
      sourceShape: [2, 17, 64],
      shape: [2, 64, 4, 4],
    });
    const want = oracle(x, [part]).captures.get(part)!;
    expect(want.shape).toEqual([2, 64, 4, 4]);
    expect(maxAbsDiff(res.captures[0].data, want.data)).toBeLessThanOrEqual(1e-5);
  }
}, 120_000);

test('token captures (as maps) and attention weights equal the eager twin within 1e-5; rollout equals Python', async () => {
  const layers = [L0, W0, W1, `${L1}.mlp.0`];
  for (const optimize of [false, true]) {
    const res = await model.forward(x, { layers, optimize });
    const py = oracle(x, layers);
    for (const name of layers) {
      const c = res.get(name);
      const want = py.captures.get(name)!;
      expect([name, c.shape]).toEqual([name, want.shape]);
      expect([name, maxAbsDiff(c.data, want.data)]).toEqual([name, expect.any(Number)]);
      expect(maxAbsDiff(c.data, want.data)).toBeLessThanOrEqual(1e-5);
    }
    expect(res.get(L0)).toMatchObject({ layout: 'tokens', sourceShape: [2, 17, 64], shape: [2, 64, 4, 4] });
    // Weights rows are softmax distributions.
    const w = res.get(W0);
    for (let r = 0; r < w.data.length / 17; r += 7) {
      let s = 0;
      for (let j = 0; j < 17; j++) s += w.data[r * 17 + j];
      expect(Math.abs(s - 1)).toBeLessThan(1e-5);
    }
    const rollout = attentionRollout([res.get(W0), res.get(W1)]);
    expect(rollout.shape).toEqual([2, 17, 17]);
    expect(maxAbsDiff(rollout.data, py.rollout)).toBeLessThanOrEqual(1e-5);
    const cls = classTokenRow(rollout, 1, [4, 4]);
    expect(cls[1]).toEqual(rollout.data.slice(17 * 17 + 1, 17 * 17 + 17));
  }
}, 120_000);

test('capturing the attention weights leaves the block outputs and the model output bit-identical', async () => {
  for (const optimize of [false, true]) {
    const plain = await model.forward(x, { layers: [L0, L1], optimize });
    const withWeights = await model.forward(x, { layers: [L0, W0, L1, W1], optimize });
    for (const name of [L0, L1])
      expect(
        Buffer.compare(Buffer.from(plain.get(name).data.buffer), Buffer.from(withWeights.get(name).data.buffer)),
      ).toBe(0);
    expect(Buffer.compare(Buffer.from(plain.output!.data.buffer), Buffer.from(withWeights.output!.data.buffer))).toBe(
      0,
    );
  }
  // And the output of a forward with no hooks at all.
  const bare = await model.forward(x, { optimize: false });
  const hooked = await model.forward(x, { layers: [W0, W1], optimize: false });
  expect(Buffer.compare(Buffer.from(bare.output!.data.buffer), Buffer.from(hooked.output!.data.buffer))).toBe(0);
});

test('Grad-CAM on a token layer drops the class token and equals Python (reshape_transform) within 1e-5', async () => {
  // The last block's ln_1, as pytorch-grad-cam advises: after the last attention only the class
  // token reaches the head, so a later layer's patch tokens get no gradient (an all-zero CAM).
  const cam = await model.gradcam(x, { layer: `${L1}.ln_1` });
  expect(cam.shape).toEqual([2, 4, 4]);
  const py = oracle(x, [`${L1}.ln_1`]);
  expect(maxAbsDiff(cam.data, py.gradcam!)).toBeLessThanOrEqual(1e-5 * Math.max(1, ...Array.from(py.gradcam!)));
  expect(Math.max(...Array.from(cam.data))).toBeGreaterThan(0);
}, 60_000);

test('attention weights of a module that is not MultiheadAttention are an unknown layer', async () => {
  await expect(model.capture(x, `${L0}.mlp.weights`)).rejects.toMatchObject({ code: 'UNKNOWN_LAYER' });
});

test('featscope attention writes the rollout and per-head pictures, and refuses a CNN with NOT_A_TRANSFORMER', () => {
  const out = fs.mkdtempSync(path.join(CACHE, 'attention-cli-'));
  const cli = path.join(ROOT, 'dist', 'cli', 'main.js');
  const dog = path.join(ROOT, 'test', 'fixtures', 'images', 'dog.jpg');
  try {
    execFileSync(process.execPath, [cli, 'attention', dog, '-m', VIT, '--layers', `${L0}.self_attention`, '-o', out], {
      stdio: 'pipe',
    });
    const json = JSON.parse(fs.readFileSync(path.join(out, 'attention.json'), 'utf8'));
    const rec = JSON.stringify(json);
    expect(rec).toContain('dog.attention-rollout.png');
    expect(fs.readFileSync(path.join(out, 'dog.attention-rollout.png')).subarray(1, 4).toString()).toBe('PNG');
    // Rollout up to the last layer asked for: only the first here.
    expect(rec).toContain(`"layers":["${W0}"]`);
    expect(fs.existsSync(path.join(out, `dog.attention-${W0}.png`))).toBe(true);
    let stderr = '';
    try {
      ensureTestModels();
      execFileSync(process.execPath, [cli, 'attention', dog, '-m', MODELS.scripted, '-o', out], { stdio: 'pipe' });
    } catch (e) {
      stderr = String((e as { stderr: Buffer }).stderr);
    }
    expect(stderr).toContain('NOT_A_TRANSFORMER');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 120_000);
