/**
 * Sharding: `--shard i/N` (and JOB_COMPLETION_INDEX, Slurm's array variables) split a folder
 * deterministically; `featscope merge` of 4 shards equals one run over the folder (stats exactly),
 * and re-running a shard, as a retried pod does, changes nothing.
 */
import * as fs from 'fs';
import * as path from 'path';
import { nameInputs } from '../../lib/cli/inputs';
import { parseShard, selectShard } from '../../lib/cli/shard';
import { MODELS, ensureTestModels } from '../support/models';
import { DOG, ensureBuilt, runCli, tempDir } from '../support/cli';

const FIXTURES = path.dirname(DOG);
let dir: string;
let photos: string;

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
  dir = tempDir('shard');
  photos = path.join(dir, 'photos');
  fs.mkdirSync(path.join(photos, 'sub'), { recursive: true });
  for (const f of fs.readdirSync(FIXTURES))
    if (/\.(jpg|png)$/.test(f)) fs.copyFileSync(path.join(FIXTURES, f), path.join(photos, f));
  // Copies: equal scores, so the top images' tie-break (earlier file first) is tested too.
  fs.copyFileSync(DOG, path.join(photos, 'sub', 'dog2.jpg'));
  fs.copyFileSync(path.join(FIXTURES, 'chelsea.png'), path.join(photos, 'sub', 'zz.png'));
});

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCli([...args, '--model', MODELS.scripted, '--device', 'cpu'], { env });

test('the split: each image in one shard, the same from any working directory, stable when images are added', () => {
  const files = ['a.jpg', 'b.jpg', 'sub/c.jpg', 'sub/d.png', 'e.png', 'f.jpg', 'g.jpg', 'h.jpg'].map((f) =>
    path.join(photos, f),
  );
  const shardsOf = (list: string[], root: string) => {
    const inputs = nameInputs(list);
    const owner = new Map<string, number>();
    for (let i = 0; i < 4; i++)
      for (const inp of selectShard([root], inputs, { index: i, count: 4, from: 'test' }).inputs) {
        expect(owner.has(inp.source)).toBe(false);
        owner.set(path.relative(root, inp.source), i);
      }
    return owner;
  };
  const before = shardsOf(files, photos);
  expect(before.size).toBe(files.length);
  expect(new Set(before.values()).size).toBeGreaterThan(1);
  // The same folder mounted elsewhere: the same split.
  const elsewhere = path.join(tempDir('shard-mounted'), 'data', 'photos');
  fs.mkdirSync(elsewhere, { recursive: true });
  const moved = shardsOf(
    files.map((f) => f.replace(photos, elsewhere)),
    elsewhere,
  );
  expect(moved).toEqual(before);
  // Added images do not move the others.
  const after = shardsOf([...files, path.join(photos, 'new1.jpg'), path.join(photos, 'sub', 'new2.jpg')], photos);
  for (const [f, s] of before) expect(after.get(f)).toBe(s);

  expect(
    parseShard({}, 'stats', { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_MIN: '4', SLURM_ARRAY_TASK_COUNT: '4' }),
  ).toMatchObject({ index: 1, count: 4 });
  expect(parseShard({ shards: '8' }, 'stats', { JOB_COMPLETION_INDEX: '7' })).toMatchObject({ index: 7, count: 8 });
  expect(parseShard({}, 'stats', {})).toBeUndefined();
  expect(() => parseShard({ shard: '4/4' }, 'stats', {})).toThrow(
    /shard index must be an integer from 0 to 3, not "4\/4"/,
  );
  expect(() => parseShard({ shard: 'x' }, 'stats', {})).toThrow(/--shard takes I\/N/);
  expect(() => parseShard({ shards: '4' }, 'stats', {})).toThrow(
    /JOB_COMPLETION_INDEX.*not set; outside Kubernetes give --shard I\/N/,
  );
});

test('stats: 4 shards merged equal one run over the folder, percentiles, pictures and report included; a re-run shard changes nothing', () => {
  // --exact-limit 4: each shard (about 2 images) keeps its means, but the 8 together take the sketch,
  // in one run and in the merge alike.
  const common = [
    '--layers',
    'layer1,layer4',
    '--examples',
    '2',
    '--top-images',
    '3',
    '--exact-limit',
    '4',
    '--report',
  ];
  const one = tempDir('shard-stats-one');
  expect(cli(['stats', photos, ...common, '--out', one]).code).toBe(0);
  const out = tempDir('shard-stats');
  for (let i = 0; i < 4; i++) {
    const r = cli(['stats', photos, ...common, '--out', out, '--shard', `${i}/4`]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`shard ${i}/4 \\(--shard\\): \\d+ of 8 inputs`));
  }
  const m = runCli(['merge', out, '--out', path.join(out, 'merged')]);
  expect(m.stderr).toMatch(/merge: 4 stats shards, 8 images/);
  expect(m.code).toBe(0);
  const a = JSON.parse(fs.readFileSync(path.join(one, 'stats.json'), 'utf8'));
  const merged = fs.readFileSync(path.join(out, 'merged', 'stats.json'), 'utf8');
  const b = JSON.parse(merged);
  expect(b.images).toBe(8);
  expect(b.layers.map((l: { name: string }) => l.name)).toEqual(['layer1', 'layer4']);
  for (let i = 0; i < a.layers.length; i++) {
    const x = a.layers[i],
      y = b.layers[i];
    expect(x.percentiles).toBe('sketch');
    expect(y.percentiles).toBe('sketch');
    expect(y.percentileAccuracy).toBe(0.01);
    expect(y.deadChannels).toEqual(x.deadChannels);
    expect(y.topImages).toEqual(x.topImages);
    expect(y.examplesPicture).toBe(x.examplesPicture);
    // Counts, maxima and the sketched percentiles: the same numbers; means to float64 rounding.
    for (const k of ['p50', 'p90', 'p99', 'max', 'silentShare']) expect(y.channel[k]).toEqual(x.channel[k]);
    (x.channel.mean as number[]).forEach((v, j) =>
      expect(Math.abs(v - y.channel.mean[j])).toBeLessThanOrEqual(1e-6 * Math.max(1e-6, Math.abs(v))),
    );
  }
  const { merged: from, ...rest } = b;
  expect(from.shards).toBe(4);
  expect(rest).toEqual({
    ...a,
    layers: rest.layers.map((l: object, i: number) => ({
      ...l,
      channel: { ...a.layers[i].channel, mean: (l as { channel: { mean: number[] } }).channel.mean },
    })),
  });
  // The copies tie; the earlier file comes first, as in one run.
  const dogTop = (a.layers[1].topImages as Array<Array<[string, number]>>).find((list) =>
    list.some(([s]) => s.endsWith('sub/dog2.jpg')),
  );
  if (dogTop)
    expect(dogTop.findIndex(([s]) => s.endsWith('/dog.jpg'))).toBeLessThan(
      dogTop.findIndex(([s]) => s.endsWith('sub/dog2.jpg')),
    );
  // The merge draws what one run draws: the same files, the example pictures the same images.
  const listing = (d: string) =>
    fs
      .readdirSync(d)
      .filter((f) => !f.startsWith('shard-') && f !== 'merged')
      .sort();
  expect(listing(path.join(out, 'merged'))).toEqual(listing(one));
  expect(listing(one)).toEqual([
    'examples-layer1.png',
    'examples-layer4.png',
    'report.html',
    'stats.json',
    'stats.png',
  ]);
  for (const f of ['examples-layer1.png', 'examples-layer4.png'])
    expect(fs.readFileSync(path.join(out, 'merged', f)).equals(fs.readFileSync(path.join(one, f)))).toBe(true);
  const report = fs.readFileSync(path.join(out, 'merged', 'report.html'), 'utf8');
  expect(report).toContain('UNTRAINED WEIGHTS');
  expect(report).toContain('Top images per channel · layer4');
  expect((report.match(/data:image\/png;base64,/g) ?? []).length).toBe(3);

  // A retried pod: shard 2 again, then merge again — the same bytes.
  expect(cli(['stats', photos, ...common, '--out', out, '--shard', '2/4']).code).toBe(0);
  expect(runCli(['merge', out, '--out', path.join(out, 'merged')]).code).toBe(0);
  expect(fs.readFileSync(path.join(out, 'merged', 'stats.json'), 'utf8')).toBe(merged);

  // The merge draws the example pictures: a top image or the model missing where it runs is named, with the fix.
  const copyShards = (edit: (state: { model?: { path: string }; files: Array<[number, string]> }) => void) => {
    const to = tempDir('shard-stats-moved');
    for (let i = 0; i < 4; i++) {
      const dirI = path.join(to, `shard-${i}-of-4`);
      fs.mkdirSync(dirI);
      const st = JSON.parse(fs.readFileSync(path.join(out, `shard-${i}-of-4`, 'stats-state.json'), 'utf8'));
      edit(st);
      fs.writeFileSync(path.join(dirI, 'stats-state.json'), JSON.stringify(st));
    }
    return runCli(['merge', to, '--out', path.join(to, 'merged')]);
  };
  const noImage = copyShards((st) => {
    st.files = st.files.map(([i, src]) => [i, src.replace(photos, '/nowhere/photos')]);
  });
  expect(noImage.code).not.toBe(0);
  expect(noImage.stderr).toMatch(
    /the merge draws the example pictures from the top images, but \/nowhere\/photos\/\S+ is not here; run the merge where the images are at the paths the shards saw/,
  );
  const noModel = copyShards((st) => {
    if (st.model) st.model.path = '/nowhere/model.pt';
  });
  expect(noModel.code).not.toBe(0);
  expect(noModel.stderr).toMatch(
    /the shards' model \/nowhere\/model\.pt, which cannot be loaded here .*; run the merge where the model and the images are/,
  );

  // States of the previous format (no sketches; per-image means up to 1,000 images) still merge.
  const old = tempDir('shard-stats-v1');
  for (let i = 0; i < 4; i++) {
    const dirI = path.join(old, `shard-${i}-of-4`);
    fs.mkdirSync(dirI);
    const summary = path.join(out, `shard-${i}-of-4`, 'stats.json'); // none for an empty shard
    if (fs.existsSync(summary)) fs.copyFileSync(summary, path.join(dirI, 'stats.json'));
    const st = JSON.parse(fs.readFileSync(path.join(out, `shard-${i}-of-4`, 'stats-state.json'), 'utf8'));
    const { exactLimit: _e, ...options } = st.options;
    const v1 = { ...st, format: 'featscope-stats-state/1', options, draw: undefined };
    for (const l of v1.layers ?? []) delete l.sketch;
    fs.writeFileSync(path.join(dirI, 'stats-state.json'), JSON.stringify(v1));
  }
  const v1Merge = runCli(['merge', old, '--out', path.join(old, 'merged')]);
  expect(v1Merge.code).toBe(0);
  const c = JSON.parse(fs.readFileSync(path.join(old, 'merged', 'stats.json'), 'utf8'));
  expect(c.layers.map((l: { percentiles: string }) => l.percentiles)).toEqual(['exact', 'exact']);
  expect(c.layers[1].channel.max).toEqual(a.layers[1].channel.max);
  const v1State = [0, 1, 2, 3]
    .map((i) => path.join(old, `shard-${i}-of-4`, 'stats-state.json'))
    .find((f) => JSON.parse(fs.readFileSync(f, 'utf8')).layers)!;
  const st1 = JSON.parse(fs.readFileSync(v1State, 'utf8'));
  st1.layers[0].means = null; // a v1 shard past 1,000 images
  fs.writeFileSync(v1State, JSON.stringify(st1));
  const refused = runCli(['merge', old, '--out', path.join(old, 'merged')]);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(
    /featscope-stats-state\/1\) has more than 1,000 images and no percentile sketch; rerun that shard/,
  );

  // A missing shard, or shards of two splits, are refused.
  fs.renameSync(path.join(out, 'shard-3-of-4'), path.join(dir, 'away'));
  const missing = runCli(['merge', out, '--out', tempDir('shard-missing')]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toMatch(/shard 3 of 4 missing \(not run, or still running\); run them, then merge again/);
});

test('render via JOB_COMPLETION_INDEX: 4 shards merge into one manifest and report equal to one run', () => {
  const common = ['--layers', 'layer1.0.conv1', '--report'];
  const one = tempDir('shard-render-one');
  expect(cli(['render', photos, ...common, '--out', one]).code).toBe(0);
  const out = tempDir('shard-render');
  for (let i = 0; i < 4; i++) {
    const r = cli(['render', photos, ...common, '--out', out, '--shards', '4'], { JOB_COMPLETION_INDEX: String(i) });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`shard ${i}/4 \\(--shards 4 with JOB_COMPLETION_INDEX=${i}\\)`));
  }
  expect(runCli(['merge', out]).code).toBe(0);
  const a = JSON.parse(fs.readFileSync(path.join(one, 'manifest.json'), 'utf8'));
  const read = () => JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  const b = read();
  expect(b.merged.shards).toBe(4);
  expect(b.counts).toEqual(a.counts);
  expect(b.options).toEqual(a.options);
  const strip = (r: { input: string; layers: Array<{ grid: string; topMaps: { file: string } }> }) => ({
    ...r,
    input: path.basename(r.input),
    layers: r.layers.map((l) => ({
      ...l,
      grid: path.basename(l.grid),
      topMaps: { ...l.topMaps, file: path.basename(l.topMaps.file) },
    })),
  });
  expect(b.images.map(strip)).toEqual(a.images.map(strip));
  for (const r of b.images) {
    expect(r.input).toMatch(/^shard-\d-of-4\//);
    expect(
      fs
        .readFileSync(path.join(out, r.layers[0].grid))
        .equals(fs.readFileSync(path.join(one, r.name, 'layer1.0.conv1.png'))),
    ).toBe(true);
  }
  const report = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  for (const r of b.images) expect(report).toContain(path.basename(r.source));
  expect((report.match(/data:image\/webp;base64,/g) ?? []).length).toBeGreaterThanOrEqual(16); // input and grid per image
  expect((report.match(/<i class="thumb"/g) ?? []).length).toBe(8 * 8); // the top channels' maps
  expect(report).toMatch(/8 rendered, 0 failed, over 4 shards/);

  // Shards written with --report-assets linked merge into a linked report: report_files/ beside it.
  const linked = tempDir('shard-render-linked');
  for (let i = 0; i < 2; i++)
    expect(
      cli(['render', photos, ...common, '--report-assets', 'linked', '--out', linked, '--shard', `${i}/2`]).code,
    ).toBe(0);
  expect(runCli(['merge', linked]).code).toBe(0);
  const linkedHtml = fs.readFileSync(path.join(linked, 'report.html'), 'utf8');
  expect(linkedHtml).not.toContain('data:image');
  const assets = fs.readdirSync(path.join(linked, 'report_files'));
  expect(assets).toHaveLength(8 * 3); // input, grid, top maps per image
  for (const a of assets) expect(linkedHtml).toContain(`report_files/${a}`);

  // Shard 1 re-run: the merged manifest is the same (but for its date).
  expect(cli(['render', photos, ...common, '--out', out, '--shard', '1/4']).code).toBe(0);
  expect(runCli(['merge', out]).code).toBe(0);
  const { created: _x, ...again } = read();
  const { created: _y, ...before } = b;
  expect(again).toEqual(before);
});

test('similarity: 4 shards merged give the CKA of one run over the folder', () => {
  const one = tempDir('shard-sim-one');
  expect(cli(['similarity', photos, '--layers', 'layer1,layer3,layer4', '--out', one]).code).toBe(0);
  const out = tempDir('shard-sim');
  for (let i = 0; i < 4; i++)
    expect(
      cli(['similarity', photos, '--layers', 'layer1,layer3,layer4', '--out', out, '--shard', `${i}/4`]).code,
    ).toBe(0);
  const m = runCli(['merge', out]);
  expect(m.code).toBe(0);
  expect(m.stderr).toMatch(/merge: 4 similarity shards, 8 images/);
  const a = JSON.parse(fs.readFileSync(path.join(one, 'similarity.json'), 'utf8'));
  const b = JSON.parse(fs.readFileSync(path.join(out, 'similarity.json'), 'utf8'));
  expect(b.images).toBe(8);
  expect([b.rows, b.columns, b.options]).toEqual([a.rows, a.columns, a.options]);
  (a.cka as number[][]).forEach((row, i) =>
    row.forEach((v, j) => expect(Math.abs(v - b.cka[i][j])).toBeLessThanOrEqual(1e-6 * Math.abs(v))),
  );
  expect(fs.statSync(path.join(out, 'similarity.png')).size).toBeGreaterThan(1000);
});
