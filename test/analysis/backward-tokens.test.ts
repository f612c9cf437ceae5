// model.backward() on a ViT's token layers: layers reported as maps (class token dropped, patch
// tokens on the patch grid), as forward captures are, and an objective channel meaning the
// embedding dimension; against autograd on the eager twin (test/support/backward_tokens_oracle.py).
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, type Model } from '../../lib';
import { VIT_SMALL, ensureVitSmall, maxAbsDiff, syntheticInput } from '../support/models';
import { readF32, runOracle, withTempDir, writeF32 } from '../support/oracle';

const VIT = VIT_SMALL;
const L0 = 'encoder.layers.encoder_layer_0';
const L1 = 'encoder.layers.encoder_layer_1';

let model: Model;
beforeAll(async () => {
  model = await loadModel(ensureVitSmall(), { device: 'cpu' });
}, 120_000);
afterAll(() => model?.dispose());

interface OracleLayer {
  name: string;
  shape: number[];
  sourceShape: number[];
  activationNorm: number;
  gradNorm: number;
  gradMeanAbs: number;
}

function oracle(input: { data: Float32Array; shape: number[] }, objective: [string, number], layers: string[]) {
  return withTempDir('backward-tokens-', (dir) => {
    const inPath = path.join(dir, 'input.f32');
    writeF32(inPath, input.data);
    runOracle('backward_tokens_oracle.py', [
      VIT,
      inPath,
      input.shape.join(','),
      dir,
      objective[0],
      String(objective[1]),
      ...layers,
    ]);
    return {
      layers: JSON.parse(fs.readFileSync(path.join(dir, 'layers.json'), 'utf8')) as OracleLayer[],
      objective: readF32(path.join(dir, 'objective.f32')),
      inputGrad: readF32(path.join(dir, 'input_grad.f32')),
    };
  });
}

const x = syntheticInput(2, 32, 32, 7);
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

test('layer norms are over the maps (class token dropped), with layout and sourceShape, as Python', async () => {
  const layers = ['conv_proj', L0, `${L1}.ln_1`, `${L1}.mlp`];
  const py = oracle(x, [L0, 5], layers);
  const res = await model.backward(x, { layers });
  expect(res.layers.map((l) => l.name)).toEqual(layers);
  const capture = await model.capture(x, L0);
  let worst = 0;
  for (const [i, l] of res.layers.entries()) {
    const want = py.layers[i];
    worst = Math.max(worst, rel(l.activationNorm, want.activationNorm));
    if (want.gradNorm > 0)
      worst = Math.max(worst, rel(l.gradNorm, want.gradNorm), rel(l.gradMeanAbs, want.gradMeanAbs));
    expect({ name: l.name, shape: l.shape }).toEqual({ name: want.name, shape: want.shape });
    const token = want.sourceShape.length === 3;
    expect(l.layout).toBe(token ? 'tokens' : undefined);
    expect(l.sourceShape).toEqual(token ? want.sourceShape : undefined);
    expect(rel(l.activationNorm, want.activationNorm)).toBeLessThanOrEqual(1e-5);
    // The last block's patch tokens get no gradient (only the class token reaches the head).
    if (want.gradNorm === 0) expect(l.gradNorm).toBe(0);
    else {
      expect(rel(l.gradNorm, want.gradNorm)).toBeLessThanOrEqual(1e-5);
      expect(rel(l.gradMeanAbs, want.gradMeanAbs)).toBeLessThanOrEqual(1e-5);
    }
  }
  console.log(`backward tokens: layer norms max rel ${worst.toExponential(2)}`);
  // Some token layer has a gradient, so the comparison above is not all zeros.
  expect(res.layers.some((l) => l.layout === 'tokens' && l.gradNorm > 0)).toBe(true);
  // The same shape and layout as the forward capture of the layer.
  expect(res.layers[1]).toMatchObject({ shape: capture[0].shape, layout: capture[0].layout });
}, 60_000);

test('an objective channel of a token layer is an embedding channel of its maps, as Python', async () => {
  const py = oracle(x, [L0, 5], [L0]);
  const res = await model.backward(x, { objective: { layer: L0, channel: 5 }, inputGrad: true });
  const scale = (a: Float32Array) => Math.max(...Array.from(a, Math.abs));
  expect(maxAbsDiff(res.objective!, py.objective)).toBeLessThanOrEqual(1e-5 * scale(py.objective));
  expect(scale(py.inputGrad)).toBeGreaterThan(0);
  expect(maxAbsDiff(res.inputGrad!, py.inputGrad)).toBeLessThanOrEqual(1e-5 * scale(py.inputGrad));
  console.log(
    `backward tokens: objective rel ${(maxAbsDiff(res.objective!, py.objective) / scale(py.objective)).toExponential(2)}, ` +
      `input grad rel ${(maxAbsDiff(res.inputGrad!, py.inputGrad) / scale(py.inputGrad)).toExponential(2)}`,
  );
  // Channels are the embedding's 0..63 (they were the token positions 0..16).
  await expect(model.backward(x, { objective: { layer: L0, channel: 64 } })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/channel 64 does not exist.*0\.\.63/),
  });
}, 60_000);
