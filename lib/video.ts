/**
 * Video clips -> raw RGB frames, with ffmpeg (Debian's `ffmpeg` package, found on PATH).
 *
 * ffprobe reads the clip's size, rotation and frame rate; ffmpeg decodes it to raw `rgb24` frames
 * on its stdout (`-f rawvideo -pix_fmt rgb24`), every frame (`-vsync 0`, as `ffmpeg -i clip
 * -vsync 0 f%04d.png` writes them) or `--fps N` (`-vf fps=N`). Frames are read from the pipe only
 * as they are asked for: the pipe's back-pressure stops ffmpeg, so a long clip costs the frames in
 * flight, not the clip. `-xerror` makes ffmpeg stop with an error on a corrupt or truncated clip
 * (it would otherwise skip the bad packets and exit 0).
 */
import { spawn, type ChildProcessByStdio } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { Readable } from 'stream';
import { FeatscopeError } from './errors';

/** Extensions taken as video clips (from folders, globs and named files). */
export const VIDEO_EXTENSIONS = ['.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.mpg', '.mpeg', '.ts', '.wmv'];

export function isVideoName(file: string): boolean {
  return VIDEO_EXTENSIONS.includes(path.extname(file).toLowerCase());
}

/** The full path of `name` on PATH (an executable file), or undefined. */
export function onPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const full = path.join(dir, name);
    try {
      fs.accessSync(full, fs.constants.X_OK);
      if (fs.statSync(full).isFile()) return full;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface FfmpegTools {
  ffmpeg: string;
  ffprobe: string;
}

/** ffmpeg and ffprobe on PATH, or FFMPEG_MISSING naming the package to install. */
export function findFfmpeg(clip?: string): FfmpegTools {
  const ffmpeg = onPath('ffmpeg');
  const ffprobe = onPath('ffprobe');
  if (!ffmpeg || !ffprobe) {
    const missing = [!ffmpeg && 'ffmpeg', !ffprobe && 'ffprobe'].filter(Boolean).join(' and ');
    throw new FeatscopeError(
      'FFMPEG_MISSING',
      `${clip ? `video clip ${JSON.stringify(clip)} needs` : 'video clips need'} ffmpeg to decode, but ${missing} ${missing.includes(' and ') ? 'are' : 'is'} not on PATH; install Debian's ffmpeg package (apt-get install ffmpeg) or put both ffmpeg and ffprobe on PATH`,
    );
  }
  return { ffmpeg, ffprobe };
}

export interface VideoInfo {
  /** Frame size as ffmpeg outputs it (rotation applied). */
  width: number;
  height: number;
  /** Average frame rate of the stream (frames per second), when known. */
  fps?: number;
  /** Duration in seconds, when known. */
  duration?: number;
  /** Frame count from the container, when it says. */
  frames?: number;
}

function decodeFailed(clip: string, what: string, cause?: unknown): FeatscopeError {
  return new FeatscopeError(
    'VIDEO_DECODE_FAILED',
    `Cannot decode video clip ${JSON.stringify(clip)}: ${what}. Expected a video file ffmpeg can read that is not truncated or corrupt (\`ffmpeg -v error -i FILE -f null -\` shows the same errors)`,
    cause === undefined ? undefined : { cause },
  );
}

/** ffmpeg's error lines, one line, bounded. */
function stderrReason(text: string): string {
  const lines = [
    ...new Set(
      text
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean),
    ),
  ];
  const s = lines.slice(0, 4).join('; ');
  return s.length > 600 ? `${s.slice(0, 597)}...` : s || 'ffmpeg gave no reason';
}

function ratio(s: unknown): number | undefined {
  if (typeof s !== 'string') return undefined;
  const [a, b] = s.split('/').map(Number);
  const v = b === undefined ? a : a / b;
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

async function checkFile(clip: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(clip);
  } catch (err) {
    throw new FeatscopeError(
      'IMAGE_NOT_FOUND',
      `Video clip not found: ${JSON.stringify(clip)} (resolved to ${path.resolve(clip)}); check the path and the working directory`,
      { cause: err },
    );
  }
  if (!stat.isFile())
    throw new FeatscopeError(
      'IMAGE_NOT_FOUND',
      `Expected a video file but ${JSON.stringify(clip)} is not a regular file`,
    );
  if (stat.size === 0) throw decodeFailed(clip, 'the file is empty (0 bytes)');
}

/** Size, rotation and frame rate of the clip's first video stream (ffprobe). */
export async function probeVideo(clip: string, tools: FfmpegTools = findFfmpeg(clip)): Promise<VideoInfo> {
  await checkFile(clip);
  const args = [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-show_entries',
    'stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,duration:stream_tags=rotate:stream_side_data=rotation:format=duration',
    '-of',
    'json',
    '--',
    clip,
  ];
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const p = spawn(tools.ffprobe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      p.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-8192)));
      p.on('error', reject);
      p.on('close', (c) => resolve({ code: c, stdout: out, stderr: err }));
    },
  );
  if (code !== 0) throw decodeFailed(clip, `ffprobe: ${stderrReason(stderr)}`);
  let parsed: {
    streams?: Array<Record<string, unknown>>;
    format?: { duration?: string };
  };
  try {
    parsed = JSON.parse(stdout);
  } catch (err) {
    throw decodeFailed(clip, 'ffprobe printed no readable description', err);
  }
  const s = parsed.streams?.[0];
  if (!s) throw decodeFailed(clip, 'it has no video stream');
  let width = Number(s.width);
  let height = Number(s.height);
  if (!(width > 0 && height > 0)) throw decodeFailed(clip, `its video stream has no frame size (${width}x${height})`);
  // ffmpeg rotates frames by the display matrix (or the old `rotate` tag) unless told not to.
  const side = (s.side_data_list as Array<{ rotation?: number }> | undefined)?.find((d) => d.rotation !== undefined);
  const rotation = Number(side?.rotation ?? (s.tags as { rotate?: string } | undefined)?.rotate ?? 0);
  if (Math.abs(rotation) % 180 === 90) [width, height] = [height, width];
  const duration = Number(s.duration ?? parsed.format?.duration);
  const frames = Number(s.nb_frames);
  return {
    width,
    height,
    fps: ratio(s.avg_frame_rate) ?? ratio(s.r_frame_rate),
    duration: Number.isFinite(duration) && duration > 0 ? duration : undefined,
    frames: Number.isInteger(frames) && frames > 0 ? frames : undefined,
  };
}

/** The arguments that decode `clip` to raw RGB frames on stdout (every frame, or `fps` per second). */
export function decodeArgs(clip: string, fps?: number): string[] {
  return [
    '-nostdin',
    '-hide_banner',
    '-nostats',
    '-v',
    'error',
    '-xerror',
    '-i',
    clip,
    ...(fps === undefined ? ['-vsync', '0'] : ['-vf', `fps=${fps}`]),
    '-map',
    '0:v:0',
    '-an',
    '-sn',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    'pipe:1',
  ];
}

export interface VideoFrame {
  /** 0-based index of the decoded frame. */
  index: number;
  /** height x width x 3, row-major, uint8 RGB. */
  rgb: Buffer;
  width: number;
  height: number;
}

/**
 * Frames of `clip`, decoded one at a time as they are asked for. The generator throws
 * VIDEO_DECODE_FAILED when ffmpeg fails (after yielding the frames it decoded before); ending the
 * loop early (break, return) stops ffmpeg.
 */
export async function* decodeFrames(
  clip: string,
  options: { fps?: number; tools?: FfmpegTools; info?: VideoInfo } = {},
): AsyncGenerator<VideoFrame> {
  const tools = options.tools ?? findFfmpeg(clip);
  const info = options.info ?? (await probeVideo(clip, tools));
  const { width, height } = info;
  const frameBytes = width * height * 3;
  const proc: ChildProcessByStdio<null, Readable, Readable> = spawn(tools.ffmpeg, decodeArgs(clip, options.fps), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => {
    // The first lines name the problem; later ones repeat it.
    if (stderr.length < 8192) stderr += d;
  });
  let spawnError: Error | undefined;
  const closed = new Promise<number | null>((resolve) => {
    proc.on('error', (err) => {
      spawnError = err;
      resolve(null);
    });
    proc.on('close', (code) => resolve(code));
  });
  let finished = false;
  try {
    let index = 0;
    let pending: Buffer[] = [];
    let have = 0;
    // Async iteration reads one chunk per step: ffmpeg waits on a full pipe while frames are in use.
    for await (const chunk of proc.stdout as AsyncIterable<Buffer>) {
      pending.push(chunk);
      have += chunk.length;
      while (have >= frameBytes) {
        const all = pending.length === 1 ? pending[0] : Buffer.concat(pending, have);
        const rgb = Buffer.from(all.subarray(0, frameBytes)); // its own memory, not the pipe's chunk
        const rest = all.subarray(frameBytes);
        pending = rest.length ? [rest] : [];
        have = rest.length;
        yield { index: index++, rgb, width, height };
      }
    }
    const code = await closed;
    finished = true;
    if (spawnError) throw decodeFailed(clip, `ffmpeg did not start (${spawnError.message})`, spawnError);
    if (code !== 0)
      throw decodeFailed(clip, `ffmpeg exited with status ${code} after ${index} frames: ${stderrReason(stderr)}`);
    if (have !== 0)
      throw decodeFailed(
        clip,
        `ffmpeg's output ended inside a frame (${have} of ${frameBytes} bytes of ${width}x${height} RGB)`,
      );
    if (index === 0) throw decodeFailed(clip, `ffmpeg decoded no frames${stderr ? `: ${stderrReason(stderr)}` : ''}`);
  } finally {
    if (!finished) {
      proc.stdout.destroy();
      proc.kill('SIGKILL');
      await closed;
    }
  }
}
