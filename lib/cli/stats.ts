/** `featscope stats`: per-layer, per-channel activation statistics over many images, streamed in batches. */
import * as fs from 'fs';
import * as path from 'path';
import { folderStats } from '../analysis';
import {
  DEVICE_OPTION,
  MODEL_OPTION,
  parse,
  parseDevice,
  parsePositiveInt,
  parseReportAssets,
  parseResize,
  usage,
} from './args';
import { loadCliModel, modelInputHelp, MODEL_INPUT_OPTIONS } from './model-options';
import { insideOut, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { writeStatsOutputs, type StatsDrawOptions } from './stats-output';
import { interruptible, Interrupted } from './interrupt';
import { Progress } from './progress';
import { asFailures, endAnalysisRun, endInterrupted } from './summary';
import { announceShard, parseShard, selectShard, SHARD_OPTIONS, shardHelp, shardOut, shardRecord } from './shard';

export const STATS_HELP = `Usage: featscope stats <image|folder|glob>... [options]

Activation statistics over many images: for every channel of the given layers, the mean over
images of its spatial mean, the p50/p90/p99 of those per-image means (exact up to 1,000 images,
then from a mergeable sketch, within 1%), its largest activation, the share of images where it
never fires, and the dead channels that never fire on any image (candidates for pruning), and
each channel's top images ("dataset examples": the images where it fires most, and where).
Images are read in batches; memory does not grow with the folder.

Options:
  -m, --model FILE     TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt)
${modelInputHelp(23)}  -l, --layers A,B     layers (default: relu,layer1,layer2,layer3,layer4)
      --batch N        images per forward (default 16)
      --examples N     per layer, draw the top images of its N strongest channels (default 8, 0: none)
      --top-images K   top images kept per channel (default 5)
      --exact-limit N  percentiles exact up to N images (default 1000), then from the sketch
                       (each order statistic within 1%); 0: always the sketch
      --report         also write report.html
      --report-assets HOW
                       inline (default) | linked: the pictures in report_files/ beside it
      --resize MODE    squash (default) | crop
      --device DEV     auto (default) | cpu | cuda | cuda:N
      --threads N      libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)
  -o, --out DIR        output folder (default: ./featscope-out)
${shardHelp(23)}      --json           print the per-layer summary as JSON on stdout
  -h, --help           this help

Output: DIR/stats.json (per-channel columns and top images), DIR/stats.png,
DIR/examples-<layer>.png, DIR/report.html.

Example:
  featscope stats photos/ --layers layer3,layer4 --report --out out/
`;

export async function stats(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'stats',
    argv,
    {
      ...MODEL_OPTION,
      ...MODEL_INPUT_OPTIONS,
      ...DEVICE_OPTION,
      ...SHARD_OPTIONS,
      layers: { type: 'string', short: 'l' },
      batch: { type: 'string' },
      examples: { type: 'string' },
      'top-images': { type: 'string' },
      'exact-limit': { type: 'string' },
      report: { type: 'boolean' },
      'report-assets': { type: 'string' },
      resize: { type: 'string' },
      out: { type: 'string', short: 'o' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(STATS_HELP);
    return 0;
  }
  const reportAssets = parseReportAssets(values['report-assets'], 'stats');
  if (positionals.length === 0) throw usage('stats needs images, a folder or a glob', 'stats');
  const layers = (values.layers ?? 'relu,layer1,layer2,layer3,layer4')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
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
  const interrupt = interruptible(progress);
  try {
    fs.mkdirSync(out, { recursive: true });
    progress.note(`running the model on ${inputs.length} image${inputs.length === 1 ? '' : 's'}…`);
    const s = await folderStats(
      model,
      inputs.map((i) => i.source),
      {
        layers,
        batch,
        resize,
        examples: topImages,
        exactLimit,
        onProgress: (done, total) => {
          progress.note(`stats: ${done}/${total} images`);
          interrupt.check();
        },
      },
    );
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
    return endAnalysisRun(
      'stats',
      {
        json: Boolean(values.json),
        out,
        total: inputs.length,
        summary: {
          report,
          images: s.images,
          failed: s.failed,
          layers: summary.layers.map(({ channel: _c, topImages: _t, ...rest }) => rest),
        },
      },
      { done: s.images, skipped: 0, failed: asFailures(s.failed), interrupted: false },
      files,
    );
  } catch (err) {
    if (!(err instanceof Interrupted)) throw err;
    return endInterrupted('stats');
  } finally {
    interrupt.dispose();
    model.dispose();
  }
}

/** Version 2 adds per-channel percentile sketches and the drawing options; merge reads version 1 states that kept their means. */
export const STATE_FORMAT = 'featscope-stats-state/2';
