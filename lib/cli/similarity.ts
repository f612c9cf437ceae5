/** `featscope similarity`: linear CKA between layers (of one model, or of two) over many images. */
import * as fs from 'fs';
import * as path from 'path';
import { analysisPage, renderSimilarity, writeAnalysisReport } from '../analysis';
import {
  PooledRows,
  capturePooled,
  checkSimilarityOptions,
  similarityOf,
  type FeatureSide,
  type PooledFeatures,
} from '../analysis/similarity';
import { type Model } from '../model';
import { parseDevice, parsePositiveInt, parseResize, usage, parseReportAssets, parseList } from './args';
import { loadCliModel } from './model-options';
import { insideOut, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { modelSummary } from './manifest';
import { Progress } from './progress';
import { asFailures, endRun } from './summary';
import { runOverSet } from './image-run';
import { announceShard, parseShard, selectShard, shardOut, shardRecord, type Shard } from './shard';
import type { InputImage } from './inputs';
import { parseCommand, printHelp } from './command';
import { SIMILARITY_COMMAND } from './commands';

const list = (v: string | undefined) => (v === undefined ? undefined : parseList(v));

export async function similarity(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(SIMILARITY_COMMAND, argv);
  if (values.help) return printHelp(SIMILARITY_COMMAND);
  const reportAssets = parseReportAssets(values['report-assets'], 'similarity');
  if (positionals.length === 0)
    throw usage('similarity needs images, a folder or a glob (at least two images)', 'similarity');
  const layers = list(values.layers) ?? ['layer1', 'layer2', 'layer3', 'layer4'];
  const otherPath = values['other-model'];
  const otherLayers = list(values['other-layers']);
  if (otherLayers && !otherPath) throw usage('--other-layers needs --other-model', 'similarity');
  const batch = parsePositiveInt(values.batch, '--batch', 16, 1024, 'similarity');
  const resize = parseResize(values.resize, 'similarity');
  const device = parseDevice(values.device, 'similarity');
  const shard = parseShard(values, 'similarity');
  const outBase = path.resolve(values.out ?? 'featscope-out');
  const out = shardOut(outBase, shard);
  const all = await expandInputs(positionals, { skip: outBase });
  const { inputs, indices } = selectShard(positionals, all, shard);
  announceShard('similarity', shard, all.length, inputs.length, out);
  const model = await loadCliModel(values, 'similarity', { device });
  let other: Model | undefined;
  const progress = new Progress({ total: inputs.length });
  try {
    if (otherPath) other = await loadCliModel({ ...values, labels: undefined }, 'similarity', { device }, otherPath);
    fs.mkdirSync(out, { recursive: true });
    const options = {
      layers,
      batch,
      resize,
      ...(other ? { other: { model: other, layers: otherLayers ?? layers } } : {}),
    };
    const sources = inputs.map((i) => i.source);
    // A shard may hold one image (or none): CKA is computed when `featscope merge` stacks the shards.
    const { sides } = checkSimilarityOptions(model, sources, options, shard ? 0 : 2);
    const pooled = inputs.length ? await pooledOf(inputs, out, model, sides, batch, resize, progress) : undefined;
    if (pooled === 'interrupted') return endRun({ command: 'similarity', stopped: true });
    if (shard) {
      return await writeSimilarityShard(out, shard, all.length, inputs, indices, model, other, pooled, {
        layers,
        otherLayers: otherLayers ?? layers,
        batch,
        resize,
        json: Boolean(values.json),
      });
    }
    const sim = similarityOf(pooled!, sides, inputs.length);
    progress.note('writing report…');
    const pic = await renderSimilarity(model, sim, { names: other ? { columns: path.basename(other.path) } : {} });
    await writeAtomic(insideOut(out, 'similarity.png'), pic.png);
    const summary = {
      command: 'similarity',
      model: modelSummary(model),
      ...(other ? { otherModel: modelSummary(other) } : {}),
      options: { layers, otherLayers: sim.columns, batch, resize },
      images: sim.images,
      failed: sim.failed,
      rows: sim.rows,
      columns: sim.columns,
      cka: sim.cka.map((r) => r.map((v) => Number(v.toPrecision(6)))),
    };
    await writeAtomic(insideOut(out, 'similarity.json'), `${JSON.stringify(summary, null, 2)}\n`);
    let report: string | undefined;
    if (values.report) {
      report = insideOut(out, 'report.html');
      await writeAnalysisReport(
        report,
        analysisPage(model, 'featscope layer similarity', { images: sim.images, layers: layers.join(', ') }, [
          {
            heading: 'Linear CKA',
            images: [{ png: pic.png, caption: 'Channel means per image and layer; CKA between each pair of layers' }],
          },
        ]),
        reportAssets,
      );
    }
    const files = ['similarity.png', 'similarity.json'].map((f) => insideOut(out, f));
    if (report) files.push(report);
    return endRun({
      command: 'similarity',
      json: Boolean(values.json),
      out,
      total: inputs.length,
      summary: { report, ...summary },
      outcome: { done: sim.images, skipped: 0, failed: asFailures(sim.failed), interrupted: false },
      files,
    });
  } finally {
    model.dispose();
    other?.dispose();
  }
}

export const SIMILARITY_STATE_FORMAT = 'featscope-similarity-state/1';

/**
 * A shard's part of a similarity run: each image's channel means per layer (what CKA is computed
 * from), as float32 files, and similarity-state.json naming the rows' images by their index in the
 * whole input list. `featscope merge` stacks the shards' rows in that order and computes CKA.
 */
async function writeSimilarityShard(
  out: string,
  shard: Shard,
  total: number,
  inputs: InputImage[],
  indices: number[],
  model: Model,
  other: Model | undefined,
  pooled: PooledFeatures | undefined,
  o: {
    layers: string[];
    otherLayers: string[];
    batch: number;
    resize: 'squash' | 'crop';
    json: boolean;
  },
): Promise<number> {
  const files: string[] = [];
  const sides: Array<Array<{ layer: string; channels: number; file: string }>> = [];
  for (const [k, side] of (pooled?.sides ?? []).entries()) {
    const list: Array<{ layer: string; channels: number; file: string }> = [];
    for (const [layer, { x, c }] of side) {
      const file = `features-${k}-${layer.replace(/[^\w.-]/g, '_')}.f32`;
      await writeAtomic(insideOut(out, file), Buffer.from(x.buffer, x.byteOffset, x.byteLength));
      files.push(insideOut(out, file));
      list.push({ layer, channels: c, file });
    }
    sides.push(list);
  }
  const state = {
    format: SIMILARITY_STATE_FORMAT,
    command: 'similarity',
    shard: shardRecord(shard, total, inputs.length),
    model: modelSummary(model),
    ...(other ? { otherModel: modelSummary(other) } : {}),
    options: {
      layers: o.layers,
      otherLayers: other ? o.otherLayers : o.layers,
      resize: o.resize,
      other: Boolean(other),
    },
    batch: o.batch,
    files: (pooled?.files ?? []).map((f) => [indices[f], inputs[f].source]),
    failed: pooled?.failed ?? [],
    sides,
  };
  await writeAtomic(insideOut(out, 'similarity-state.json'), `${JSON.stringify(state)}\n`);
  files.push(insideOut(out, 'similarity-state.json'));
  process.stderr.write(
    `featscope: similarity: shard ${shard.index}/${shard.count}: pooled features of ${pooled?.images ?? 0} images (merge the shards with \`featscope merge\`)\n`,
  );
  return endRun({
    command: 'similarity',
    json: o.json,
    out,
    total: inputs.length,
    summary: { shard: state.shard, images: pooled?.images ?? 0 },
    outcome: { done: pooled?.images ?? 0, skipped: 0, failed: asFailures(pooled?.failed ?? []), interrupted: false },
    files,
  });
}

/**
 * The pooled features of `inputs` through the batch runner: per image its channel means on every
 * side's layers. No records and no --resume: CKA compares the images with each other.
 */
async function pooledOf(
  inputs: InputImage[],
  out: string,
  model: Model,
  sides: FeatureSide[],
  batch: number,
  resize: 'squash' | 'crop',
  progress: Progress,
): Promise<PooledFeatures | 'interrupted'> {
  const rows = new PooledRows(sides);
  const outcome = await runOverSet({
    inputs,
    out,
    batch,
    model,
    layers: sides[0].layers,
    resize,
    progress,
    forward: (_m, b) => capturePooled(sides, b),
    add: (stats, i, file) => rows.add(stats, i, file),
  });
  return outcome.interrupted ? 'interrupted' : rows.pooled(inputs.length, outcome.failed);
}
