// Video clips (issue 22, item 3): `featscope render clip.mp4` decodes with ffmpeg and streams the
// frames through the photo pipeline. The oracle is ffmpeg's own decoding of the same clip
// (`ffmpeg -i clip -vsync 0 f%04d.png`), run through the photo path (lib/preprocess.ts) and a
// plain capture: the CLI's per-frame inputs must equal it byte for byte, its maps within 1e-5.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { preprocess } from '../../lib';
import { decodeFrames } from '../../lib/video';
import { ROOT, MODELS, cpuModelForTests } from '../support/models';
import { DOG, ensureBuilt, listFiles, runCli, startCli, tempDir } from '../support/cli';

jest.setTimeout(300_000);
sharp.cache(false); // files are rewritten under the same names between runs

const IMAGES = path.join(ROOT, 'test', 'fixtures', 'images');
const LAYER = 'layer1.0.conv1';
const SIZE = 112;
const FPS = 2; // 10 s at 2 fps: 20 frames
const model = cpuModelForTests(() => MODELS.scripted);
let dir: string;
let clip: string;

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args], { stdio: 'inherit' });
}

/** A 10-second 160x120 clip: five test photos, 2 s each, H.264 in MP4. */
function makeClip(file: string): void {
  const photos = ['dog.jpg', 'chelsea.png', 'coffee.png', 'camera.png', 'palette_color.png'];
  const inputs = photos.flatMap((p) => [
    '-loop',
    '1',
    '-t',
    '2',
    '-framerate',
    String(FPS),
    '-i',
    path.join(IMAGES, p),
  ]);
  const scaled = photos.map((_, i) => `[${i}:v]scale=160:120,setsar=1,format=yuv420p[v${i}]`).join(';');
  const filter = `${scaled};${photos.map((_, i) => `[v${i}]`).join('')}concat=n=${photos.length}:v=1[out]`;
  ffmpeg([
    ...inputs,
    '-filter_complex',
    filter,
    '-map',
    '[out]',
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-movflags',
    '+faststart',
    file,
  ]);
}

const render = (args: string[], env?: NodeJS.ProcessEnv) =>
  runCli(
    ['render', ...args, '--model', MODELS.scripted, '--size', String(SIZE), '--layers', LAYER, '--device', 'cpu'],
    {
      env,
    },
  );

beforeAll(() => {
  ensureBuilt();
  dir = tempDir('video');
  clip = path.join(dir, 'clip.mp4');
  makeClip(clip);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A float32 C-order .npy (as lib/npy.ts writes it): shape and data. */
function readNpy(file: string): { shape: number[]; data: Float32Array } {
  const b = fs.readFileSync(file);
  expect(b.toString('latin1', 0, 6)).toBe('\x93NUMPY');
  const len = b.readUInt16LE(8);
  const header = b.toString('latin1', 10, 10 + len);
  expect(header).toContain("'descr': '<f4'");
  const shape = header
    .match(/'shape': \(([^)]*)\)/)![1]
    .split(',')
    .filter((d) => d.trim())
    .map(Number);
  const body = b.subarray(10 + len);
  return { shape, data: new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) };
}

const frameName = (k: number) => String(k).padStart(6, '0');

describe('featscope render clip.mp4', () => {
  let out: string;
  const frameCount = 20;

  test("every frame equals ffmpeg's own PNG frame after preprocessing; the animations have one page per frame", async () => {
    out = path.join(dir, 'out');
    const r = render([clip, '--overlay', '--frames', '--report', '-o', out]);
    expect(r.stderr).toContain('20 frames rendered');
    // The closing line counts the clip as a clip, with its frames (it said "rendered 1 image").
    expect(r.stderr).toMatch(/featscope: rendered 1 clip \(20 frames\); /);
    expect(r.code).toBe(0);

    // The oracle: ffmpeg's decoding of the same clip, as PNGs, through the photo path.
    const pngs = path.join(dir, 'pngs');
    fs.mkdirSync(pngs);
    ffmpeg(['-i', clip, '-vsync', '0', path.join(pngs, 'f%04d.png')]);
    const files = fs.readdirSync(pngs).sort();
    expect(files).toHaveLength(frameCount);
    const photo = await preprocess(
      files.map((f) => path.join(pngs, f)),
      { model: model(), size: SIZE },
    );
    const [capture] = await model().capture({ data: photo.data, shape: photo.shape }, [LAYER]);
    const [, c, h, w] = capture.shape;
    const per = c * h * w;
    let maxDiff = 0;
    for (let k = 0; k < frameCount; k++) {
      // The model input: the same resized 8-bit RGB, byte for byte.
      const input = await sharp(path.join(out, 'clip', 'frames', `${frameName(k)}.input.png`))
        .raw()
        .toBuffer();
      expect(input.equals(photo.images[k].rgb)).toBe(true);
      // The layer's maps.
      const npy = readNpy(path.join(out, 'clip', 'frames', `${frameName(k)}.${LAYER}.npy`));
      expect(npy.shape).toEqual([c, h, w]);
      const want = capture.data.subarray(k * per, (k + 1) * per);
      for (let i = 0; i < per; i++) maxDiff = Math.max(maxDiff, Math.abs(npy.data[i] - want[i]));
    }
    expect(maxDiff).toBeLessThan(1e-5);
    // Frames differ (five photos): the comparison is not of one frame twenty times.
    expect(photo.images[0].rgb.equals(photo.images[frameCount - 1].rgb)).toBe(false);

    for (const file of [`${LAYER}.webp`, `${LAYER}.overlay.webp`]) {
      const meta = await sharp(path.join(out, 'clip', file)).metadata();
      expect(meta.format).toBe('webp');
      expect(meta.pages).toBe(frameCount);
      expect(meta.delay).toEqual(new Array(frameCount).fill(500)); // 2 fps
    }
    // Page k of the grid animation is frame k's grid PNG (lossless), banner included, for every k.
    const frameGrid = (k: number) =>
      sharp(path.join(out, 'clip', 'frames', `${frameName(k)}.${LAYER}.png`))
        .removeAlpha()
        .raw()
        .toBuffer();
    for (let k = 0; k < frameCount; k++) {
      const page = await sharp(path.join(out, 'clip', `${LAYER}.webp`), { page: k })
        .removeAlpha()
        .raw()
        .toBuffer();
      expect(page.equals(await frameGrid(k))).toBe(true);
    }
    const png = await frameGrid(5);
    expect(png[0]).toBeGreaterThan(150); // the red UNTRAINED banner at the top left
    expect(png[1]).toBeLessThan(100);

    const record = JSON.parse(fs.readFileSync(path.join(out, 'clip', 'record.json'), 'utf8'));
    expect(record.kind).toBe('video');
    expect(record.frames).toBe(frameCount);
    expect(record.fps).toBe(FPS);
    expect(record.layers[0].means.layer).toHaveLength(frameCount);
    // The chart's layer means are the maps' means.
    const mean0 = capture.data.subarray(0, per).reduce((a, b) => a + b, 0) / per;
    expect(record.layers[0].means.layer[0]).toBeCloseTo(mean0, 4);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.images.map((i: { kind?: string }) => i.kind)).toEqual(['video']);
    const report = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(report).toContain('video clip: 20 frames at 2 frames per second');
    expect(report.match(/src="data:image\/webp;base64,UklGR/g)!.length).toBeGreaterThanOrEqual(2);
    expect(report).toContain('UNTRAINED');
  });

  test('--resume goes on from the first frame without a record, and skips a finished clip', async () => {
    // As after an interruption at frame 12: the clip's record and the later frames' records gone.
    const frames = path.join(out, 'clip', 'frames');
    fs.rmSync(path.join(out, 'clip', 'record.json'));
    for (let k = 12; k < frameCount; k++) fs.rmSync(path.join(frames, `${frameName(k)}.json`));
    const kept = fs.statSync(path.join(frames, `${frameName(3)}.${LAYER}.png`)).mtimeMs;
    const redone = fs.statSync(path.join(frames, `${frameName(15)}.${LAYER}.png`)).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    const r = render([clip, '--overlay', '--frames', '--report', '-o', out, '--resume']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('skipped 12 already finished');
    expect(r.stderr).not.toMatch(/clip\.mp4 frame 3\n/);
    expect(r.stderr).toMatch(/clip\.mp4 frame 12\n/);
    expect(fs.statSync(path.join(frames, `${frameName(3)}.${LAYER}.png`)).mtimeMs).toBe(kept);
    expect(fs.statSync(path.join(frames, `${frameName(15)}.${LAYER}.png`)).mtimeMs).not.toBe(redone);
    expect((await sharp(path.join(out, 'clip', `${LAYER}.webp`)).metadata()).pages).toBe(frameCount);

    const again = render([clip, '--overlay', '--frames', '--report', '-o', out, '--resume']);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('already finished (--resume)');
    expect(again.stderr).not.toMatch(/frame \d+\n/);
    // Other video options redo the clip: --fps 1 gives 10 frames (the 10 left from 2 fps go);
    // without --frames the frames are removed once the clip is done.
    const fps1 = render([clip, '-o', out, '--resume', '--fps', '1', '--frames']);
    expect(fps1.code).toBe(0);
    expect(fps1.stderr).toContain('10 frames rendered');
    expect(fps1.stderr).toMatch(/featscope: rendered 1 clip \(10 frames\); /);
    expect(fs.readdirSync(frames).filter((f) => f.endsWith('.json'))).toHaveLength(10);
    expect(fs.readdirSync(frames).filter((f) => f.startsWith('000010.'))).toEqual([]);
    expect((await sharp(path.join(out, 'clip', `${LAYER}.webp`)).metadata()).pages).toBe(10);
    const plain = render([clip, '-o', out, '--resume', '--fps', '1']);
    expect(plain.code).toBe(0);
    expect(plain.stderr).toContain('10 frames rendered');
    expect(fs.existsSync(frames)).toBe(false);
  });

  test('Ctrl-C in a clip: exit 130 without a hang (ffmpeg is stopped), then --resume finishes it', async () => {
    const out3 = path.join(dir, 'out-interrupted');
    const args = ['render', clip, '--model', MODELS.scripted, '--size', String(SIZE), '--layers', LAYER];
    const run = startCli([...args, '--device', 'cpu', '--batch', '2', '-o', out3], (e) =>
      /clip\.mp4 frame 5\n/.test(e),
    );
    await run.started;
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(fs.existsSync(path.join(out3, 'clip', 'record.json'))).toBe(false);
    const finished = fs.readdirSync(path.join(out3, 'clip', 'frames')).filter((f) => f.endsWith('.json')).length;
    expect(finished).toBeGreaterThanOrEqual(6);
    expect(finished).toBeLessThan(frameCount);
    const resumed = runCli([...args, '--device', 'cpu', '--batch', '2', '-o', out3, '--resume']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`skipped ${finished} already finished`);
    expect(resumed.stderr).toContain('20 frames rendered');
    expect((await sharp(path.join(out3, 'clip', `${LAYER}.webp`)).metadata()).pages).toBe(frameCount);
  });

  test('a corrupt or truncated clip fails alone with VIDEO_DECODE_FAILED', () => {
    const bytes = fs.readFileSync(clip);
    const truncated = path.join(dir, 'truncated.mp4');
    fs.writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const corrupt = path.join(dir, 'corrupt.mp4');
    const noise = Buffer.alloc(20_000);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
    fs.writeFileSync(corrupt, Buffer.concat([bytes.subarray(0, 20_000), noise, bytes.subarray(40_000)]));
    const garbage = path.join(dir, 'garbage.mp4');
    fs.writeFileSync(garbage, 'not a video\n');
    const out2 = path.join(dir, 'out-bad');
    const r = render([truncated, corrupt, garbage, DOG, '-o', out2, '--fps', '1', '--json']);
    expect(r.code).toBe(1);
    const summary = JSON.parse(r.stdout);
    expect(summary.failed.map((f: { source: string; code: string }) => [path.basename(f.source), f.code])).toEqual([
      ['truncated.mp4', 'VIDEO_DECODE_FAILED'],
      ['corrupt.mp4', 'VIDEO_DECODE_FAILED'],
      ['garbage.mp4', 'VIDEO_DECODE_FAILED'],
    ]);
    expect(summary.failed[0].message).toContain('truncated.mp4');
    expect(summary.done).toBe(1); // the photo
    expect(fs.existsSync(path.join(out2, 'dog', `${LAYER}.png`))).toBe(true);
    for (const name of ['truncated', 'corrupt', 'garbage']) {
      expect(fs.existsSync(path.join(out2, name, 'record.json'))).toBe(false);
      expect(listFiles(path.join(out2, name)).filter((f) => f.endsWith('.webp'))).toEqual([]);
    }
  });

  test('without ffmpeg on PATH: FFMPEG_MISSING naming the package, and the photos still render', () => {
    const empty = path.join(dir, 'empty-bin');
    fs.mkdirSync(empty, { recursive: true });
    const r = render([clip, DOG, '-o', path.join(dir, 'out-noffmpeg'), '--json'], { PATH: empty });
    expect(r.code).toBe(1);
    const summary = JSON.parse(r.stdout);
    expect(summary.failed).toHaveLength(1);
    expect(summary.failed[0].code).toBe('FFMPEG_MISSING');
    expect(summary.failed[0].message).toContain('apt-get install ffmpeg');
    expect(summary.done).toBe(1);
  });

  test('decodeFrames: leaving the loop early stops ffmpeg; frames are the clip size, rotation applied', async () => {
    let n = 0;
    for await (const f of decodeFrames(clip)) {
      expect([f.width, f.height, f.rgb.length]).toEqual([160, 120, 160 * 120 * 3]);
      if (++n === 2) break;
    }
    expect(n).toBe(2);
    // A clip shot rotated (display matrix 90°): frames come upright, as ffmpeg writes its PNGs.
    const rotated = path.join(dir, 'rotated.mp4');
    ffmpeg(['-i', clip, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', rotated]);
    const png = path.join(dir, 'rotated-0.png');
    ffmpeg(['-i', rotated, '-vsync', '0', '-frames:v', '1', png]);
    const want = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    for await (const f of decodeFrames(rotated)) {
      expect([f.width, f.height]).toEqual([want.info.width, want.info.height]);
      expect([f.width, f.height]).toEqual([120, 160]);
      expect(f.rgb.equals(want.data)).toBe(true);
      break;
    }
  });
});
