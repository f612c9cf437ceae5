/** `featscope stats`: per-layer, per-channel activation statistics over many images, streamed in batches. */
import * as fs from 'fs';
import * as path from 'path';
import { analysisReport, folderStats, renderChannelExamples, renderStatsChart } from '../analysis';
import { loadModel } from '../model';
import { DEVICE_OPTION, MODEL_OPTION, parse, parseDevice, parsePositiveInt, parseResize, resolveModel, usage } from './args';
import { insideOut, layerFileName, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { modelSummary } from './manifest';

export const STATS_HELP = `Usage: featscope stats <image|folder|glob>... [options]

Activation statistics over many images: for every channel of the given layers, the mean over
images of its spatial mean, the p50/p90/p99 of those per-image means (exact up to 1,000 images,
then P² estimates), its largest activation, the share of images where it never fires, and the
dead channels that never fire on any image (candidates for pruning), and each channel's top
images ("dataset examples": the images where it fires most, and where). Images are read in
batches; memory does not grow with the folder.

Options:
  -m, --model FILE     TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt)
  -l, --layers A,B     layers (default: relu,layer1,layer2,layer3,layer4)
      --batch N        images per forward (default 16)
      --examples N     per layer, draw the top images of its N strongest channels (default 8, 0: none)
      --top-images K   top images kept per channel (default 5)
      --report         also write report.html
      --resize MODE    squash (default) | crop
      --device DEV     auto (default) | cpu | cuda | cuda:N
      --threads N      libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)
  -o, --out DIR        output folder (default: ./featscope-out)
      --json           print the per-layer summary as JSON on stdout
  -h, --help           this help

Output: DIR/stats.json (per-channel columns and top images), DIR/stats.png,
DIR/examples-<layer>.png, DIR/report.html.

Example:
  featscope stats photos/ --layers layer3,layer4 --report --out out/
`;

export async function stats(argv: string[]): Promise<number> {
  const { values, positionals } = parse('stats', argv, {
    ...MODEL_OPTION, ...DEVICE_OPTION,
    layers: { type: 'string', short: 'l' }, batch: { type: 'string' }, examples: { type: 'string' }, 'top-images': { type: 'string' }, report: { type: 'boolean' }, resize: { type: 'string' },
    out: { type: 'string', short: 'o' }, json: { type: 'boolean' },
  }, true);
  if (values.help) {
    process.stdout.write(STATS_HELP);
    return 0;
  }
  if (positionals.length === 0) throw usage('stats needs images, a folder or a glob', 'stats');
  const layers = ((values.layers as string | undefined) ?? 'relu,layer1,layer2,layer3,layer4').split(',').map((s) => s.trim()).filter(Boolean);
  const batch = parsePositiveInt(values.batch as string | undefined, '--batch', 16, 1024, 'stats');
  const resize = parseResize(values.resize as string | undefined, 'stats');
  const drawChannels = values.examples === '0' ? 0 : parsePositiveInt(values.examples as string | undefined, '--examples', 8, 256, 'stats');
  const topImages = parsePositiveInt(values['top-images'] as string | undefined, '--top-images', 5, 100, 'stats');
  const device = parseDevice(values.device as string | undefined, 'stats');
  const out = path.resolve((values.out as string | undefined) ?? 'featscope-out');
  const inputs = await expandInputs(positionals);
  const model = await loadModel(resolveModel(values.model as string | undefined), { device });
  try {
    fs.mkdirSync(out, { recursive: true });
    const s = await folderStats(model, inputs.map((i) => i.source), {
      layers, batch, resize, examples: topImages,
      onProgress: (done, total) => process.stderr.write(`stats: ${done}/${total} images\n`),
    });
    const chart = await renderStatsChart(model, s);
    await writeAtomic(insideOut(out, 'stats.png'), chart.png);
    const examplePictures: { layer: string; file: string; png: Buffer }[] = [];
    if (drawChannels > 0) {
      for (const l of s.layers) {
        if (l.examples.every((e) => e.length === 0)) continue;
        const pic = await renderChannelExamples(model, s, inputs.map((i) => i.source), { layer: l.name, channels: drawChannels, resize });
        const file = insideOut(out, `examples-${layerFileName(l.name)}.png`);
        await writeAtomic(file, pic.png);
        examplePictures.push({ layer: l.name, file: path.basename(file), png: pic.png });
      }
    }
    const round = (a: Float64Array) => Array.from(a, (v) => Number(v.toPrecision(6)));
    const summary = {
      command: 'stats', model: modelSummary(model), options: { layers, batch, resize, examples: drawChannels, topImages }, images: s.images, failed: s.failed,
      layers: s.layers.map((l) => ({
        name: l.name, channels: l.channels, percentiles: l.percentiles, deadChannels: l.deadChannels, deadShare: l.deadShare,
        channel: { mean: round(l.channel.mean), p50: round(l.channel.p50), p90: round(l.channel.p90), p99: round(l.channel.p99), max: round(l.channel.max), silentShare: round(l.channel.silentShare) },
        // Per channel, its top images: [source, spatial max, row, column] of the layer's map.
        topImages: l.examples.map((list) => list.map((e) => [inputs[e.file].source, Number(e.score.toPrecision(6)), e.y, e.x])),
        examplesPicture: examplePictures.find((p) => p.layer === l.name)?.file,
      })),
    };
    await writeAtomic(insideOut(out, 'stats.json'), `${JSON.stringify(summary)}\n`);
    let report: string | undefined;
    if (values.report) {
      report = insideOut(out, 'report.html');
      await writeAtomic(report, analysisReport(model, 'featscope activation statistics', { images: s.images, failed: s.failed.length, layers, batch }, [
        { heading: 'Dead channels and channel means', images: [{ png: chart.png, caption: 'Dead: never fires (max ≤ 0) on any image' }] },
        ...examplePictures.map((p) => ({
          heading: `Top images per channel · ${p.layer}`,
          images: [{ png: p.png, caption: `The ${drawChannels} channels of ${p.layer} with the highest max: their top images, the channel's map over each, + at its max` }],
        })),
        {
          heading: 'Per layer',
          note: 'mean / p50 / p90 / p99: over channels, of each channel\'s mean over images (its statistics per channel are in stats.json)',
          table: {
            head: ['layer', 'channels', 'dead', 'dead share', 'mean', 'median p50', 'median p99', 'percentiles'],
            rows: s.layers.map((l) => [l.name, l.channels, l.deadChannels.length, `${(l.deadShare * 100).toFixed(1)}%`, avg(l.channel.mean), median(l.channel.p50), median(l.channel.p99), l.percentiles]),
          },
        },
      ]));
    }
    if (values.json) process.stdout.write(`${JSON.stringify({ out, report, images: s.images, failed: s.failed, layers: summary.layers.map(({ channel: _c, topImages: _t, ...rest }) => rest) }, null, 2)}\n`);
    for (const f of s.failed) process.stderr.write(`featscope: ${f.source}: ${f.message}\n`);
    process.stderr.write(`stats: ${s.images} images; ${s.layers.map((l) => `${l.name} ${l.deadChannels.length}/${l.channels} dead`).join(', ')}; wrote ${out}/stats.json\n`);
    return s.failed.length ? 1 : 0;
  } finally {
    model.dispose();
  }
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
