/** `featscope render`: photos -> one PNG grid per image and layer (+ overlay), manifest.json, report.html. */
import * as fs from 'fs';
import * as path from 'path';
import { FeatscopeError } from '../errors';
import { type Model } from '../model';
import { writeReport, type ReportAssets, type ReportImage, type ReportLayer } from '../report';
import { encodePng } from '../render/canvas';
import { renderImageLayers, type VisualizedLayer } from '../visualize';
import {
  checkCaptureLayers,
  describeChannels,
  parseChannels,
  parseColormap,
  parseLayers,
  parsePositiveInt,
  parseResize,
  parseReportAssets,
  usage,
} from './args';
import { inputSignature, loadCliModel } from './model-options';
import { finishedRecords, runBatches, type ImageRecordBase } from './batch';
import { insideOut, layerFileNames, modelFingerprint, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { featscopeVersion, round6, writeManifest } from './manifest';
import { Progress } from './progress';
import { endRun } from './summary';
import { loadMoreModels, parseDevices } from './devices';
import { isVideoName, parseFps, renderClips, videoReportImage, type VideoRecord } from './video';
import { announceShard, parseShard, selectShard, shardOut, shardRecord } from './shard';
import { parseCommand, printHelp } from './command';
import { RENDER_COMMAND } from './commands';

/** A layer as visualize() reports it (paths relative to --out), plus the module type. */
interface LayerRecord extends VisualizedLayer {
  type?: string;
  /** The top channels' maps (`<base>.top.png`) and each one's cell, for the report's thumbnails. */
  topMaps?: ReportLayer['topMaps'];
}

interface RenderRecord extends ImageRecordBase {
  input: string;
  layers: LayerRecord[];
}

export function parseNormalize(value: string | undefined, command: string): 'channel' | 'shared' {
  const v = value ?? 'channel';
  if (v !== 'channel' && v !== 'shared')
    throw usage(
      `--normalize must be channel (each grid cell its own range) or shared (one range for all cells), not ${JSON.stringify(v)}`,
      command,
    );
  return v;
}

export async function render(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(RENDER_COMMAND, argv);
  if (values.help) return printHelp(RENDER_COMMAND);
  if (positionals.length === 0) throw usage('render needs at least one image, folder or glob', 'render');
  const layers = parseLayers(values.layers, 'render');
  const channels = parseChannels(values.channels, 'render');
  const colormap = parseColormap(values.colormap, 'render');
  const normalize = parseNormalize(values.normalize, 'render');
  const devices = parseDevices(values, 'render');
  const device = devices[0];
  const batch = parsePositiveInt(values.batch, '--batch', 32, 1024, 'render');
  const resize = parseResize(values.resize, 'render');
  const shard = parseShard(values, 'render');
  const outBase = path.resolve(values.out ?? 'featscope-out');
  const out = shardOut(outBase, shard);
  const overlay = Boolean(values.overlay);
  const reportAssets = parseReportAssets(values['report-assets'], 'render');
  const fps = parseFps(values.fps, 'render');

  const all = await expandInputs(positionals, { skip: outBase, videos: true });
  const { inputs } = selectShard(positionals, all, shard);
  announceShard('render', shard, all.length, inputs.length, out);
  const shardInfo = shard ? { shard: shardRecord(shard, all.length, inputs.length) } : {};
  const model = await loadCliModel(values, 'render', { device });
  let more: Model[] = [];
  try {
    more = await loadMoreModels(values, 'render', devices);
    return await renderWith(model, {
      inputs,
      layers,
      channels,
      colormap,
      overlay,
      normalize,
      batch,
      resize,
      out,
      report: Boolean(values.report),
      reportAssets,
      resume: Boolean(values.resume),
      json: Boolean(values.json),
      extra: shardInfo,
      more,
      fps,
      keepFrames: Boolean(values.frames),
    });
  } finally {
    model.dispose();
    for (const m of more) m.dispose();
  }
}

async function renderWith(
  model: Model,
  o: {
    inputs: Awaited<ReturnType<typeof expandInputs>>;
    layers: string[];
    channels: ReturnType<typeof parseChannels>;
    colormap: ReturnType<typeof parseColormap>;
    overlay: boolean;
    normalize: 'channel' | 'shared';
    batch: number;
    resize: 'squash' | 'crop';
    out: string;
    report: boolean;
    reportAssets: ReportAssets;
    resume: boolean;
    json: boolean;
    /** More for the manifest's options (the shard). */
    extra?: Record<string, unknown>;
    /** --devices: the models on the other devices. */
    more?: Model[];
    /** Video clips: --fps (undefined: every frame) and --frames. */
    fps?: number;
    keepFrames?: boolean;
  },
): Promise<number> {
  const size = model.metadata.input?.size?.[0] ?? 224;
  // The model file's hash (for --resume) is read while the layer check runs its forward.
  const fingerprint = modelFingerprint(model.path);
  fingerprint.catch(() => undefined); // awaited below; a layer error must not leave it unhandled
  // Layer names, types and shapes up front: a typo or a non-image layer is a usage error before any work.
  const layerInfo = (await checkCaptureLayers(model, o.layers, size)).map((l) => {
    if (l.shape!.length !== 4) {
      throw new FeatscopeError(
        'NOT_FEATURE_MAPS',
        `layer ${l.name} outputs shape [${l.shape!.join(', ')}], not feature maps [N, C, H, W]; pick a convolutional layer (\`featscope layers\` shows shapes) or save it with \`featscope export\``,
      );
    }
    const channels = l.shape![1];
    if (Array.isArray(o.channels) && o.channels.some((c) => c >= channels)) {
      throw usage(
        `--channels ${o.channels.join(',')} asks for channel ${Math.max(...o.channels)} but layer ${l.name} has ${channels} channels (0 to ${channels - 1})`,
        'render',
      );
    }
    return { ...l, shape: l.shape!.slice(1) };
  });
  const typeOf = new Map(layerInfo.map((l) => [l.name, l.type]));
  fs.mkdirSync(o.out, { recursive: true });
  const options = {
    layers: o.layers,
    channels: describeChannels(o.channels),
    colormap: o.colormap,
    overlay: o.overlay,
    normalize: o.normalize,
    resize: o.resize,
    size,
    batch: o.batch,
    // Only set for clips' options (JSON drops undefined): image-only signatures stay as they were.
    fps: o.fps,
    frames: o.keepFrames || undefined,
  };
  const { batch: _batch, ...outputOptions } = options;
  const signature = JSON.stringify({
    model: model.path,
    modelFile: await fingerprint,
    ...outputOptions,
    input: inputSignature(model),
  });

  const images = o.inputs.filter((i) => !isVideoName(i.source));
  const clips = o.inputs.filter((i) => isVideoName(i.source));
  const progress = new Progress({ total: images.length });
  const outcome = await runBatches<RenderRecord>({
    inputs: images,
    out: o.out,
    batch: o.batch,
    resume: o.resume,
    signature,
    model,
    models: [model, ...(o.more ?? [])],
    layers: o.layers,
    preprocess: { resize: o.resize, model },
    progress,
    async handle(input, dir, image, captures, b) {
      const rendered = await renderImageLayers(image, captures, b, {
        channels: o.channels,
        colormap: o.colormap,
        overlay: o.overlay,
        normalize: o.normalize,
        label: { metadata: model.metadata, source: input.name },
      });
      const rel = (file: string) => path.relative(o.out, file).split(path.sep).join('/');
      const inputPng = insideOut(o.out, input.name, 'input.png');
      // zlib level 3, as the grids: the preprocessed pixels are the same, the encode is faster.
      await writeAtomic(inputPng, await encodePng({ width: image.width, height: image.height, data: image.rgb }));
      const layers: LayerRecord[] = [];
      const fileBase = layerFileNames(rendered.map((r) => r.name));
      for (const r of rendered) {
        const base = fileBase.get(r.name)!;
        const grid = insideOut(dir, `${base}.png`);
        await writeAtomic(grid, r.grid.png);
        let overlay: string | undefined;
        if (r.overlay) {
          overlay = insideOut(dir, `${base}.overlay.png`);
          await writeAtomic(overlay, r.overlay.png);
        }
        const topFile = insideOut(dir, `${base}.top.png`);
        await writeAtomic(topFile, r.topMaps.png);
        layers.push({
          name: r.name,
          type: typeOf.get(r.name),
          shape: r.shape,
          grid: rel(grid),
          overlay: overlay && rel(overlay),
          gridChannels: r.grid.layout.map((c) => c.channel),
          top: r.top.map((t) => ({ ...t, score: round6(t.score) ?? NaN })),
          topMaps: {
            file: rel(topFile),
            cells: r.topMaps.layout.map((c) => ({
              channel: c.channel,
              x: c.x,
              y: c.y,
              width: c.width,
              height: c.height,
            })),
          },
          stats: {
            min: round6(r.stats.min) ?? NaN,
            max: round6(r.stats.max) ?? NaN,
            mean: round6(r.stats.mean) ?? NaN,
            zeroFraction: round6(r.stats.zeroFraction) ?? NaN,
            deadChannels: r.stats.deadChannels,
          },
          channels: {
            max: r.channels.max.map((v) => round6(v) ?? NaN),
            mean: r.channels.mean.map((v) => round6(v) ?? NaN),
            zeroFraction: r.channels.zeroFraction.map((v) => round6(v) ?? NaN),
          },
        });
      }
      return { source: input.source, name: input.name, signature, input: rel(inputPng), layers };
    },
  });
  progress.finish();
  let clipsDone: { done: number; frames: number } | undefined;
  if (clips.length > 0 && !outcome.interrupted) {
    const v = await renderClips({
      model,
      models: [model, ...(o.more ?? [])],
      clips,
      out: o.out,
      batch: o.batch,
      resume: o.resume,
      signature,
      layers: o.layers,
      layerInfo,
      resize: o.resize,
      channels: o.channels,
      colormap: o.colormap,
      overlay: o.overlay,
      normalize: o.normalize,
      fps: o.fps,
      keepFrames: Boolean(o.keepFrames),
    });
    outcome.done += v.done;
    clipsDone = { done: v.done, frames: v.frames };
    outcome.skipped += v.skipped;
    outcome.failed.push(...v.failed);
    outcome.interrupted = v.interrupted;
    outcome.backoff.push(...v.backoff);
    v.devices.forEach((d, i) => {
      outcome.devices[i].batches += d.batches;
      outcome.devices[i].images += d.images;
    });
  }

  const manifest = path.join(o.out, 'manifest.json');
  const records = () => finishedRecords<RenderRecord>(o.out, o.inputs, signature);
  const finished = await writeManifest(
    manifest,
    { command: 'render', model, options: { ...options, ...o.extra }, layers: layerInfo },
    records(),
    {
      failed: outcome.failed,
      interrupted: outcome.interrupted,
      total: o.inputs.length,
      backoff: outcome.backoff,
      devices: o.more?.length ? outcome.devices : undefined,
    },
  );
  let report: string | undefined;
  if (o.report) {
    report = path.join(o.out, 'report.html');
    await writeReport(report, {
      title: 'featscope report',
      featscopeVersion: featscopeVersion(),
      model: { path: model.path, device: model.device, type: model.type, metadata: model.metadata },
      options: {
        layers: o.layers,
        channels: options.channels,
        colormap: o.colormap,
        resize: o.resize,
        images: `${finished} rendered, ${outcome.failed.length} failed`,
      },
      images: toReportImages(o.out, records()),
      totalImages: finished,
      failed: outcome.failed,
      interrupted: outcome.interrupted,
      assets: o.reportAssets,
    });
  }
  return endRun({
    command: 'render',
    verb: 'rendered',
    json: o.json,
    out: o.out,
    total: o.inputs.length,
    outcome,
    finished,
    manifest,
    report,
    clips: clipsDone,
  });
}

async function* toReportImages(out: string, records: AsyncIterable<RenderRecord>): AsyncGenerator<ReportImage> {
  for await (const r of records) {
    const clip = r as unknown as VideoRecord;
    if (clip.kind === 'video') {
      yield videoReportImage(out, clip);
      continue;
    }
    yield {
      source: r.source,
      input: path.join(out, r.input),
      layers: r.layers.map((l) => ({
        ...l,
        grid: path.join(out, l.grid),
        overlay: l.overlay && path.join(out, l.overlay),
        topMaps: l.topMaps && { ...l.topMaps, file: path.join(out, l.topMaps.file) },
      })),
    };
  }
}
