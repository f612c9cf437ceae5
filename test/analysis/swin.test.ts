// Swin (torchvision swin_t, scripted on torchvision 0.14, untrained, 64 px input): its channel-last
// outputs [N, H, W, C] are listed with their layout and captured as [N, C, H, W] maps equal to a
// Python forward hook on the eager twin (test/support/swin_oracle.py).
import * as fs from 'fs';
import * as path from 'path';
import { attentionLayers, loadModel, tokenGrid, type Model } from '../../lib';
import { CACHE, exportedModel, maxAbsDiff, syntheticInput } from '../support/models';
import { readF32, runOracle, withTempDir, writeF32 } from '../support/oracle';

const SWIN = path.join(CACHE, 'swin_t-64.pt');

let model: Model;
beforeAll(async () => {
  model = await loadModel(exportedModel(SWIN, ['--arch', 'swin_t', '--size', '64']), { device: 'cpu' });
}, 300_000);
afterAll(() => model?.dispose());

test('layers() lists the channel-last outputs with their maps; a convolution and the head stay plain', async () => {
  const layers = await model.layers({ inputSize: 64 });
  const get = (name: string) => layers.find((l) => l.name === name)!;
  expect(get('features.1.0')).toMatchObject({
    outputShapes: [[1, 16, 16, 96]],
    layout: 'channels-last',
    mapShapes: [[1, 96, 16, 16]],
  });
  expect(get('features.5.0')).toMatchObject({ layout: 'channels-last', mapShapes: [[1, 384, 4, 4]] });
  expect(get('norm')).toMatchObject({ layout: 'channels-last', mapShapes: [[1, 768, 2, 2]] });
  expect(get('features.0.0').outputShapes).toEqual([[1, 96, 16, 16]]);
  expect(get('features.0.0').layout).toBeUndefined();
  expect(get('permute').layout).toBeUndefined();
  expect(get('head').layout).toBeUndefined();
});

test('captures of channel-last layers equal a Python hook (permuted to NCHW) within 1e-5', async () => {
  const x = syntheticInput(2, 64, 64, 9);
  const layers = ['features.1.0', 'features.3.1.mlp.0', 'features.7'];
  const { shapes, wants } = withTempDir('swin-', (dir) => {
    const inPath = path.join(dir, 'input.f32');
    writeF32(inPath, x.data);
    runOracle('swin_oracle.py', [SWIN, inPath, x.shape.join(','), dir, ...layers]);
    return {
      shapes: JSON.parse(fs.readFileSync(path.join(dir, 'shapes.json'), 'utf8')) as number[][],
      wants: layers.map((_, i) => readF32(path.join(dir, `${i}.f32`))),
    };
  });
  const caps = await model.capture(x, layers, { optimize: false });
  expect(caps.map((c) => c.name)).toEqual(layers);
  let worst = 0;
  for (const [i, c] of caps.entries()) {
    const want = wants[i];
    expect({ name: c.name, shape: c.shape, layout: c.layout }).toEqual({
      name: c.name,
      shape: shapes[i],
      layout: 'channels-last',
    });
    expect(c.sourceShape).toEqual([shapes[i][0], shapes[i][2], shapes[i][3], shapes[i][1]]);
    const scale = Math.max(1, ...Array.from(want, Math.abs));
    const d = maxAbsDiff(c.data, want) / scale;
    worst = Math.max(worst, d);
    expect(d).toBeLessThanOrEqual(1e-5);
  }
  console.log(`swin captures: max rel diff ${worst.toExponential(2)}`);
}, 120_000);

test("attention refuses Swin naming why (windowed attention, not nn.MultiheadAttention) and what works instead; the model's attention layers are none", async () => {
  expect(() => tokenGrid(model)).toThrow(
    expect.objectContaining({
      code: 'NOT_A_TRANSFORMER',
      message: expect.stringMatching(/windowed transformer \(swin_t\).*featscope gradcam/),
    }),
  );
  expect(await attentionLayers(model)).toEqual([]);
});
