// CUDA graphs (native/cuda_graphs.cc): the second forward of a (layers, options, input shape)
// combination is captured into a CUDA graph and replayed from then on. The oracle is the same
// model's eager forward on the same GPU (cudaGraphs: false), which the GPU suite's other tests hold
// to Python hooks. Runs where libtorch sees CUDA; skips elsewhere.
import { cuda, loadModel, Model } from '../../lib';
import { edgeModel, ensureTestModels, MODELS, maxAbsDiff, syntheticInput } from '../support/models';

const hasCuda = (() => {
  try {
    return cuda.available();
  } catch {
    return false;
  }
})();
const describeGpu = hasCuda ? describe : describe.skip;
if (!hasCuda) test('CUDA graph tests skipped: libtorch sees no CUDA device', () => expect(hasCuda).toBe(false));

function relDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  return maxAbsDiff(a, b) / Math.max(scale, 1e-12);
}

const LAYERS = ['layer1', 'layer2.0.relu', 'layer4', 'fc'];
// cuDNN/cuBLAS with TF32 (precision 'fast'), as elsewhere in the GPU suite.
const TF32 = 2e-2;

describeGpu('CUDA graphs', () => {
  let graphs: Model;
  let eager: Model;
  beforeAll(async () => {
    ensureTestModels();
    graphs = await loadModel(MODELS.scripted, { device: 'cuda' });
    eager = await loadModel(MODELS.scripted, { device: 'cuda', cudaGraphs: false });
  });
  afterAll(() => {
    graphs?.dispose();
    eager?.dispose();
  });

  function expectSame(
    got: Awaited<ReturnType<Model['forward']>>,
    want: Awaited<ReturnType<Model['forward']>>,
    tol: number,
  ) {
    expect(got.captures.map((c) => c.name)).toEqual(want.captures.map((c) => c.name));
    for (const c of got.captures) {
      const d = relDiff(c.data, want.get(c.name).data);
      if (!(d < tol)) throw new Error(`${c.name}: relative difference ${d} (tolerance ${tol})`);
    }
    expect(relDiff(got.output!.data, want.output!.data)).toBeLessThan(tol);
  }

  test('graphs on and off give the same captures; each replay reads its own input and keeps its results', async () => {
    const a = syntheticInput(4, 224, 224, 7);
    const b = syntheticInput(4, 224, 224, 8);
    const r1 = await graphs.forward(a, { layers: LAYERS });
    const r2 = await graphs.forward(a, { layers: LAYERS });
    const r3 = await graphs.forward(b, { layers: LAYERS });
    // Seen once, then captured and replayed.
    expect([r1.cudaGraph, r2.cudaGraph, r3.cudaGraph]).toEqual([false, true, true]);
    const [ea, eb] = [await eager.forward(a, { layers: LAYERS }), await eager.forward(b, { layers: LAYERS })];
    expect([ea.cudaGraph, eb.cudaGraph]).toEqual([false, false]);
    expectSame(r1, ea, TF32);
    expectSame(r2, ea, TF32);
    expectSame(r3, eb, TF32);
    // The replay for b read b (not the static input left from a), and r2's arrays were copied out
    // before r3's replay overwrote the graph's outputs.
    expect(relDiff(ea.get('layer4').data, eb.get('layer4').data)).toBeGreaterThan(10 * TF32);
    expectSame(r2, ea, TF32);
    // Per call: cudaGraphs false runs eagerly.
    expect((await graphs.forward(a, { layers: LAYERS, cudaGraphs: false })).cudaGraph).toBe(false);
  });

  test('exact precision: replays equal the eager forward to fp32 rounding', async () => {
    const [g, e] = [
      await loadModel(MODELS.scripted, { device: 'cuda', precision: 'exact' }),
      await loadModel(MODELS.scripted, { device: 'cuda', precision: 'exact', cudaGraphs: false }),
    ];
    try {
      const x = syntheticInput(2, 224, 224, 9);
      await g.capture(x, ['layer3', 'avgpool']);
      const [replayed, want] = [
        await g.forward(x, { layers: ['layer3', 'avgpool'] }),
        await e.forward(x, { layers: ['layer3', 'avgpool'] }),
      ];
      // capture() and forward() are different combinations: the forward is seen once first.
      expect(replayed.cudaGraph).toBe(false);
      const again = await g.forward(x, { layers: ['layer3', 'avgpool'] });
      expect(again.cudaGraph).toBe(true);
      expectSame(again, want, 1e-4);
    } finally {
      g.dispose();
      e.dispose();
    }
  });

  test('concurrent replays of one graph each get their own input', async () => {
    const layers = ['layer2', 'fc'];
    const inputs = Array.from({ length: 6 }, (_, i) => syntheticInput(2, 224, 224, 20 + i));
    await graphs.forward(inputs[0], { layers });
    await graphs.forward(inputs[0], { layers }); // captured
    const got = await Promise.all(inputs.map((x) => graphs.forward(x, { layers })));
    expect(got.every((r) => r.cudaGraph)).toBe(true);
    for (let i = 0; i < inputs.length; i++) expectSame(got[i], await eager.forward(inputs[i], { layers }), TF32);
  });

  test('modules called in a loop: every call replays equal to the eager forward', async () => {
    const file = edgeModel('loopnet');
    const [g, e] = [
      await loadModel(file, { device: 'cuda', precision: 'exact' }),
      await loadModel(file, { device: 'cuda', precision: 'exact', cudaGraphs: false }),
    ];
    try {
      const layers = ['stem', 'block', 'block.bn', 'gate'];
      const x = syntheticInput(3, 16, 12, 4);
      await g.forward(x, { layers });
      const r = await g.forward(x, { layers });
      expect(r.cudaGraph).toBe(true);
      const want = await e.forward(x, { layers });
      expect(r.captures.map((c) => c.name)).toEqual(want.captures.map((c) => c.name));
      for (const c of r.captures) expect(relDiff(c.data, want.get(c.name).data)).toBeLessThan(1e-4);
    } finally {
      g.dispose();
      e.dispose();
    }
  });

  test('a forward that cannot be captured (an `if` on a tensor value: a host sync) runs eagerly and says so once', async () => {
    const file = edgeModel('branchy');
    const [g, e] = [
      await loadModel(file, { device: 'cuda', precision: 'exact' }),
      await loadModel(file, { device: 'cuda', precision: 'exact', cudaGraphs: false }),
    ];
    const saved = process.env.FEATSCOPE_DEBUG;
    process.env.FEATSCOPE_DEBUG = '1';
    const lines: string[] = [];
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    try {
      const x = syntheticInput(2, 16, 16, 5);
      const runs = [];
      for (let i = 0; i < 4; i++) runs.push(await g.forward(x, { layers: ['conv', 'extra'] }));
      expect(runs.map((r) => r.cudaGraph)).toEqual([false, false, false, false]);
      const notes = lines.filter((l) => /no CUDA graph for layers \[conv, extra\].*CUDA graph capture failed/.test(l));
      expect(notes).toHaveLength(1);
      expect(notes[0]).toMatch(
        /featscope: debug: model .*branchy\.pt: .*input \[2, 3, 16, 16\], the forward runs eagerly/,
      );
      const want = await e.forward(x, { layers: ['conv', 'extra'] });
      for (const r of runs) {
        expect(r.captures.map((c) => c.name)).toEqual(want.captures.map((c) => c.name));
        for (const c of r.captures) expect(maxAbsDiff(c.data, want.get(c.name).data)).toBeLessThanOrEqual(1e-6);
      }
    } finally {
      spy.mockRestore();
      if (saved === undefined) delete process.env.FEATSCOPE_DEBUG;
      else process.env.FEATSCOPE_DEBUG = saved;
      g.dispose();
      e.dispose();
    }
    // The failed capture left the GPU usable: another model still captures and replays.
    const x = syntheticInput(1, 224, 224, 3);
    await graphs.forward(x, { layers: ['layer1'] });
    expect((await graphs.forward(x, { layers: ['layer1'] })).cudaGraph).toBe(true);
  });
});

// Runs everywhere: the option is validated in JS, and on the CPU it changes nothing.
test('cudaGraphs: a boolean (else INVALID_ARGUMENT naming it); on the CPU no forward is a replay', async () => {
  ensureTestModels();
  await expect(
    loadModel(MODELS.scripted, { device: 'cpu', cudaGraphs: 'yes' as unknown as boolean }),
  ).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringContaining('for cudaGraphs'),
  });
  const m = await loadModel(MODELS.scripted, { device: 'cpu', cudaGraphs: true });
  try {
    const x = syntheticInput(1, 64, 64, 2);
    await expect(m.forward(x, { layers: ['layer1'], cudaGraphs: 1 as unknown as boolean })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('for cudaGraphs'),
    });
    const runs = [await m.forward(x, { layers: ['layer1'] }), await m.forward(x, { layers: ['layer1'] })];
    expect(runs.map((r) => r.cudaGraph)).toEqual([false, false]);
    const off = await m.forward(x, { layers: ['layer1'], cudaGraphs: false });
    expect(maxAbsDiff(off.get('layer1').data, runs[1].get('layer1').data)).toBe(0);
  } finally {
    m.dispose();
  }
});
