/** `featscope stats`: per-layer, per-channel activation statistics over many images, streamed in batches. */
import * as fs from 'fs';
import * as path from 'path';
import { captureStats, statsRun } from '../analysis/stats';
import { parseDevice, parsePositiveInt, parseReportAssets, parseResize, usage, parseList } from './args';
import { loadCliModel } from './model-options';
import { insideOut, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { writeStatsOutputs, type StatsDrawOptions } from './stats-output';
import { Progress } from './progress';
import { asFailures, endRun } from './summary';
import { runOverSet } from './image-run';
import { announceShard, parseShard, selectShard, shardOut, shardRecord } from './shard';
import { parseCommand, printHelp } from './command';
import { STATS_COMMAND } from './commands';

export async function stats(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(STATS_COMMAND, argv);
  if (values.help) return printHelp(STATS_COMMAND);
  const reportAssets = parseReportAssets(values['report-assets'], 'stats');
  if (positionals.length === 0) throw usage('stats needs images, a folder or a glob', 'stats');
  const layers = parseList(values.layers ?? 'relu,layer1,layer2,layer3,layer4');
  const batch = parsePositiveInt(values.batch, '--batch', 16, 1024, 'stats');
  const resize = parseResize(values.resize, 'stats');
  const drawChannels = values.examples === '0' ? 0 : parsePositiveInt(values.examples, '--examples', 8, 256, 'stats');
  const topImages = parsePositiveInt(values['top-images'], '--top-images', 5, 100, 'stats');
  const exactLimit =
    values['exact-limit'] === '0' ? 0 : parsePositiveInt(values['exact-limit'], '--exact-limit', 1000, 1e9, 'stats');
  const drawOptions: StatsDrawOptions = {
    layers,
    batch,
    resize,
    examples: drawChannels,
    topImages,
    exactLimit,
    report: values.report === true,
    reportAssets,
  };
  // What shards must share to be merged.
  const stateOptions = { layers, resize, topImages, exactLimit };
  const device = parseDevice(values.device, 'stats');
  const shard = parseShard(values, 'stats');
  const outBase = path.resolve(values.out ?? 'featscope-out');
  const out = shardOut(outBase, shard);
  const all = await expandInputs(positionals, { skip: outBase });
  const { inputs, indices } = selectShard(positionals, all, shard);
  announceShard('stats', shard, all.length, inputs.length, out);
  if (inputs.length === 0) {
    // An empty shard is no error (a small folder over many pods): it writes an empty state to merge.
    fs.mkdirSync(out, { recursive: true });
    await writeAtomic(
      insideOut(out, 'stats-state.json'),
      `${JSON.stringify({ format: STATE_FORMAT, command: 'stats', shard: shardRecord(shard, all.length, 0), options: stateOptions, draw: drawOptions, files: [], failed: [], layers: null })}\n`,
    );
    process.stderr.write(
      `stats: shard ${shard!.index}/${shard!.count} holds none of the ${all.length} inputs; wrote an empty ${out}/stats-state.json\n`,
    );
    return 0;
  }
  const model = await loadCliModel(values, 'stats', { device });
  const progress = new Progress({ total: inputs.length });
  try {
    fs.mkdirSync(out, { recursive: true });
    const run = await statsRun(model, { layers, exactLimit, examples: topImages });
    // No records and no --resume: the statistics are over the whole set, written at the end.
    const outcome = await runOverSet({
      inputs,
      out,
      batch,
      model,
      layers,
      resize,
      progress,
      forward: (m, b) => captureStats(m, b, layers),
      add: (caps, i, file) => run.add(caps, i, file),
    });
    if (outcome.interrupted) return endRun({ command: 'stats', stopped: true });
    const s = run.result(inputs.length, outcome.failed);
    progress.note('writing report…');
    const drawn = await writeStatsOutputs(
      model,
      s,
      inputs.map((i) => i.source),
      out,
      drawOptions,
      shard ? { shard: shardRecord(shard, all.length, inputs.length) } : {},
    );
    const { summary, report } = drawn;
    const files = drawn.files.map((f) => path.join(out, f));
    if (shard) {
      // The mergeable form for `featscope merge`: file indices into the whole input list, whose sources it names.
      const state = s.state.map((l) => ({
        ...l,
        top: l.top.map((list) => list.map(([f, score, at]) => [indices[f], score, at])),
      }));
      await writeAtomic(
        insideOut(out, 'stats-state.json'),
        `${JSON.stringify({
          format: STATE_FORMAT,
          command: 'stats',
          shard: shardRecord(shard, all.length, inputs.length),
          model: summary.model,
          options: stateOptions,
          draw: drawOptions,
          files: inputs.map((inp, i) => [indices[i], inp.source]),
          failed: s.failed,
          layers: state,
        })}\n`,
      );
      files.push(insideOut(out, 'stats-state.json'));
    }
    progress.note(`${s.layers.map((l) => `${l.name} ${l.deadChannels.length}/${l.channels} dead`).join(', ')}`);
    return endRun({
      command: 'stats',
      json: Boolean(values.json),
      out,
      total: inputs.length,
      summary: {
        report,
        images: s.images,
        failed: s.failed,
        layers: summary.layers.map(({ channel: _c, topImages: _t, ...rest }) => rest),
      },
      outcome: { done: s.images, skipped: 0, failed: asFailures(s.failed), interrupted: false },
      files,
    });
  } finally {
    model.dispose();
  }
}

/** Version 2 adds per-channel percentile sketches and the drawing options; merge reads version 1 states that kept their means. */
export const STATE_FORMAT = 'featscope-stats-state/2';
