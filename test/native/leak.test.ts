// The leak run (issue 6): 10,000 captures with their results dropped, through every native path
// that allocates (plain captures, aliased captures, on-device reductions, stats, backward,
// parameters), keep RSS bounded. Figures go to docs/reliability.md.
import { loadModel, Model } from '../../lib';
import { ensureTestModels, MODELS, syntheticInput } from '../support/models';

let model: Model;
beforeAll(async () => {
  ensureTestModels();
  model = await loadModel(MODELS.scripted, { device: 'cpu' });
});
afterAll(() => model.dispose());

test('10,000 captures with results dropped keep RSS bounded', async () => {
  const x = syntheticInput(2, 64, 64);
  const calls: (() => Promise<unknown>)[] = [
    () => model.capture(x, ['conv1', 'layer1', 'layer1.1', 'layer4']), // layer1 and layer1.1 share one tensor
    () => model.capture(x, ['layer2', 'bn1'], { channels: { top: 8, by: 'mean' }, stats: true }),
    () => model.capture(x, ['layer1.0.relu#1'], { channels: [1, 5, 9], maxSize: 4 }),
    () => model.forward(x, { layers: ['fc'] }),
  ];
  const rounds = 10000;
  for (let i = 0; i < 200; i++) await calls[i % calls.length]();
  const before = process.memoryUsage().rss;
  let peak = before;
  for (let i = 0; i < rounds; i++) {
    await calls[i % calls.length]();
    if (i % 500 === 0) {
      peak = Math.max(peak, process.memoryUsage().rss);
      await model.backward(x, { layers: ['layer3'], inputGrad: true, parameterGrads: true });
      model.parameters();
    }
  }
  await new Promise((r) => setTimeout(r, 50));
  const after = process.memoryUsage().rss;
  peak = Math.max(peak, after);
  console.log(`leak run: ${rounds} captures; RSS ${(before / 2 ** 20).toFixed(0)} MiB before, ${(after / 2 ** 20).toFixed(0)} MiB after, peak ${(peak / 2 ** 20).toFixed(0)} MiB`);
  // The run handles about 5 GB of features in all; a leak of even one capture per call would
  // grow RSS by gigabytes.
  expect(after - before).toBeLessThan(256 * 1024 * 1024);
}, 900000);
