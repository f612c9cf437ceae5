// The leak run (issue 6): 10,000 captures with their results dropped, through every native path
// that allocates (plain captures, aliased captures, on-device reductions, stats, backward,
// parameters), keep RSS bounded. Figures go to docs/reliability.md.
import { cpuModelForTests, syntheticInput } from '../support/models';

const scripted = cpuModelForTests();

test('10,000 captures with results dropped keep RSS bounded', async () => {
  const x = syntheticInput(2, 64, 64);
  const calls: (() => Promise<unknown>)[] = [
    () => scripted().capture(x, ['conv1', 'layer1', 'layer1.1', 'layer4']), // layer1 and layer1.1 share one tensor
    () => scripted().capture(x, ['layer2', 'bn1'], { channels: { top: 8, by: 'mean' }, stats: true }),
    () => scripted().capture(x, ['layer1.0.relu#1'], { channels: [1, 5, 9], maxSize: 4 }),
    () => scripted().forward(x, { layers: ['fc'] }),
  ];
  const rounds = 10000;
  // Warm-up: allocator pools, the graph cache and V8's heap settle in the first ~1,000 calls.
  for (let i = 0; i < 1000; i++) await calls[i % calls.length]();
  const rss = () => process.memoryUsage().rss;
  const before = rss();
  let atTwoThousand = 0;
  let peak = before;
  for (let i = 0; i < rounds; i++) {
    await calls[i % calls.length]();
    if (i % 500 === 0) {
      peak = Math.max(peak, rss());
      await scripted().backward(x, { layers: ['layer3'], inputGrad: true, parameterGrads: true });
      scripted().parameters();
    }
    if (i === 2000) atTwoThousand = rss();
  }
  await new Promise((r) => setTimeout(r, 50));
  const after = rss();
  peak = Math.max(peak, after);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  console.log(
    `leak run: ${rounds} captures after 1,000 warm-up calls; RSS ${mib(before)} before, ${mib(atTwoThousand)} at 2,000, ${mib(after)} after, peak ${mib(peak)}`,
  );
  // The run hands about 5 GB of features to JS; keeping even one capture per call would grow RSS
  // by gigabytes. No slope over the last 8,000 calls, and a bounded total.
  expect(after - atTwoThousand).toBeLessThan(64 * 1024 * 1024);
  expect(after - before).toBeLessThan(256 * 1024 * 1024);
}, 900000);
