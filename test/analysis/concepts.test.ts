// Concepts (NMF of a layer's activations over a folder) against scikit-learn's NMF on the same matrix,
// and the concepts CLI: a folder sharded 3 ways and merged equals one run.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, Model } from '../../lib';
import { conceptsFromWeights, fitConcepts, nmf, nnlsRows } from '../../lib/analysis';
import { type ConceptFit, fitConceptsWith } from '../../lib/analysis/concepts';
import { decodeNpy, encodeNpy } from '../../lib/npy';
import { preprocess } from '../../lib/preprocess';
import { startViewer } from '../../lib/viewer/server';
import { ensureBuilt, runCli, tempDir } from '../support/cli';
import { CACHE, ensureTestModels, MODELS, PYTHON, ROOT } from '../support/models';
import { withTempDir } from '../support/oracle';

const IMAGES = path.join(ROOT, 'test', 'fixtures', 'images');
const files = fs
  .readdirSync(IMAGES)
  .sort()
  .map((f) => path.join(IMAGES, f));
const K = 6;
const ITERATIONS = 100;

let model: Model;
/** layer4's post-ReLU activations over the fixture photos: rows image x position, columns channels. */
let A: Float32Array;
let n = 0;
let C = 0;
beforeAll(async () => {
  ensureTestModels();
  fs.mkdirSync(CACHE, { recursive: true });
  model = await loadModel(MODELS.scripted, { device: 'cpu' });
  const x = await preprocess(files);
  const [cap] = await model.capture(x, ['layer4']);
  const [N, c, h, w] = cap.shape;
  C = c;
  n = N * h * w;
  A = new Float32Array(n * C);
  for (let i = 0; i < N; i++)
    for (let ch = 0; ch < C; ch++)
      for (let p = 0; p < h * w; p++) A[(i * h * w + p) * C + ch] = Math.max(0, cap.data[(i * C + ch) * h * w + p]);
});
afterAll(() => model.dispose());

const rel = (U: ArrayLike<number>, W: ArrayLike<number>, k: number) => {
  let e = 0;
  let t = 0;
  for (let i = 0; i < n; i++)
    for (let c = 0; c < C; c++) {
      let r = 0;
      for (let j = 0; j < k; j++) r += U[i * k + j] * W[j * C + c];
      e += (A[i * C + c] - r) ** 2;
      t += A[i * C + c] ** 2;
    }
  return Math.sqrt(e / t);
};

function sklearn(dir: string): { W: Float64Array; Ut: Float64Array; errors: { fit: number; transform: number } } {
  fs.writeFileSync(path.join(dir, 'A.npy'), encodeNpy(A, [n, C]));
  execFileSync(PYTHON, [
    path.join(ROOT, 'test', 'support', 'nmf_oracle.py'),
    path.join(dir, 'A.npy'),
    String(K),
    String(ITERATIONS),
    dir,
  ]);
  const load = (f: string) => decodeNpy(fs.readFileSync(path.join(dir, f))).data as Float64Array;
  return {
    W: load('W.npy'),
    Ut: load('Ut.npy'),
    errors: JSON.parse(fs.readFileSync(path.join(dir, 'errors.json'), 'utf8')),
  };
}

test('NMF: reconstruction error within 1.05x scikit-learn NMF(init=nndsvda), and U with W fixed at least as good as its transform', () => {
  withTempDir('concepts-', (dir) => {
    const sk = sklearn(dir);
    expect(sk.errors.fit).toBeGreaterThan(0);
    const ours = nmf(A, n, C, K, { iterations: ITERATIONS, seed: 0 });
    const fit = rel(ours.U, ours.W, K);
    expect(fit).toBeLessThanOrEqual(1.05 * sk.errors.fit);
    // Every value non-negative.
    expect(ours.W.every((v) => v >= 0) && ours.U.every((v) => v >= 0)).toBe(true);
    // With scikit-learn's W fixed: featscope's exact NNLS against sklearn's transform (coordinate descent).
    const U = nnlsRows(A, n, C, sk.W, K);
    expect(rel(U, sk.W, K)).toBeLessThanOrEqual(sk.errors.transform * (1 + 1e-9));
    expect(rel(sk.Ut, sk.W, K)).toBeCloseTo(sk.errors.transform, 9);
    process.stderr.write(
      `concepts: layer4 ${n}x${C}, k=${K}, ${ITERATIONS} iterations: featscope ${fit.toFixed(6)} vs sklearn ${sk.errors.fit.toFixed(6)}; transform ${rel(U, sk.W, K).toFixed(6)} vs ${sk.errors.transform.toFixed(6)}\n`,
    );
  });
});

test('fitConcepts on the folder factorises the same matrix; transform equals NNLS with its W; conceptsFromWeights is the same transform', async () => {
  const concepts = await fitConcepts(model, files, { layer: 'layer4', k: K, iterations: ITERATIONS, seed: 0 });
  expect(concepts.W.length).toBe(K * C);
  const ref = nmf(A, n, C, K, { iterations: ITERATIONS, seed: 0 });
  for (let i = 0; i < ref.W.length; i++) expect(concepts.W[i]).toBeCloseTo(ref.W[i], 4);
  const fit = concepts.fit as { rows: number; relativeError: number; negativeShare: number };
  expect(fit.rows).toBe(n);
  expect(fit.negativeShare).toBe(0); // layer4 ends in a ReLU
  const x = await preprocess(files.slice(0, 2));
  const [cap] = await model.capture(x, ['layer4']);
  const maps = concepts.transform(cap);
  const [N, k, h, w] = maps.shape;
  expect([N, k, h, w]).toEqual([2, K, 7, 7]);
  const U = nnlsRows(A.subarray(0, 2 * 49 * C), 2 * 49, C, concepts.W, K);
  for (let i = 0; i < 2; i++)
    for (let t = 0; t < K; t++)
      for (let p = 0; p < 49; p++) expect(maps.data[(i * K + t) * 49 + p]).toBeCloseTo(U[(i * 49 + p) * K + t], 5);
  const again = conceptsFromWeights(concepts.W, [K, C], 'layer4').transform(cap);
  expect(Array.from(again.data)).toEqual(Array.from(maps.data));
  // A capture of another layer is refused with a code.
  const [l3] = await model.capture(x, ['layer3']);
  expect(() => concepts.transform(l3)).toThrow(expect.objectContaining({ code: 'SHAPE_MISMATCH' }));
  await expect(fitConcepts(model, files, { layer: 'layer4', k: 0 })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  });
});

describe('featscope concepts (CLI)', () => {
  const args = ['concepts', IMAGES, '--layer', 'layer4', '--k', '3', '--iterations', '50', '--fit-images', '4'];
  let dir: string;
  beforeAll(() => {
    ensureBuilt();
    dir = tempDir('concepts');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const json = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));
  /** concepts.json without what differs by design: where the per-image pictures are, the shard/merge records. */
  const comparable = (j: Record<string, unknown>) => {
    const {
      merged: _m,
      shard: _s,
      perImage,
      ...rest
    } = j as { perImage: Array<Record<string, unknown>> } & Record<string, unknown>;
    return { ...rest, perImage: perImage.map(({ picture: _p, ...r }) => r) };
  };

  test('a folder sharded 3 ways and merged equals one run; W from --concepts gives the same; shards with another W are refused', () => {
    const one = path.join(dir, 'one');
    let r = runCli([...args, '--report', '--out', one]);
    expect(r.stderr).not.toMatch(/unexpected/);
    expect(r.code).toBe(0);
    const single = json(path.join(one, 'concepts.json'));
    expect(single.images).toBe(files.length);
    expect(single.fit.images).toBe(4); // the seeded sample of 4 of the 6
    expect(single.perImage).toHaveLength(files.length);
    for (const f of ['concepts-W.npy', 'concept-0.png', 'report.html', 'dog.concepts.png'])
      expect(fs.existsSync(path.join(one, f))).toBe(true);
    const W = decodeNpy(fs.readFileSync(path.join(one, 'concepts-W.npy')));
    expect(W.shape).toEqual([3, 512]);

    const sharded = path.join(dir, 'sharded');
    for (let i = 0; i < 3; i++) {
      r = runCli([...args, '--shard', `${i}/3`, '--out', sharded]);
      expect(r.code).toBe(0);
    }
    r = runCli(['merge', sharded, '--out', sharded]);
    expect(r.stderr).toMatch(/3 concepts shards, 6 images/);
    expect(r.code).toBe(0);
    const merged = json(path.join(sharded, 'concepts.json'));
    expect(comparable(merged)).toEqual(comparable(single));
    expect(fs.readFileSync(path.join(sharded, 'concepts-W.npy'))).toEqual(
      fs.readFileSync(path.join(one, 'concepts-W.npy')),
    );
    for (const p of merged.perImage) expect(fs.existsSync(path.join(sharded, p.picture))).toBe(true);

    // W given: the same per-image concepts as the run that fitted it.
    const given = path.join(dir, 'given');
    r = runCli([...args, '--concepts', path.join(one, 'concepts-W.npy'), '--out', given]);
    expect(r.code).toBe(0);
    expect(comparable(json(path.join(given, 'concepts.json'))).perImage).toEqual(comparable(single).perImage);

    // One shard fitted with another seed: another W, and the merge says so.
    r = runCli([...args, '--shard', '1/3', '--seed', '7', '--out', sharded]);
    expect(r.code).toBe(0);
    r = runCli(['merge', sharded, '--out', sharded]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/MERGE_MISMATCH/);

    // A W file that is not a .npy.
    fs.writeFileSync(path.join(dir, 'bad.npy'), 'not numpy');
    r = runCli([...args, '--concepts', path.join(dir, 'bad.npy'), '--out', path.join(dir, 'bad')]);
    expect(r.code).toBe(2); // a bad argument: a usage error
    expect(r.stderr).toMatch(/FORMAT_UNSUPPORTED/);
  });
});

test('fitConceptsWith: every image is preprocessed by the given decoder (the viewer passes its slots and cache), and the fit equals fitConcepts', async () => {
  const some = files.slice(0, 4);
  const decoded: string[] = [];
  const mine = await fitConceptsWith(model, some, { layer: 'layer4', k: 3, seed: 0, batch: 2 }, async (source) => {
    decoded.push(source as string);
    return preprocess(source, { model });
  });
  expect(decoded.sort()).toEqual([...some].sort());
  const ref = await fitConcepts(model, some, { layer: 'layer4', k: 3, seed: 0, batch: 2 });
  expect(Array.from(mine.W)).toEqual(Array.from(ref.W));
  // A decoder's failure is that image's failure, as a bad file is: the rest are fitted.
  const failing = await fitConceptsWith(model, some, { layer: 'layer4', k: 3, seed: 0 }, async (source) => {
    if (source === some[1]) throw Object.assign(new Error('refused by the decoder'), { code: 'IMAGE_TOO_LARGE' });
    return preprocess(source, { model });
  });
  expect((failing.fit as ConceptFit).failed).toEqual([
    { source: some[1], code: 'IMAGE_TOO_LARGE', message: 'refused by the decoder' },
  ]);
});

test("the viewer's Concepts tab: the fit over the session's images, its pictures, a bad layer refused", async () => {
  const some = files.slice(0, 3);
  const viewer = await startViewer({ images: some, models: [MODELS.scripted], device: 'cpu', port: 0 });
  try {
    const get = (q: string) => fetch(`http://${viewer.host}:${viewer.port}/api/concepts?token=${viewer.token}&${q}`);
    const r = await get('model=0&layer=layer4&k=3');
    expect(r.status).toBe(200);
    const s = (await r.json()) as { k: number; images: number; relativeError: number; concepts: unknown[] };
    const ref = await fitConcepts(model, some, { layer: 'layer4', k: 3, seed: 0 });
    expect(s.k).toBe(3);
    expect(s.images).toBe(3);
    expect(s.concepts).toHaveLength(3);
    expect(s.relativeError).toBeCloseTo((ref.fit as { relativeError: number }).relativeError, 6);
    const pic = await get('model=0&layer=layer4&k=3&concept=2');
    expect(pic.headers.get('content-type')).toBe('image/png');
    expect(
      Buffer.from(await pic.arrayBuffer())
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG');
    const img = await get('model=0&layer=layer4&k=3&image=i0');
    expect(img.headers.get('content-type')).toBe('image/png');
    const fc = await get('model=0&layer=fc&k=3');
    expect(fc.status).toBe(400);
    expect(((await fc.json()) as { error: { code: string } }).error.code).toBe('NOT_FEATURE_MAPS');
  } finally {
    await viewer.close();
  }
});
