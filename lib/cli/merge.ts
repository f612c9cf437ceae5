/**
 * `featscope merge SHARD... --out DIR`: joins the folders that sharded runs wrote
 * (OUT/shard-i-of-N/). For `stats`, exactly: the shards keep their statistics in mergeable form
 * (stats-state.json), so the merged stats.json equals one run over all images, percentiles
 * included, and the merge draws what that run draws (stats.png, the example pictures with the
 * shards' model, report.html). For `render` and
 * `export`: one manifest.json (and report.html) over the shards' files, which stay where they are.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  PercentileSketch,
  checkLayerStatsState,
  ckaMatrix,
  mergeStatsStates,
  renderSimilarity,
  type LayerStatsState,
} from '../analysis';
import { FeatscopeError } from '../errors';
import type { ModelMetadata } from '../metadata';
import { loadModel, type Model } from '../model';
import { writeReport, type ReportImage } from '../report';
import { usage } from './args';
import { insideOut, insideShard, writeAtomic } from './files';
import { readBoundedFile } from '../fsutil';
import { mergeConcepts } from './concepts';
import { SIMILARITY_STATE_FORMAT } from './similarity';
import { STATE_FORMAT } from './stats';
import { writeStatsOutputs, type StatsDrawOptions } from './stats-output';
import { parseCommand, printHelp } from './command';
import { MERGE_COMMAND } from './commands';
import type { Failure } from './batch';

interface ShardDir {
  dir: string;
  index: number;
  count: number;
  command: string;
}

/** A shard's state or manifest: a regular file of at most 1 GiB (a FIFO or a device is refused, never waited on). */
const MAX_STATE_BYTES = 1 << 30;

function readJson(file: string): Record<string, unknown> {
  const bytes = readBoundedFile(
    file,
    MAX_STATE_BYTES,
    (reason) => new FeatscopeError('MERGE_INVALID', `${file} ${reason}; rerun that shard`),
  );
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new FeatscopeError(
      'MERGE_INVALID',
      `${file} cannot be read as JSON (${(err as Error).message}); rerun that shard`,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new FeatscopeError('MERGE_INVALID', `${file} does not hold a JSON object; rerun that shard`);
  return value as Record<string, unknown>;
}

/** [global index, source] pairs of a shard's state, checked. */
function checkFiles(state: Record<string, unknown>, where: string): Array<[number, string]> {
  const files = state.files;
  if (
    !Array.isArray(files) ||
    !files.every(
      (f) =>
        Array.isArray(f) &&
        f.length === 2 &&
        Number.isInteger(f[0]) &&
        f[0] >= 0 &&
        f[0] < 2 ** 31 &&
        typeof f[1] === 'string',
    )
  )
    throw new FeatscopeError(
      'MERGE_INVALID',
      `${where}: files is not a list of [index, path] pairs; the state was altered or damaged: rerun that shard`,
    );
  return files as Array<[number, string]>;
}

/** The shard folders named, or inside the folders named. */
function findShards(args: string[]): ShardDir[] {
  const found: ShardDir[] = [];
  const add = (dir: string): boolean => {
    const state = ['stats-state.json', 'similarity-state.json', 'concepts-state.json']
      .map((f) => path.join(dir, f))
      .find((f) => fs.existsSync(f));
    const manifest = path.join(dir, 'manifest.json');
    const file = state ?? (fs.existsSync(manifest) ? manifest : undefined);
    if (!file) return false;
    const j = readJson(file);
    const shard = (file === state ? j.shard : (j.options as Record<string, unknown> | undefined)?.shard) as
      { index?: number; count?: number } | undefined;
    if (!shard || !Number.isInteger(shard.index) || !Number.isInteger(shard.count)) return false;
    found.push({ dir, index: shard.index!, count: shard.count!, command: String(j.command) });
    return true;
  };
  for (const arg of args) {
    const dir = path.resolve(arg);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
      throw usage(
        `${JSON.stringify(arg)} is not a folder; give shard folders (shard-I-of-N) or the folder that holds them`,
        'merge',
      );
    if (add(dir)) continue;
    const subs = fs
      .readdirSync(dir)
      .filter((n) => /^shard-\d+-of-\d+$/.test(n))
      .sort();
    let any = false;
    for (const s of subs) any = add(path.join(dir, s)) || any;
    if (!any)
      throw usage(
        `${JSON.stringify(arg)} holds no shard output (a shard-I-of-N folder with stats-state.json or manifest.json); run the shards with --shard I/N first`,
        'merge',
      );
  }
  const counts = new Set(found.map((s) => s.count));
  if (counts.size > 1)
    throw usage(
      `the shards are of different splits (${[...counts].map((c) => `of ${c}`).join(', ')}); merge the shards of one run`,
      'merge',
    );
  const commands = new Set(found.map((s) => s.command));
  if (commands.size > 1)
    throw usage(
      `the shards come from different commands (${[...commands].join(', ')}); merge one command's shards at a time`,
      'merge',
    );
  const count = found[0].count;
  const seen = new Map<number, string>();
  for (const s of found) {
    if (seen.has(s.index))
      throw usage(`shard ${s.index}/${count} is given twice (${seen.get(s.index)} and ${s.dir})`, 'merge');
    seen.set(s.index, s.dir);
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i));
  if (missing.length)
    throw usage(
      `shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${count} missing (not run, or still running); run them, then merge again`,
      'merge',
    );
  return found.sort((a, b) => a.index - b.index);
}

export async function merge(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(MERGE_COMMAND, argv);
  if (values.help) return printHelp(MERGE_COMMAND);
  if (positionals.length === 0) throw usage('merge needs the shard folders, or the folder that holds them', 'merge');
  const shards = findShards(positionals);
  const out = path.resolve(values.out ?? path.dirname(shards[0].dir));
  fs.mkdirSync(out, { recursive: true });
  const command = shards[0].command;
  const result =
    command === 'stats'
      ? await mergeStats(shards, out)
      : command === 'similarity'
        ? await mergeSimilarity(shards, out)
        : command === 'concepts'
          ? await mergeConcepts(shards, out, readJson, modelFromSummary)
          : await mergeBatch(shards, out);
  if (values.json)
    process.stdout.write(
      `${JSON.stringify({ out, command: shards[0].command, shards: shards.length, ...result }, null, 2)}\n`,
    );
  process.stderr.write(
    `merge: ${shards.length} ${shards[0].command} shards, ${result.images} images; wrote ${result.files.map((f) => path.join(out, f)).join(', ')}\n`,
  );
  return 0;
}

/** A stand-in for the model in pictures and reports drawn from a shard's model summary. */
function modelFromSummary(summary: Record<string, unknown>): Model {
  const { path: p, device, type, trained: _t, weightsLabel: _w, classes: _c, commandLine: _l, ...metadata } = summary;
  return { path: p, device, type, metadata: metadata as ModelMetadata } as unknown as Model;
}

const STATE_V1 = 'featscope-stats-state/1';

/**
 * A version-1 state (before percentile sketches) in version 2's form: its per-image means, kept
 * while a shard had at most 1,000 images, give the sketch the shard would have built.
 */
function upgradeStatsState(state: Record<string, unknown>, dir: string): void {
  const layers = state.layers as LayerStatsState[] | null;
  for (const l of layers ?? []) {
    const means = l.means;
    if (!means)
      throw new FeatscopeError(
        'MERGE_INVALID',
        `${dir}/stats-state.json (${STATE_V1}) has more than 1,000 images and no percentile sketch; rerun that shard with this featscope`,
      );
    l.sketch = Array.from({ length: l.channels }, (_, ch) => {
      const sketch = new PercentileSketch();
      for (const row of means) sketch.add(row[ch]);
      return sketch.toJSON();
    });
  }
  state.options = { ...(state.options as object), exactLimit: 1000 };
  if (layers) {
    const o = readJson(path.join(dir, 'stats.json')).options as Omit<StatsDrawOptions, 'exactLimit' | 'report'>;
    state.draw = { ...o, exactLimit: 1000, report: false };
  }
  state.format = STATE_FORMAT;
}

/** The shards' model, for the example pictures: loaded from where the shards had it, with their --mean/--std/--size. */
async function shardModel(summary: Record<string, unknown>): Promise<Model> {
  const file = String(summary.path);
  let model: Model;
  try {
    model = await loadModel(file, { device: 'auto' });
  } catch (err) {
    const e = err as FeatscopeError;
    throw new FeatscopeError(
      e.code ?? 'MODEL_INVALID',
      `the merge draws the example pictures with the shards' model ${file}, which cannot be loaded here (${e.message}); run the merge where the model and the images are at the paths the shards saw, or run the shards with --examples 0 and without --report`,
    );
  }
  const given = (summary.commandLine as string[] | undefined) ?? [];
  if (given.some((k) => k !== 'labels')) model.metadata.input = summary.input as ModelMetadata['input'];
  if (given.length) model.metadata.commandLine = given as ModelMetadata['commandLine'];
  return model;
}

async function mergeStats(shards: ShardDir[], out: string): Promise<{ images: number; files: string[] }> {
  const states = shards.map((s) => ({ shard: s, state: readJson(path.join(s.dir, 'stats-state.json')) }));
  for (const { shard, state } of states) {
    if (state.format === STATE_V1) upgradeStatsState(state, shard.dir);
    if (state.format !== STATE_FORMAT)
      throw new FeatscopeError(
        'MERGE_INVALID',
        `${shard.dir}/stats-state.json is not ${STATE_FORMAT}; rerun that shard with this featscope`,
      );
  }
  const key = (s: Record<string, unknown>) => JSON.stringify(s.options);
  const first = states[0].state;
  for (const { shard, state } of states) {
    if (key(state) !== key(first))
      throw usage(
        `shard ${shard.index} ran with other options (${key(state)} vs ${key(first)}); rerun it with the same`,
        'merge',
      );
  }
  for (const { shard, state } of states) {
    const where = `${shard.dir}/stats-state.json`;
    checkFiles(state, where);
    if (state.layers !== null) {
      if (!Array.isArray(state.layers))
        throw new FeatscopeError('MERGE_INVALID', `${where}: layers is not a list; rerun that shard`);
      for (const l of state.layers) checkLayerStatsState(l, where);
    }
  }
  const ran = states.filter((s) => s.state.layers !== null);
  if (ran.length === 0) throw new FeatscopeError('NO_INPUTS', 'every shard was empty: no images to merge');
  const models = new Set(ran.map((s) => JSON.stringify((s.state.model as Record<string, unknown>).path)));
  if (models.size > 1) throw usage(`the shards ran different models (${[...models].join(', ')})`, 'merge');
  // The sources by their index in the whole input list (a sparse list).
  const sources: string[] = [];
  for (const { state } of states) for (const [i, src] of state.files as Array<[number, string]>) sources[i] = src;
  for (const { shard, state } of ran)
    for (const l of state.layers as LayerStatsState[])
      for (const list of l.top)
        for (const [file] of list)
          if (sources[file] === undefined)
            throw new FeatscopeError(
              'MERGE_INVALID',
              `${shard.dir}/stats-state.json: layer ${l.name} names image ${file} as a top image, but no shard read an image ${file}; rerun that shard`,
            );
  const exactLimit = (first.options as { exactLimit: number }).exactLimit;
  const merged = mergeStatsStates(
    ran.map((s) => s.state.layers as LayerStatsState[]),
    { exactLimit },
  );
  const failed = states.flatMap((s) => s.state.failed as Failure[]);
  const modelRecord = ran[0].state.model as Record<string, unknown>;
  const draw = ran[0].state.draw as StatsDrawOptions;
  // The example pictures need the model and the top images, as one run draws them.
  const pictures = draw.report || (draw.examples > 0 && merged.layers.some((l) => l.examples.some((e) => e.length)));
  if (pictures) {
    const missing = merged.layers
      .flatMap((l) => l.examples.flat())
      .map((e) => sources[e.file])
      .find((f) => !fs.existsSync(f));
    if (missing !== undefined)
      throw new FeatscopeError(
        'MERGE_INVALID',
        `the merge draws the example pictures from the top images, but ${missing} is not here; run the merge where the images are at the paths the shards saw, or run the shards with --examples 0 and without --report`,
      );
  }
  const model = pictures ? await shardModel(modelRecord) : modelFromSummary(modelRecord);
  try {
    const written = await writeStatsOutputs(
      model,
      {
        images: merged.images,
        failed,
        layers: merged.layers,
        weights: { trained: undefined, text: '' },
        state: merged.state,
      },
      sources,
      out,
      draw,
      { merged: { shards: shards.length, from: shards.map((s) => s.dir) } },
      modelRecord,
    );
    return { images: merged.images, files: written.files };
  } finally {
    if (pictures) model.dispose();
  }
}

interface BatchRecord {
  source: string;
  name: string;
  input?: string;
  layers?: Array<{ grid: string; overlay?: string; topMaps?: { file: string } } & Record<string, unknown>>;
  captures?: Array<{ file: string } & Record<string, unknown>>;
}

async function mergeBatch(shards: ShardDir[], out: string): Promise<{ images: number; files: string[] }> {
  const manifests = shards.map((s) => ({ shard: s, m: readJson(path.join(s.dir, 'manifest.json')) }));
  const signatureOf = (m: Record<string, unknown>) => {
    const { shard: _s, ...rest } = m.options as Record<string, unknown>;
    return JSON.stringify({ model: (m.model as Record<string, unknown>).path, options: rest, layers: m.layers });
  };
  for (const { shard, m } of manifests) {
    if (signatureOf(m) !== signatureOf(manifests[0].m))
      throw usage(
        `shard ${shard.index} ran with another model or options than shard 0; rerun it with the same`,
        'merge',
      );
  }
  const rel = (dir: string, file: unknown) =>
    path
      .relative(out, insideShard(dir, file, 'the manifest names'))
      .split(path.sep)
      .join('/');
  const images: BatchRecord[] = [];
  for (const { shard, m } of manifests) {
    if (!Array.isArray(m.images))
      throw new FeatscopeError('MERGE_INVALID', `${shard.dir}/manifest.json: images is not a list; rerun that shard`);
    for (const r of m.images as BatchRecord[]) {
      images.push({
        ...r,
        ...(r.input ? { input: rel(shard.dir, r.input) } : {}),
        ...(r.layers
          ? {
              layers: r.layers.map((l) => ({
                ...l,
                grid: rel(shard.dir, l.grid),
                ...(l.overlay ? { overlay: rel(shard.dir, l.overlay) } : {}),
                ...(l.topMaps ? { topMaps: { ...l.topMaps, file: rel(shard.dir, l.topMaps.file) } } : {}),
              })),
            }
          : {}),
        ...(r.captures ? { captures: r.captures.map((c) => ({ ...c, file: rel(shard.dir, c.file) })) } : {}),
      });
    }
  }
  // One order whatever the split: a folder's walk order (path segments compared one by one).
  images.sort((a, b) => compareSegments(a.source, b.source));
  const first = manifests[0].m;
  const failed = manifests.flatMap(({ m }) => m.failed as Failure[]);
  const interrupted = manifests.some(({ m }) => m.interrupted === true);
  const inputs = manifests.reduce((n, { m }) => n + Number((m.counts as { inputs: number }).inputs), 0);
  const { shard: _s, ...options } = first.options as Record<string, unknown>;
  const manifest = {
    featscope: first.featscope,
    created: new Date().toISOString(),
    command: first.command,
    trained: first.trained,
    model: first.model,
    options,
    layers: first.layers,
    merged: {
      shards: shards.length,
      from: shards.map((s) => path.relative(out, s.dir).split(path.sep).join('/') || '.'),
    },
    images,
    failed,
    counts: { inputs, done: images.length, failed: failed.length },
    interrupted,
    ...(manifests.some(({ m }) => Array.isArray(m.backoff))
      ? {
          backoff: manifests.flatMap(({ shard, m }) =>
            ((m.backoff ?? []) as object[]).map((e) => ({ shard: shard.index, ...e })),
          ),
        }
      : {}),
  };
  await writeAtomic(insideOut(out, 'manifest.json'), `${JSON.stringify(manifest, null, 1)}\n`);
  const files = ['manifest.json'];
  if (first.command === 'render' && shards.some((s) => fs.existsSync(path.join(s.dir, 'report.html')))) {
    const modelSummary = first.model as Record<string, unknown>;
    const model = modelFromSummary(modelSummary);
    async function* reportImages(): AsyncGenerator<ReportImage> {
      for (const r of images) {
        yield {
          source: r.source,
          input: path.join(out, r.input!),
          layers: r.layers!.map((l) => ({
            ...l,
            grid: path.join(out, l.grid),
            overlay: l.overlay && path.join(out, l.overlay),
            topMaps: l.topMaps && { ...l.topMaps, file: path.join(out, l.topMaps.file) },
          })) as unknown as ReportImage['layers'],
        };
      }
    }
    const o = options as Record<string, unknown>;
    // The merged report carries its pictures the way the shards' reports did (--report-assets).
    const linked = shards.some((s) => fs.existsSync(path.join(s.dir, 'report_files')));
    await writeReport(insideOut(out, 'report.html'), {
      title: 'featscope report',
      featscopeVersion: String(first.featscope),
      model: {
        path: String(modelSummary.path),
        device: String(modelSummary.device),
        type: String(modelSummary.type),
        metadata: model.metadata,
      },
      options: {
        layers: o.layers,
        channels: o.channels,
        colormap: o.colormap,
        resize: o.resize,
        images: `${images.length} rendered, ${failed.length} failed, over ${shards.length} shards`,
      },
      images: reportImages(),
      totalImages: images.length,
      failed,
      interrupted,
      assets: linked ? 'linked' : 'inline',
    });
    files.push('report.html');
    if (linked) files.push('report_files/');
  }
  return { images: images.length, files };
}

function compareSegments(a: string, b: string): number {
  const x = a.split(/[\\/]/),
    y = b.split(/[\\/]/);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return x.length - y.length;
}

async function mergeSimilarity(shards: ShardDir[], out: string): Promise<{ images: number; files: string[] }> {
  const states = shards.map((s) => ({ shard: s, state: readJson(path.join(s.dir, 'similarity-state.json')) }));
  const key = (s: Record<string, unknown>) =>
    JSON.stringify([
      s.options,
      (s.model as Record<string, unknown>).path,
      (s.otherModel as Record<string, unknown> | undefined)?.path,
    ]);
  for (const { shard, state } of states) {
    if (state.format !== SIMILARITY_STATE_FORMAT)
      throw new FeatscopeError(
        'MERGE_INVALID',
        `${shard.dir}/similarity-state.json is not ${SIMILARITY_STATE_FORMAT}; rerun that shard with this featscope`,
      );
    if (key(state) !== key(states[0].state))
      throw usage(
        `shard ${shard.index} ran with another model or options than shard 0; rerun it with the same`,
        'merge',
      );
  }
  type Side = Array<{ layer: string; channels: number; file: string }>;
  for (const { shard, state } of states) {
    const where = `${shard.dir}/similarity-state.json`;
    checkFiles(state, where);
    const sides = state.sides;
    if (
      !Array.isArray(sides) ||
      !sides.every(
        (side) =>
          Array.isArray(side) &&
          side.every(
            (l) =>
              l !== null &&
              typeof l === 'object' &&
              typeof l.layer === 'string' &&
              Number.isInteger(l.channels) &&
              l.channels >= 1 &&
              l.channels <= 1 << 20,
          ),
      )
    )
      throw new FeatscopeError(
        'MERGE_INVALID',
        `${where}: sides is not a list of [{layer, channels, file}] lists; the state was altered or damaged: rerun that shard`,
      );
  }
  // Rows in the order of the whole input list, as one run reads them.
  const rows: Array<{ global: number; source: string; state: number; row: number }> = [];
  states.forEach(({ state }, k) =>
    (state.files as Array<[number, string]>).forEach(([global, source], row) =>
      rows.push({ global, source, state: k, row }),
    ),
  );
  rows.sort((a, b) => a.global - b.global);
  const n = rows.length;
  if (n < 2) throw new FeatscopeError('NO_INPUTS', `CKA needs at least two readable images; the shards read ${n}`);
  const layout = states.find(({ state }) => (state.sides as Side[]).length > 0)!.state.sides as Side[];
  const features = states.map(({ shard, state }) =>
    (state.sides as Side[]).map(
      (side) =>
        new Map(
          side.map((l) => {
            // Exactly rows x channels float32 values, as the state declares: a truncated or padded
            // file would shift every row after it and give a silently wrong CKA.
            const file = insideShard(shard.dir, l.file, `the features of ${l.layer}`);
            const want = (state.files as unknown[]).length * l.channels * 4;
            const b = readBoundedFile(
              file,
              want,
              (reason) => new FeatscopeError('MERGE_INVALID', `${file} ${reason}; rerun that shard`),
            );
            if (b.length !== want)
              throw new FeatscopeError(
                'MERGE_INVALID',
                `${file} holds ${b.length} bytes, but ${(state.files as unknown[]).length} images x ${l.channels} channels of float32 need ${want}; the file is truncated or altered: rerun that shard`,
              );
            return [l.layer, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))] as const;
          }),
        ),
    ),
  );
  const sides = layout.map(
    (side, s) =>
      new Map(
        side.map(({ layer, channels: c }) => {
          const x = new Float32Array(n * c);
          rows.forEach((r, i) => x.set(features[r.state][s].get(layer)!.subarray(r.row * c, (r.row + 1) * c), i * c));
          return [layer, { x, c }] as const;
        }),
      ),
  );
  const first = states[0].state;
  const options = first.options as { layers: string[]; otherLayers: string[]; resize: string; other: boolean };
  const cka = ckaMatrix({ images: n, sides }, options.layers, options.otherLayers);
  const failed = states.flatMap(({ state }) => state.failed as Array<{ source: string; message: string }>);
  const model = modelFromSummary(first.model as Record<string, unknown>);
  const other = first.otherModel as Record<string, unknown> | undefined;
  const title = other
    ? `Layer similarity (linear CKA): ${path.basename(String(model.path))} vs ${path.basename(String(other.path))}`
    : undefined;
  const sim = {
    images: n,
    failed,
    rows: options.layers,
    columns: options.otherLayers,
    cka,
    weights: { trained: undefined, text: '' },
  };
  const pic = await renderSimilarity(model, sim, {
    ...(title ? { title } : {}),
    names: other ? { columns: path.basename(String(other.path)) } : {},
  });
  await writeAtomic(insideOut(out, 'similarity.png'), pic.png);
  const summary = {
    command: 'similarity',
    model: first.model,
    ...(other ? { otherModel: other } : {}),
    options: { layers: options.layers, otherLayers: options.otherLayers, batch: first.batch, resize: options.resize },
    images: n,
    failed,
    rows: options.layers,
    columns: options.otherLayers,
    cka: cka.map((r) => r.map((v) => Number(v.toPrecision(6)))),
    merged: { shards: shards.length, from: shards.map((s) => s.dir) },
  };
  await writeAtomic(insideOut(out, 'similarity.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return { images: n, files: ['similarity.json', 'similarity.png'] };
}
