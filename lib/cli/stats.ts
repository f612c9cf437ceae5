/** `featscope stats`: per-layer, per-channel activation statistics over many images, streamed in batches. */
import * as fs from 'fs';
import * as path from 'path';
import { analysisPage, folderStats, renderChannelExamples, renderStatsChart, writeAnalysisReport } from '../analysis';
import type { LayerStatisticsOverFolder } from '../analysis/stats';
import {
  DEVICE_OPTION,
  MODEL_OPTION,
  parse,
  parseDevice,
  parsePositiveInt,
  parseResize,
  usage,
  parseReportAssets,
} from './args';
import { loadCliModel, modelInputHelp, MODEL_INPUT_OPTIONS } from './model-options';
import { insideOut, layerFileNames, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { modelSummary } from './manifest';
import { announceShard, parseShard, selectShard, SHARD_OPTIONS, shardHelp, shardOut, shardRecord } from './shard';

export const STATS_HELP = `Usage: featscope stats <image|folder|glob>... [options]

Activation statistics over many images: for every channel of the given layers, the mean over
images of its spatial mean, the p50/p90/p99 of those per-image means (exact up to 1,000 images,
then P² estimates), its largest activation, the share of images where it never fires, and the
dead channels that never fire on any image (candidates for pruning), and each channel's top
images ("dataset examples": the images where it fires most, and where). Images are read in
batches; memory does not grow with the folder.

Options:
  -m, --model FILE     TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt)
${modelInputHelp(23)}  -l, --layers A,B     layers (default: relu,layer1,layer2,layer3,layer4)
      --batch N        images per forward (default 16)
      --examples N     per layer, draw the top images of its N strongest channels (default 8, 0: none)
      --top-images K   top images kept per channel (default 5)
      --report         also write report.html
      --report-assets HOW inline (default) | linked: the pictures in report_files/ beside it
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
  const reportAssets = parseReportAssets(values['report-assets'] as string | undefined, 'stats');
  if (positionals.length === 0) throw usage('stats needs images, a folder or a glob', 'stats');
  const layers = ((values.layers as string | undefined) ?? 'relu,layer1,layer2,layer3,layer4')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const batch = parsePositiveInt(values.batch as string | undefined, '--batch', 16, 1024, 'stats');
  const resize = parseResize(values.resize as string | undefined, 'stats');
  const drawChannels =
    values.examples === '0'
      ? 0
      : parsePositiveInt(values.examples as string | undefined, '--examples', 8, 256, 'stats');
  const topImages = parsePositiveInt(values['top-images'] as string | undefined, '--top-images', 5, 100, 'stats');
  const device = parseDevice(values.device as string | undefined, 'stats');
  const shard = parseShard(values, 'stats');
  const outBase = path.resolve((values.out as string | undefined) ?? 'featscope-out');
  const out = shardOut(outBase, shard);
  const all = await expandInputs(positionals, { skip: outBase });
  const { inputs, indices } = selectShard(positionals, all, shard);
  announceShard('stats', shard, all.length, inputs.length, out);
  if (inputs.length === 0) {
    // An empty shard is no error (a small folder over many pods): it writes an empty state to merge.
    fs.mkdirSync(out, { recursive: true });
    await writeAtomic(
      insideOut(out, 'stats-state.json'),
      `${JSON.stringify({ format: STATE_FORMAT, command: 'stats', shard: shardRecord(shard, all.length, 0), options: { layers, resize, topImages }, files: [], failed: [], layers: null })}\n`,
    );
    process.stderr.write(
      `stats: shard ${shard!.index}/${shard!.count} holds none of the ${all.length} inputs; wrote an empty ${out}/stats-state.json\n`,
    );
    return 0;
  }
  const model = await loadCliModel(values, 'stats', { device });
  try {
    fs.mkdirSync(out, { recursive: true });
    const s = await folderStats(
      model,
      inputs.map((i) => i.source),
      {
        layers,
        batch,
        resize,
        examples: topImages,
        onProgress: (done, total) => process.stderr.write(`stats: ${done}/${total} images\n`),
      },
    );
    const chart = await renderStatsChart(model, s);
    await writeAtomic(insideOut(out, 'stats.png'), chart.png);
    const examplePictures: { layer: string; file: string; png: Buffer }[] = [];
    if (drawChannels > 0) {
      const fileBase = layerFileNames(s.layers.map((l) => l.name));
      for (const l of s.layers) {
        if (l.examples.every((e) => e.length === 0)) continue;
        const pic = await renderChannelExamples(
          model,
          s,
          inputs.map((i) => i.source),
          { layer: l.name, channels: drawChannels, resize },
        );
        const file = insideOut(out, `examples-${fileBase.get(l.name)!}.png`);
        await writeAtomic(file, pic.png);
        examplePictures.push({ layer: l.name, file: path.basename(file), png: pic.png });
      }
    }
    const summary = {
      command: 'stats',
      model: modelSummary(model),
      options: { layers, batch, resize, examples: drawChannels, topImages },
      images: s.images,
      failed: s.failed,
      ...(shard ? { shard: shardRecord(shard, all.length, inputs.length) } : {}),
      layers: summaryLayers(s.layers, (file) => inputs[file].source, examplePictures),
    };
    await writeAtomic(insideOut(out, 'stats.json'), `${JSON.stringify(summary)}\n`);
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
          options: { layers, resize, topImages },
          files: inputs.map((inp, i) => [indices[i], inp.source]),
          failed: s.failed,
          layers: state,
        })}\n`,
      );
    }
    let report: string | undefined;
    if (values.report) {
      report = insideOut(out, 'report.html');
      await writeAnalysisReport(
        report,
        analysisPage(
          model,
          'featscope activation statistics',
          { images: s.images, failed: s.failed.length, layers, batch },
          [
            {
              heading: 'Dead channels and channel means',
              images: [{ png: chart.png, caption: 'Dead: never fires (max ≤ 0) on any image' }],
            },
            ...examplePictures.map((p) => ({
              heading: `Top images per channel · ${p.layer}`,
              images: [
                {
                  png: p.png,
                  caption: `The ${drawChannels} channels of ${p.layer} with the highest max: their top images, the channel's map over each, + at its max`,
                },
              ],
            })),
            {
              heading: 'Per layer',
              note: "mean / p50 / p90 / p99: over channels, of each channel's mean over images (its statistics per channel are in stats.json)",
              table: {
                head: ['layer', 'channels', 'dead', 'dead share', 'mean', 'median p50', 'median p99', 'percentiles'],
                rows: s.layers.map((l) => [
                  l.name,
                  l.channels,
                  l.deadChannels.length,
                  `${(l.deadShare * 100).toFixed(1)}%`,
                  avg(l.channel.mean),
                  median(l.channel.p50),
                  median(l.channel.p99),
                  l.percentiles,
                ]),
              },
            },
          ],
        ),
        reportAssets,
      );
    }
    if (values.json)
      process.stdout.write(
        `${JSON.stringify({ out, report, images: s.images, failed: s.failed, layers: summary.layers.map(({ channel: _c, topImages: _t, ...rest }) => rest) }, null, 2)}\n`,
      );
    for (const f of s.failed) process.stderr.write(`featscope: ${f.source}: ${f.message}\n`);
    process.stderr.write(
      `stats: ${s.images} images; ${s.layers.map((l) => `${l.name} ${l.deadChannels.length}/${l.channels} dead`).join(', ')}; wrote ${out}/stats.json\n`,
    );
    return s.failed.length ? 1 : 0;
  } finally {
    model.dispose();
  }
}

export const STATE_FORMAT = 'featscope-stats-state/1';

/** stats.json's per-layer entries; `source(file)` names a file index of the examples. */
export function summaryLayers(
  layers: LayerStatisticsOverFolder[],
  source: (file: number) => string,
  pictures: { layer: string; file: string }[] = [],
): Record<string, unknown>[] {
  const round = (a: Float64Array) => Array.from(a, (v) => (Number.isFinite(v) ? Number(v.toPrecision(6)) : null));
  return layers.map((l) => ({
    name: l.name,
    channels: l.channels,
    percentiles: l.percentiles,
    deadChannels: l.deadChannels,
    deadShare: l.deadShare,
    channel: {
      mean: round(l.channel.mean),
      p50: round(l.channel.p50),
      p90: round(l.channel.p90),
      p99: round(l.channel.p99),
      max: round(l.channel.max),
      silentShare: round(l.channel.silentShare),
    },
    // Per channel, its top images: [source, spatial max, row, column] of the layer's map.
    topImages: l.examples.map((list) => list.map((e) => [source(e.file), Number(e.score.toPrecision(6)), e.y, e.x])),
    examplesPicture: pictures.find((p) => p.layer === l.name)?.file,
  }));
}

function avg(a: Float64Array): number {
  let s = 0;
  for (const v of a) s += v;
  return a.length ? s / a.length : NaN;
}

function median(a: Float64Array): number {
  const s = Float64Array.from(a).sort();
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN;
}
