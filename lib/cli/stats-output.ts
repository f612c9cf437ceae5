/**
 * What `featscope stats` writes into its output folder — stats.json, stats.png, the example
 * pictures and report.html — drawn from the statistics; shared by an unsharded (or shard's) run
 * and by `featscope merge`, which draws the same files from the merged statistics.
 */
import * as path from 'path';
import {
  SKETCH_ACCURACY,
  analysisPage,
  renderChannelExamples,
  renderStatsChart,
  writeAnalysisReport,
} from '../analysis';
import type { FolderStats, LayerStatisticsOverFolder } from '../analysis/stats';
import type { Model } from '../model';
import type { ReportAssets } from '../report';
import type { ImageSource } from '../preprocess';
import { insideOut, layerFileNames, writeAtomic } from './files';
import { modelSummary } from './manifest';

export interface StatsDrawOptions {
  layers: string[];
  batch: number;
  resize: 'squash' | 'crop';
  /** Per layer, draw the top images of this many channels (0: none). */
  examples: number;
  topImages: number;
  exactLimit: number;
  report: boolean;
  /** How report.html carries its pictures (--report-assets; a merge uses the shards' choice). */
  reportAssets?: ReportAssets;
}

export interface StatsOutputs {
  summary: Record<string, unknown> & { layers: Record<string, unknown>[] };
  report?: string;
  /** The files written, relative to the folder. */
  files: string[];
}

/**
 * Writes stats.png, examples-<layer>.png (when o.examples > 0), stats.json and report.html (when
 * o.report) into `out`. `files[i]` is the image of file index i in the statistics' top images (a
 * sparse list is fine); `extra` goes into stats.json (shard, merged); `modelRecord` replaces the
 * model's summary there (a merge keeps the shards').
 */
export async function writeStatsOutputs(
  model: Model,
  s: FolderStats,
  files: readonly ImageSource[],
  out: string,
  o: StatsDrawOptions,
  extra: Record<string, unknown> = {},
  modelRecord: Record<string, unknown> = modelSummary(model),
): Promise<StatsOutputs> {
  const written: string[] = [];
  const chart = await renderStatsChart(model, s);
  await writeAtomic(insideOut(out, 'stats.png'), chart.png);
  written.push('stats.png');
  const examplePictures: { layer: string; file: string; png: Buffer }[] = [];
  if (o.examples > 0) {
    const fileBase = layerFileNames(s.layers.map((l) => l.name));
    for (const l of s.layers) {
      if (l.examples.every((e) => e.length === 0)) continue;
      const pic = await renderChannelExamples(model, s, files, {
        layer: l.name,
        channels: o.examples,
        resize: o.resize,
      });
      const file = insideOut(out, `examples-${fileBase.get(l.name)!}.png`);
      await writeAtomic(file, pic.png);
      examplePictures.push({ layer: l.name, file: path.basename(file), png: pic.png });
      written.push(path.basename(file));
    }
  }
  const source = (f: number) => {
    const src = files[f];
    return typeof src === 'string' ? src : `#${f}`;
  };
  const summary = {
    command: 'stats',
    model: modelRecord,
    options: {
      layers: o.layers,
      batch: o.batch,
      resize: o.resize,
      examples: o.examples,
      topImages: o.topImages,
      exactLimit: o.exactLimit,
    },
    images: s.images,
    failed: s.failed,
    ...extra,
    layers: summaryLayers(s.layers, source, examplePictures),
  };
  await writeAtomic(insideOut(out, 'stats.json'), `${JSON.stringify(summary)}\n`);
  written.push('stats.json');
  let report: string | undefined;
  if (o.report) {
    report = insideOut(out, 'report.html');
    await writeAnalysisReport(
      report,
      analysisPage(
        model,
        'featscope activation statistics',
        { images: s.images, failed: s.failed.length, layers: o.layers, batch: o.batch },
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
                caption: `The ${o.examples} channels of ${p.layer} with the highest max: their top images, the channel's map over each, + at its max`,
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
      o.reportAssets ?? 'inline',
    );
    written.push('report.html');
  }
  return { summary, report, files: written };
}

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
    // Sketched percentiles: each order statistic within this share of the true one (docs/analysis.md).
    ...(l.percentiles === 'sketch' ? { percentileAccuracy: SKETCH_ACCURACY } : {}),
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
