/**
 * `featscope render clip.mp4`: a video clip's frames through the same pipeline as photos
 * (lib/cli/batch.ts runBatches; the same preprocessing, lib/preprocess.ts, fed the decoded RGB
 * pixels), streamed from ffmpeg (lib/video.ts) a batch or two ahead of the model, so a long clip
 * costs the frames in flight, not the clip.
 *
 * Per clip, in `--out/<clip>/`:
 *   <layer>.webp           the channel grid, animated (one page per frame)
 *   <layer>.overlay.webp   the channel-mean overlay, animated (with --overlay)
 *   <layer>.means.png      each shown channel's mean (and the layer's) per frame
 *   input.png              the first frame as the model saw it
 *   record.json            the clip's record (written last: the mark that the clip is finished)
 *   frames/                per frame: the grids, overlays, input and each layer's maps as .npy
 *                          (kept with --frames; otherwise removed once the clip is finished)
 *
 * Each frame's record (`frames/NNNNNN.json`) is written as the frame is finished: an interrupted
 * clip resumes (--resume) from the first frame without one. A clip ffmpeg cannot decode (corrupt,
 * truncated) fails alone with VIDEO_DECODE_FAILED; ffmpeg missing fails each clip with
 * FFMPEG_MISSING; other inputs continue.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { FeatscopeError } from '../errors';
import type { ModelMetadata } from '../metadata';
import type { ReportImage, ReportVideoLayer } from '../report';
import type { Model } from '../model';
import { encodeNpy } from '../npy';
import { encodePng } from '../render/canvas';
import type { ColormapName } from '../render/colormaps';
import type { ChannelSelection } from '../render/grid';
import { decodeFrames, findFfmpeg, probeVideo, type VideoInfo } from '../video';
import { renderImageLayers } from '../visualize';
import { niceTicks } from '../render/chart';
import { formatNumber } from '../render/format';
import { BANNER_HEIGHT, weightsBanner } from '../render/frame';
import { BAR, GRID, INK, MUTED, svgDocument, svgToPng, text } from '../render/svg';
import {
  failureOf,
  readRecord,
  runBatches,
  type BatchOutcome,
  type Failure,
  type ImageRecordBase,
  type StreamItem,
} from './batch';
import { insideOut, layerFileNames, writeAtomic } from './files';
import type { InputImage } from './inputs';
import { round6 } from './manifest';
import { Progress } from './progress';
import { usage } from './args';

export { isVideoName } from '../video';

/** A clip's layer as its record keeps it: the report's layer (paths relative to --out), and more. */
export interface VideoLayerRecord extends ReportVideoLayer {
  gridChannels: number[];
  /** Per frame: the layer's mean, and each grid channel's mean (in gridChannels' order). */
  means: { layer: number[]; channels: number[][] };
  /** The first frame's per-frame PNGs, when kept (--frames). */
  frameFiles?: string;
}

export interface VideoRecord extends ImageRecordBase {
  kind: 'video';
  input: string;
  frames: number;
  /** Frames per second of the frames shown: --fps, else the clip's average rate. */
  fps?: number;
  width: number;
  height: number;
  /** With --frames: the folder of per-frame files. */
  framesDir?: string;
  layers: VideoLayerRecord[];
}

interface FrameLayer {
  name: string;
  grid: string;
  overlay?: string;
  gridChannels: number[];
  mean: number;
  channelMeans: number[];
}

interface FrameRecord extends ImageRecordBase {
  frame: number;
  layers: FrameLayer[];
}

export interface ClipJob {
  model: Model;
  models: Model[];
  clips: InputImage[];
  out: string;
  batch: number;
  resume: boolean;
  /** render's signature (it holds --fps and --frames): clips and frames under --resume are skipped only when it matches. */
  signature: string;
  layers: string[];
  layerInfo: Array<{ name: string; type?: string; shape?: number[] }>;
  resize: 'squash' | 'crop';
  channels: ChannelSelection;
  colormap: ColormapName;
  overlay: boolean;
  normalize: 'channel' | 'shared';
  /** --fps: frames per second to sample; undefined = every frame. */
  fps?: number;
  /** --frames: keep the per-frame PNGs and .npy. */
  keepFrames: boolean;
}

export interface ClipOutcome {
  /** Clips rendered (each counts once in the run's `done`), and their frames. */
  done: number;
  frames: number;
  skipped: number;
  failed: Failure[];
  interrupted: boolean;
  backoff: BatchOutcome['backoff'];
  devices: BatchOutcome['devices'];
}

/** --fps: frames per second to sample (ffmpeg's fps filter), a positive number up to 240; undefined: every frame. */
export function parseFps(value: string | undefined, command: string): number | undefined {
  if (value === undefined) return undefined;
  const v = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(v > 0) || v > 240)
    throw usage(
      `--fps must be a number of frames per second above 0 and at most 240 (e.g. 2 or 0.5), not ${JSON.stringify(value)}; leave it out to take every frame`,
      command,
    );
  return v;
}

const pad = (k: number) => String(k).padStart(6, '0');

/** Render every clip in turn (each through runBatches); a failing clip is listed, the next one starts. */
export async function renderClips(job: ClipJob): Promise<ClipOutcome> {
  const result: ClipOutcome = {
    done: 0,
    frames: 0,
    skipped: 0,
    failed: [],
    interrupted: false,
    backoff: [],
    devices: job.models.map((m) => ({ device: m.device, batches: 0, images: 0 })),
  };
  const signature = job.signature;
  for (const clip of job.clips) {
    if (job.resume && (await readRecord(job.out, clip, signature))) {
      result.skipped++;
      process.stderr.write(`featscope: ${clip.source}: already finished (--resume)\n`);
      continue;
    }
    const recordFile = insideOut(job.out, clip.name, 'record.json');
    await fs.promises.rm(recordFile, { force: true });
    // A fresh run starts the clip's frames afresh (a resumed one keeps the finished ones).
    if (!job.resume) await fs.promises.rm(insideOut(job.out, clip.name, 'frames'), { recursive: true, force: true });
    let outcome: BatchOutcome | undefined;
    try {
      const tools = findFfmpeg(clip.source);
      const info = await probeVideo(clip.source, tools);
      outcome = await renderClip(job, clip, signature, info, tools);
      for (let i = 0; i < outcome.devices.length; i++) {
        result.devices[i].batches += outcome.devices[i].batches;
        result.devices[i].images += outcome.devices[i].images;
      }
      result.backoff.push(...outcome.backoff);
      if (outcome.interrupted) {
        result.interrupted = true;
        break;
      }
      if (outcome.streamError !== undefined) throw outcome.streamError;
      if (outcome.failed.length > 0) {
        const first = outcome.failed[0];
        throw new FeatscopeError(
          (first.code as FeatscopeError['code']) ?? 'INTERNAL',
          `${outcome.failed.length} frame${outcome.failed.length === 1 ? '' : 's'} failed; the first, ${first.source}: ${first.message}`,
        );
      }
      const frames = outcome.done + outcome.skipped;
      const record = await finishClip(job, clip, signature, info, frames);
      await writeAtomic(recordFile, JSON.stringify(record));
      if (!job.keepFrames)
        await fs.promises.rm(insideOut(job.out, clip.name, 'frames'), { recursive: true, force: true });
      result.done++;
      result.frames += frames;
      process.stderr.write(`featscope: ${clip.source}: ${frames} frames rendered\n`);
    } catch (err) {
      const f = failureOf(clip.source, err);
      result.failed.push(f);
      process.stderr.write(`featscope: failed ${clip.source}: ${f.message} [${f.code}]\n`);
    }
  }
  return result;
}

/** The clip's frames through runBatches: per frame, its pictures and record in `frames/`. */
async function renderClip(
  job: ClipJob,
  clip: InputImage,
  signature: string,
  info: VideoInfo,
  tools: ReturnType<typeof findFfmpeg>,
): Promise<BatchOutcome> {
  const framesDir = insideOut(job.out, clip.name, 'frames');
  const frameInput = (k: number): InputImage => ({ source: `${clip.source} frame ${k}`, name: pad(k) });
  async function* frames(): AsyncGenerator<StreamItem> {
    for await (const f of decodeFrames(clip.source, { fps: job.fps, tools, info })) {
      // The decoded pixels go through the photo path (lib/preprocess.ts) as a raw sharp image.
      yield {
        input: frameInput(f.index),
        image: sharp(f.rgb, { raw: { width: f.width, height: f.height, channels: 3 } }),
      };
    }
  }
  // For the progress line only (the container's count, else duration x rate): the clip ends when ffmpeg's output does.
  const rate = job.fps ?? info.fps;
  const estimate =
    (job.fps === undefined ? info.frames : undefined) ?? (info.duration && rate ? Math.round(info.duration * rate) : 0);
  const progress = new Progress({ total: estimate });
  const fileBase = layerFileNames(job.layers);
  const metadata = job.model.metadata;
  const stream = frames();
  try {
    return await runBatches<FrameRecord>({
      inputs: [],
      stream,
      out: job.out,
      batch: job.batch,
      resume: job.resume,
      signature,
      model: job.model,
      models: job.models,
      layers: job.layers,
      preprocess: { resize: job.resize, model: job.model },
      progress,
      recordPath: (_out, input) => path.join(framesDir, `${input.name}.json`),
      imageDir: () => framesDir,
      async handle(input, dir, image, captures, b) {
        const k = Number(input.name);
        const rendered = await renderImageLayers(image, captures, b, {
          channels: job.channels,
          colormap: job.colormap,
          overlay: job.overlay,
          normalize: job.normalize,
          label: { metadata, source: `${path.basename(clip.source)} · frame ${k}` },
        });
        const rel = (file: string) => path.relative(job.out, file).split(path.sep).join('/');
        const png = await encodePng({ width: image.width, height: image.height, data: image.rgb });
        if (k === 0) await writeAtomic(insideOut(job.out, clip.name, 'input.png'), png);
        if (job.keepFrames) await writeAtomic(path.join(dir, `${input.name}.input.png`), png);
        const layers: FrameLayer[] = [];
        for (const r of rendered) {
          const base = fileBase.get(r.name)!;
          const grid = path.join(dir, `${input.name}.${base}.png`);
          await writeAtomic(grid, r.grid.png);
          let overlay: string | undefined;
          if (r.overlay) {
            overlay = path.join(dir, `${input.name}.${base}.overlay.png`);
            await writeAtomic(overlay, r.overlay.png);
          }
          if (job.keepFrames) {
            const capture = captures.find((c) => c.name === r.name)!;
            const [, c, h, w] = capture.shape;
            // This frame's [C, H, W] maps: contiguous in the batch's NCHW data.
            const maps = capture.data.subarray(b * c * h * w, (b + 1) * c * h * w);
            await writeAtomic(path.join(dir, `${input.name}.${base}.npy`), encodeNpy(maps, [c, h, w]));
          }
          const gridChannels = r.grid.layout.map((cell) => cell.channel);
          layers.push({
            name: r.name,
            grid: rel(grid),
            overlay: overlay && rel(overlay),
            gridChannels,
            mean: round6(r.stats.mean) ?? NaN,
            channelMeans: gridChannels.map((ch) => round6(r.channels.mean[ch]) ?? NaN),
          });
        }
        return { source: input.source, name: input.name, signature, frame: k, layers };
      },
    });
  } finally {
    // Stopped early (Ctrl-C, a fatal error): close the decoder, which stops ffmpeg; an ffmpeg
    // left waiting on a full pipe would keep the process from exiting.
    await stream.return(undefined);
    progress.finish();
  }
}

/** Frames per sharp join in animate(): its memory is this many frames', not the clip's. */
export const ANIMATE_CHUNK = 50;

/**
 * Animated WebP of `files` (PNG frames of one size, opaque), `fps` frames per second, looping.
 *
 * Bounded memory for long clips: one sharp join of all the frames held memory in proportion to
 * the clip (1,024x768 frames, lossless, peak RSS 184 MB at 150 frames, 1,009 MB at 1,500). So
 * the frames are joined `chunk` at a time, and each join's frames (ANMF chunks) are appended to
 * the output file as they come: 189 MB at 150 frames, 275 MB at 1,500, the same bytes out (open
 * fds 23-24 either way); it levels off past that (512x384 frames: 117 MB at 150, 144 MB at 1,500,
 * 150 MB at 3,000). Each join's first frame is a key frame covering the whole canvas; it is
 * marked "do not blend", so it shows exactly as decoded alone, whatever the frame before it left.
 * A join the encoder makes a still image (one frame, or frames all alike) becomes one frame.
 */
export async function animate(
  files: string[],
  fps: number | undefined,
  target: string,
  lossless: boolean,
  chunk = ANIMATE_CHUNK,
): Promise<void> {
  const delay = Math.max(20, Math.round(1000 / (fps && fps > 0 ? fps : 10)));
  const tmp = `${target}.tmp-${process.pid}.webp`;
  const fd = await fs.promises.open(tmp, 'w');
  try {
    if (files.length === 0) throw new FeatscopeError('INTERNAL', `no frames to animate into ${target}`);
    const { width = 0, height = 0 } = await sharp(files[0]).metadata();
    // The header: RIFF (its size set at the end), VP8X (animated; canvas size), ANIM (loop forever).
    const vp8x = Buffer.alloc(10);
    vp8x[0] = 0x02;
    vp8x.writeUIntLE(width - 1, 4, 3);
    vp8x.writeUIntLE(height - 1, 7, 3);
    const anim = Buffer.alloc(6);
    anim.writeUInt32LE(0xffffffff, 0);
    await fd.write(Buffer.from('RIFF\0\0\0\0WEBP', 'latin1'));
    let size = 4 + (await writeChunk(fd, 'VP8X', vp8x)) + (await writeChunk(fd, 'ANIM', anim));
    for (let at = 0; at < files.length; at += chunk) {
      const part = files.slice(at, at + chunk);
      const webp = await sharp(
        part.length === 1 ? part[0] : part,
        part.length === 1 ? {} : { join: { animated: true } },
      )
        .webp({
          ...(lossless ? { lossless: true } : { quality: 80 }),
          effort: 2,
          loop: 0,
          delay: part.map(() => delay),
        })
        .toBuffer();
      const chunks = riffChunks(webp);
      const flags = chunks.find((c) => c.id === 'VP8X')?.data[0] ?? 0;
      vp8x[0] |= flags & 0x10; // alpha
      let frames = chunks.filter((c) => c.id === 'ANMF').map((c) => c.data);
      if (frames.length === 0) {
        // One frame (or frames all alike, which the encoder merges): a still image; made one frame.
        const head = Buffer.alloc(16);
        head.writeUIntLE(width - 1, 6, 3);
        head.writeUIntLE(height - 1, 9, 3);
        head.writeUIntLE(delay * part.length, 12, 3);
        const image = chunks.filter((c) => c.id === 'ALPH' || c.id === 'VP8 ' || c.id === 'VP8L');
        frames = [Buffer.concat([head, ...image.map((c) => chunkBytes(c.id, c.data))])];
      }
      // Each join's first frame is a key frame: it must cover the canvas (opaque frames' do).
      const first = frames[0];
      const w = first.readUIntLE(6, 3) + 1;
      const h = first.readUIntLE(9, 3) + 1;
      if (first.readUIntLE(0, 6) !== 0 || w !== width || h !== height)
        throw new FeatscopeError(
          'INTERNAL',
          `frame ${at} of ${target} is not a whole-canvas key frame (${w}x${h} of ${width}x${height}); the frames must be opaque and of one size`,
        );
      first[15] |= 0x02; // blending method: do not blend (the frame replaces the canvas)
      for (const f of frames) size += await writeChunk(fd, 'ANMF', f);
    }
    await fd.write(vp8x.subarray(0, 1), 0, 1, 20); // the flags, after 'RIFF' size 'WEBP' 'VP8X' size
    const riffSize = Buffer.alloc(4);
    riffSize.writeUInt32LE(size);
    await fd.write(riffSize, 0, 4, 4);
    await fd.close();
    await fs.promises.rename(tmp, target);
  } catch (err) {
    await fd.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

/** The chunks of a RIFF file (a WebP): id and payload, in order. */
function riffChunks(file: Buffer): Array<{ id: string; data: Buffer }> {
  if (file.toString('latin1', 0, 4) !== 'RIFF' || file.toString('latin1', 8, 12) !== 'WEBP')
    throw new FeatscopeError('INTERNAL', 'the animated WebP encoder gave something other than a WebP');
  const out: Array<{ id: string; data: Buffer }> = [];
  for (let at = 12; at + 8 <= file.length;) {
    const n = file.readUInt32LE(at + 4);
    out.push({ id: file.toString('latin1', at, at + 4), data: file.subarray(at + 8, at + 8 + n) });
    at += 8 + n + (n & 1);
  }
  return out;
}

/** One RIFF chunk's bytes: id, size, payload, padded to even length. */
function chunkBytes(id: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.write(id, 0, 'latin1');
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data, Buffer.alloc(data.length & 1)]);
}

/** Append one RIFF chunk; returns the bytes written. */
async function writeChunk(fd: fs.promises.FileHandle, id: string, data: Buffer): Promise<number> {
  const bytes = chunkBytes(id, data);
  await fd.write(bytes);
  return bytes.length;
}

/** After every frame has its record: the animations, the charts and the clip's record. */
async function finishClip(
  job: ClipJob,
  clip: InputImage,
  signature: string,
  info: VideoInfo,
  count: number,
): Promise<VideoRecord> {
  const framesDir = insideOut(job.out, clip.name, 'frames');
  const frames: FrameRecord[] = [];
  for (let k = 0; k < count; k++) {
    const r = await readRecord<FrameRecord>(
      job.out,
      { source: `${clip.source} frame ${k}`, name: pad(k) },
      signature,
      (_o, input) => path.join(framesDir, `${input.name}.json`),
    );
    if (!r)
      throw new FeatscopeError(
        'INTERNAL',
        `frame ${k} of ${clip.source} has no record in ${framesDir}; rerun without --resume`,
      );
    frames.push(r);
  }
  // Frames past the end, left by an earlier run with other options, are not this clip's.
  for (const f of await fs.promises.readdir(framesDir)) {
    const k = /^(\d+)\./.exec(f);
    if (k && Number(k[1]) >= count) await fs.promises.rm(path.join(framesDir, f), { force: true });
  }
  const fps = job.fps ?? info.fps;
  const fileBase = layerFileNames(job.layers);
  const rel = (file: string) => path.relative(job.out, file).split(path.sep).join('/');
  const layers: VideoLayerRecord[] = [];
  for (const name of job.layers) {
    const base = fileBase.get(name)!;
    const per = frames.map((f) => f.layers.find((l) => l.name === name)!);
    const grid = insideOut(job.out, clip.name, `${base}.webp`);
    await animate(
      per.map((l) => path.join(job.out, l.grid)),
      fps,
      grid,
      true,
    );
    let overlay: string | undefined;
    if (job.overlay) {
      overlay = insideOut(job.out, clip.name, `${base}.overlay.webp`);
      await animate(
        per.map((l) => path.join(job.out, l.overlay!)),
        fps,
        overlay,
        false,
      );
    }
    const means = { layer: per.map((l) => l.mean), channels: per.map((l) => l.channelMeans) };
    const chart = insideOut(job.out, clip.name, `${base}.means.png`);
    const info_ = job.layerInfo.find((l) => l.name === name);
    await writeAtomic(
      chart,
      await svgToPng(
        frameMeansChart({
          title: `${path.basename(clip.source)} · ${name} · channel means per frame`,
          metadata: job.model.metadata,
          channels: per[0].gridChannels,
          means,
          fps: job.fps,
        }),
      ),
    );
    layers.push({
      name,
      type: info_?.type,
      shape: info_?.shape ?? [],
      grid: rel(grid),
      overlay: overlay && rel(overlay),
      chart: rel(chart),
      gridChannels: per[0].gridChannels,
      means,
    });
  }
  const first = await sharp(insideOut(job.out, clip.name, 'input.png')).metadata();
  return {
    source: clip.source,
    name: clip.name,
    signature,
    kind: 'video',
    input: rel(insideOut(job.out, clip.name, 'input.png')),
    frames: count,
    fps: fps === undefined ? undefined : (round6(fps) ?? undefined),
    width: first.width ?? 0,
    height: first.height ?? 0,
    framesDir: job.keepFrames ? rel(framesDir) : undefined,
    layers,
  };
}

const LINE_COLOURS = ['#3b6fb6', '#e07b39', '#3a9d5d', '#c0392b', '#8e5ea2', '#8c6d31', '#d6616b', '#17becf'];

/**
 * The per-frame channel-mean chart: x = frame (seconds with --fps), y = mean activation; one thin
 * line per grid channel (labelled with its real index at the right end), the layer's mean over
 * all channels thick and dark. With the weights banner.
 */
export function frameMeansChart(s: {
  title: string;
  metadata: ModelMetadata;
  channels: number[];
  means: { layer: number[]; channels: number[][] };
  fps?: number;
}): string {
  const width = 760;
  const height = 420;
  const left = 70;
  const right = 60;
  const top = BANNER_HEIGHT + 62;
  const bottom = 50;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const n = s.means.layer.length;
  const values = [...s.means.layer, ...s.means.channels.flat()].filter(Number.isFinite);
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values) : 1;
  const ticks = niceTicks(lo, hi);
  const y0 = ticks[0];
  const y1 = ticks[ticks.length - 1];
  const xOf = (k: number) => left + (n <= 1 ? plotW / 2 : (k * plotW) / (n - 1));
  const yOf = (v: number) => top + plotH - ((v - y0) / (y1 - y0 || 1)) * plotH;
  let body = weightsBanner(s.metadata, width);
  body += text(left, BANNER_HEIGHT + 26, s.title, { size: 14, weight: 'bold' });
  for (const t of ticks) {
    body += `<line x1="${left}" x2="${left + plotW}" y1="${yOf(t).toFixed(1)}" y2="${yOf(t).toFixed(1)}" stroke="${GRID}"/>`;
    body += text(left - 6, yOf(t) + 4, formatNumber(t), { size: 11, anchor: 'end', fill: MUTED });
  }
  const xTicks = niceTicks(0, Math.max(1, n - 1)).filter((t) => t <= n - 1 && Number.isInteger(t));
  for (const t of xTicks) {
    const label = s.fps ? `${formatNumber(t / s.fps)} s` : String(t);
    body += text(xOf(t), top + plotH + 16, label, { size: 11, anchor: 'middle', fill: MUTED });
  }
  body += text(left + plotW / 2, height - 12, s.fps ? `time (frame / ${formatNumber(s.fps)} fps)` : 'frame', {
    size: 12,
    anchor: 'middle',
    fill: MUTED,
  });
  body += text(16, top + plotH / 2, 'mean activation', { size: 12, anchor: 'middle', fill: MUTED, rotate: -90 });
  const poly = (ys: number[], colour: string, w: number) => {
    const pts = ys
      .map((v, k) => (Number.isFinite(v) ? `${xOf(k).toFixed(1)},${yOf(v).toFixed(1)}` : ''))
      .filter(Boolean)
      .join(' ');
    return n === 1
      ? `<circle cx="${xOf(0).toFixed(1)}" cy="${yOf(ys[0]).toFixed(1)}" r="${w + 1}" fill="${colour}"/>`
      : `<polyline points="${pts}" fill="none" stroke="${colour}" stroke-width="${w}" stroke-opacity="0.85"/>`;
  };
  // Each line's channel at its right end; labels pushed apart (10 px) where the lines end close together.
  const labels: Array<{ y: number; text: string; colour: string }> = [];
  s.channels.forEach((ch, i) => {
    const ys = s.means.channels.map((row) => row[i]);
    const colour = LINE_COLOURS[i % LINE_COLOURS.length];
    body += poly(ys, colour, 1.2);
    const last = ys[ys.length - 1];
    if (Number.isFinite(last)) labels.push({ y: yOf(last) + 4, text: `c${ch}`, colour });
  });
  labels.sort((a, b) => a.y - b.y);
  for (let i = 1; i < labels.length; i++) labels[i].y = Math.max(labels[i].y, labels[i - 1].y + 10);
  for (const l of labels) body += text(left + plotW + 4, l.y, l.text, { size: 9, fill: l.colour });
  body += poly(s.means.layer, INK, 3);
  body += text(
    left,
    BANNER_HEIGHT + 44,
    `thick: the mean of all channels · thin: the ${s.channels.length} grid channels (labelled with their channel index)`,
    {
      size: 11,
      fill: MUTED,
    },
  );
  body += `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="${BAR}" stroke-opacity="0.3"/>`;
  return svgDocument(width, height, body);
}

/** A clip's record as the report shows it (paths made absolute). */
export function videoReportImage(out: string, r: VideoRecord): ReportImage {
  return {
    source: r.source,
    input: path.join(out, r.input),
    layers: [],
    video: {
      frames: r.frames,
      fps: r.fps,
      layers: r.layers.map((l) => ({
        name: l.name,
        type: l.type,
        shape: l.shape,
        grid: path.join(out, l.grid),
        overlay: l.overlay && path.join(out, l.overlay),
        chart: path.join(out, l.chart),
        gridChannels: l.gridChannels,
      })),
    },
  };
}
