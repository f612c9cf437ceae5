// Gradient-flow norms against the same quantities in Python torch (eager twin, autograd).
import * as path from 'path';
import * as fs from 'fs';
import { gradientFlow, renderFlowChart } from '../../lib/analysis';
import { MODELS, cpuModelForTests, syntheticInput } from '../support/models';
import { runOracle, withTempDir, writeF32 } from '../support/oracle';

interface OracleFlow {
  loss: number;
  classes: number[];
  layers: Record<string, { activationNorm: number; gradNorm: number; gradMeanAbs: number }>;
  parameters: Record<string, { norm: number; gradNorm: number }>;
}

function pythonFlow(x: { data: Float32Array; shape: number[] }, layers: string[], classes: number[]): OracleFlow {
  return withTempDir('flow-', (dir) => {
    writeF32(path.join(dir, 'in.f32'), x.data);
    runOracle('flow_oracle.py', [
      MODELS.scripted,
      path.join(dir, 'in.f32'),
      x.shape.join(','),
      path.join(dir, 'out.json'),
      layers.join(','),
      ...classes.map(String),
    ]);
    return JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8')) as OracleFlow;
  });
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

const scripted = cpuModelForTests();

test.each([
  ['top-1 targets', [] as number[]],
  ['given classes', [17, 402]],
])('layer and parameter norms equal Python to 1e-3 relative (%s)', async (_t, classes) => {
  const layers = [
    'conv1',
    'layer1.0.conv1',
    'layer1.0.relu',
    'layer2.0.downsample.0',
    'layer3',
    'layer4.1.conv2',
    'fc',
  ];
  const x = syntheticInput(2, 128, 128, 21);
  const flow = await gradientFlow(scripted(), x, { layers, classes: classes.length ? classes : undefined });
  const py = pythonFlow(x, layers, classes);
  expect(flow.classes.map((c) => c.class)).toEqual(py.classes);
  expect(rel(flow.lossValue, py.loss)).toBeLessThan(1e-3);
  // layer1.0.relu is called twice: both calls are reported, as layer1.0.relu and layer1.0.relu#1.
  expect(flow.layers.map((l) => l.name).sort()).toEqual(Object.keys(py.layers).sort());
  for (const l of flow.layers) {
    const p = py.layers[l.name];
    expect(rel(l.activationNorm, p.activationNorm)).toBeLessThan(1e-3);
    expect(rel(l.gradNorm, p.gradNorm)).toBeLessThan(1e-3);
    expect(rel(l.gradMeanAbs, p.gradMeanAbs)).toBeLessThan(1e-3);
  }
  expect(flow.parameters.length).toBe(Object.keys(py.parameters).length);
  for (const p of flow.parameters) {
    const q = py.parameters[p.name];
    expect(q).toBeDefined();
    expect(rel(p.norm, q.norm)).toBeLessThan(1e-3);
    // Gradients of BatchNorm biases ahead of a ReLU can be tiny sums of cancelling terms: compare absolutely there.
    expect(Math.abs(p.gradNorm - q.gradNorm)).toBeLessThan(1e-3 * Math.max(q.gradNorm, 1e-3));
  }
});

test('default layers are the conv and linear layers in call order; the chart renders', async () => {
  const x = syntheticInput(1, 96, 96, 2);
  const flow = await gradientFlow(scripted(), x);
  expect(flow.layers).toHaveLength(21);
  expect(flow.layers[0].name).toBe('conv1');
  expect(flow.layers[20].name).toBe('fc');
  expect(flow.weights.trained).toBe(false);
  const chart = await renderFlowChart(scripted(), flow, { subject: 'synthetic' });
  expect(chart.png.subarray(1, 4).toString()).toBe('PNG');
  expect(chart.width).toBeGreaterThanOrEqual(900);
});
