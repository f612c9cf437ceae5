/** The featscope command: info, layers, render over photos and folders, failures, --resume, Ctrl-C, usage errors. */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { MODELS, edgeModel, ensureTestModels } from '../support/models';
import { DOG, HOSTILE, ensureBuilt, listFiles, runCli, startCli, tempDir } from '../support/cli';

const MODEL = MODELS.scripted;

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
});

async function expectValidPng(file: string) {
  const meta = await sharp(file).metadata();
  expect(meta.format).toBe('png');
  // decoding the whole image fails on a truncated file
  await sharp(file).raw().toBuffer();
}

describe('info and layers', () => {
  test('info prints versions and CUDA state', () => {
    const r = runCli(['info']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^featscope\s+\d+\.\d+\.\d+/m);
    expect(r.stdout).toMatch(/^node\s+v\d+/m);
    expect(r.stdout).toMatch(/^libtorch\s+\d+\.\d+/m);
    expect(r.stdout).toMatch(/^cuda\s+(available|not available)/m);
    const withModel = runCli(['info', '--model', MODEL]);
    expect(withModel.stdout).toMatch(/^model\s+.*resnet18.*: resnet18, 67 layers; UNTRAINED weights \(random init/m);
    const missing = runCli(['info', '--model', '/nonexistent.pt']);
    expect(missing.code).toBe(0);
    expect(missing.stdout).toMatch(/^model\s+model file "\/nonexistent\.pt" does not exist.*\[MODEL_NOT_FOUND\]/m);
    const j = runCli(['info', '--json']);
    expect(j.code).toBe(0);
    const v = JSON.parse(j.stdout);
    expect(typeof v.libtorch).toBe('string');
    expect(typeof v.cuda.available).toBe('boolean');
  });

  test('layers --json lists names, types, calls and output shapes', () => {
    const r = runCli(['layers', '--model', MODEL, '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.inputSize).toEqual([224, 224]);
    const byName = new Map(out.layers.map((l: { name: string }) => [l.name, l]));
    expect(byName.get('layer1.0.conv1')).toEqual({
      name: 'layer1.0.conv1',
      type: 'Conv2d',
      calls: 1,
      outputShapes: [[1, 64, 56, 56]],
    });
    expect(byName.get('layer1.0.relu')).toMatchObject({ type: 'ReLU', calls: 2 });
    expect(byName.get('fc')).toMatchObject({ type: 'Linear', outputShapes: [[1, 1000]] });
  });

  test('layers --size changes the shapes; the table form is aligned text', () => {
    const r = runCli(['layers', '--model', MODEL, '--size', '112']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/layer4\s+Sequential\s+1\s+\[1, 512, 4, 4\]/);
  });

  test('layers marks modules called in a loop with the calls of one forward', () => {
    const r = runCli(['layers', '--model', edgeModel('loopnet'), '--size', '16', '--device', 'cpu']);
    expect(r.code).toBe(0);
    // loopnet calls block once, then in a loop of 2 iterations for a batch of one.
    expect(r.stdout).toMatch(/block\s+LoopBlock\s+3 \(loop\)\s+\[1, 3, 16, 16\] \[1, 3, 16, 16\] \[1, 3, 16, 16\]/);
    expect(r.stdout).toMatch(/stem\s+Conv2d\s+2\s+\[/);
  });
});

describe('usage', () => {
  test.each(['info', 'layers', 'render', 'export'])('%s --help prints its usage and exits 0', (command) => {
    const r = runCli([command, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: featscope ${command}`);
    expect(r.stderr).toBe('');
  });

  test('featscope --help lists the commands; no command is a usage error', () => {
    const r = runCli(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['info', 'layers', 'render', 'export']) expect(r.stdout).toContain(`  ${c}`);
    expect(runCli([]).code).toBe(2);
  });

  test.each([
    [['frobnicate'], /unknown command "frobnicate"/],
    [['render'], /render needs at least one image/],
    [['render', DOG, '--bogus'], /Unknown option '--bogus'/],
    [['render', DOG, '--channels', 'lots'], /--channels takes a count/],
    [['render', DOG, '--colormap', 'rainbow'], /--colormap must be one of viridis/],
    [['render', DOG, '--batch', '0'], /--batch must be an integer from 1/],
    [['render', DOG, '--device', 'tpu'], /--device must be auto, cpu, cuda/],
    [['layers', 'extra'], /Unexpected argument 'extra'|positional/i],
  ])('%j exits 2 with a one-line message', (args, message) => {
    const r = runCli(args as string[], { env: { FEATSCOPE_MODEL: MODEL } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr).toMatch(/^featscope: .*\[USAGE\]\n$/);
  });

  test('an unknown layer is a usage error with suggestions, printed without a stack', () => {
    const out = tempDir('unknown-layer');
    const r = runCli(['render', DOG, '--model', MODEL, '--layers', 'layer1.0.cnov1', '--out', out]);
    expect(r.code).toBe(2);
    // After the progress line "featscope: loading model …", the error on a line of its own.
    expect(r.stderr).toMatch(/^featscope: unknown layer "layer1.0.cnov1"; closest: layer1.0.conv1/m);
    expect(r.stderr).toMatch(/\[UNKNOWN_LAYER\]\n$/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('a layer without feature maps (fc) is refused by render, and a missing model names the fix', () => {
    const r = runCli(['render', DOG, '--model', MODEL, '--layers', 'fc', '--out', tempDir('fc')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/layer fc outputs shape \[1, 1000\], not feature maps/);
    const m = runCli(['layers', '--model', '/nonexistent/model.pt']);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/^featscope: model file "\/nonexistent\/model.pt" does not exist.*\[MODEL_NOT_FOUND\]\n$/);
  });
});

describe('render', () => {
  test('one photo: a grid per layer, overlays, the input, a manifest with stats and untrained weights', async () => {
    const out = tempDir('render');
    const r = runCli([
      'render',
      DOG,
      '--model',
      MODEL,
      '--layers',
      'layer1.0.conv1,layer4',
      '--overlay',
      '--out',
      out,
      '--json',
    ]);
    expect(r.stderr).not.toMatch(/failed/);
    expect(r.code).toBe(0);
    expect(listFiles(out)).toEqual([
      'dog/input.png',
      'dog/layer1.0.conv1.overlay.png',
      'dog/layer1.0.conv1.png',
      'dog/layer1.0.conv1.top.png',
      'dog/layer4.overlay.png',
      'dog/layer4.png',
      'dog/layer4.top.png',
      'dog/record.json',
      'manifest.json',
    ]);
    for (const f of listFiles(out).filter((f) => f.endsWith('.png'))) await expectValidPng(path.join(out, f));
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ inputs: 1, done: 1, failed: [], interrupted: false, exitCode: 0 });

    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.trained).toBe(false);
    expect(manifest.model.weights.trained).toBe(false);
    expect(manifest.model.weightsLabel).toMatch(/^UNTRAINED/);
    expect(manifest.model.classes).toBe(1000); // the count, not the 1000 names
    expect(manifest.model.architecture).toBe('resnet18');
    expect(manifest.options).toMatchObject({
      layers: ['layer1.0.conv1', 'layer4'],
      channels: '16',
      colormap: 'viridis',
      overlay: true,
    });
    expect(manifest.layers).toEqual([
      { name: 'layer1.0.conv1', type: 'Conv2d', shape: [64, 56, 56] },
      { name: 'layer4', type: 'Sequential', shape: [512, 7, 7] },
    ]);
    expect(manifest.images).toHaveLength(1);
    const image = manifest.images[0];
    expect(image.source).toBe(DOG);
    const [conv, l4] = image.layers;
    expect(conv).toMatchObject({
      name: 'layer1.0.conv1',
      shape: [64, 56, 56],
      grid: 'dog/layer1.0.conv1.png',
      overlay: 'dog/layer1.0.conv1.overlay.png',
    });
    expect(conv.gridChannels).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(conv.channels.max).toHaveLength(64);
    expect(conv.channels.mean).toHaveLength(64);
    expect(l4.channels.zeroFraction).toHaveLength(512);
    // layer4 ends in a ReLU: zeros exist, the layer max is the max of the channel maxima
    expect(l4.stats.zeroFraction).toBeGreaterThan(0);
    expect(l4.stats.max).toBeCloseTo(Math.max(...l4.channels.max), 4);
    expect(l4.top[0].score).toBeCloseTo(l4.stats.max, 4);
    const grid = await sharp(path.join(out, 'dog', 'layer1.0.conv1.png')).metadata();
    expect(grid.width).toBeGreaterThan(600); // 4 cells of 168 px across
    const overlay = await sharp(path.join(out, 'dog', 'layer4.overlay.png')).metadata();
    // 448 px of heatmap under the weights banner (30 px) and a title (28 px), its colour bar (42 px), 10 px below.
    expect([overlay.width, overlay.height]).toEqual([448, 448 + 30 + 28 + 42 + 10]);
    // Every picture says the weights are untrained: the banner's red.
    const { data } = await sharp(path.join(out, 'dog', 'layer1.0.conv1.png'))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([data[0], data[1], data[2]]).toEqual([0xc6, 0x28, 0x28]);
  });

  test('--channels top:k ranks by max, and a list picks those channels', () => {
    const out = tempDir('channels');
    expect(
      runCli(['render', DOG, '--model', MODEL, '--layers', 'layer4', '--channels', 'top:4', '--out', out]).code,
    ).toBe(0);
    const rec = JSON.parse(fs.readFileSync(path.join(out, 'dog', 'record.json'), 'utf8'));
    const max: number[] = rec.layers[0].channels.max;
    const ranked = max
      .map((v, i) => [v, i])
      .sort((a, b) => b[0] - a[0] || a[1] - b[1])
      .slice(0, 4)
      .map((x) => x[1]);
    expect(rec.layers[0].gridChannels).toEqual(ranked);
    const out2 = tempDir('channels-list');
    expect(
      runCli(['render', DOG, '--model', MODEL, '--layers', 'layer4', '--channels', '3,7,9', '--out', out2]).code,
    ).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(out2, 'dog', 'record.json'), 'utf8')).layers[0].gridChannels).toEqual([
      3, 7, 9,
    ]);
  });

  test('a folder with one corrupt image: exit 1, the rest done, the failure listed at the end', async () => {
    const dir = tempDir('folder');
    const out = tempDir('folder-out');
    fs.copyFileSync(DOG, path.join(dir, 'a.jpg'));
    fs.copyFileSync(DOG, path.join(dir, 'c.jpg'));
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.copyFileSync(DOG, path.join(dir, 'sub', 'd.jpg'));
    fs.writeFileSync(
      path.join(dir, 'b.jpg'),
      Buffer.concat([fs.readFileSync(DOG).subarray(0, 2), Buffer.from('this is not a jpeg')]),
    );
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not an image, skipped by extension');
    const r = runCli(['render', dir, '--model', MODEL, '--batch', '2', '--out', out]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    // plain progress lines (stderr is not a TTY), then the failures, then the summary
    expect(lines.filter((l) => /^featscope: \[\d\/4\]/.test(l))).toHaveLength(4);
    const failedAt = lines.indexOf('featscope: 1 input failed:');
    expect(failedAt).toBe(lines.length - 3);
    expect(lines[failedAt + 1]).toMatch(
      new RegExp(
        `^  ${path.join(dir, 'b.jpg').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: Cannot decode image .*\\[IMAGE_DECODE\\]$`,
      ),
    );
    expect(lines[failedAt + 2]).toMatch(/^featscope: rendered 3 images, 1 failed; 3 of 4 in /);
    expect(listFiles(out).filter((f) => f.endsWith('record.json'))).toEqual([
      'a/record.json',
      'c/record.json',
      'd/record.json',
    ]);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.counts).toEqual({ inputs: 4, done: 3, failed: 1 });
    expect(manifest.failed).toEqual([
      expect.objectContaining({ source: path.join(dir, 'b.jpg'), code: 'IMAGE_DECODE' }),
    ]);
  });

  test('--resume skips finished images and redoes those rendered with other options', () => {
    const dir = tempDir('resume');
    const out = tempDir('resume-out');
    for (const n of ['a', 'b', 'c']) fs.copyFileSync(DOG, path.join(dir, `${n}.jpg`));
    expect(runCli(['render', path.join(dir, 'a.jpg'), '--model', MODEL, '--out', out]).code).toBe(0);
    const before = fs.statSync(path.join(out, 'a', 'layer1.0.conv1.png')).mtimeMs;
    const r = runCli(['render', dir, '--model', MODEL, '--out', out, '--resume', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ inputs: 3, done: 2, skipped: 1, finished: 3 });
    expect(r.stderr).toMatch(/skipped 1 already finished/);
    expect(fs.statSync(path.join(out, 'a', 'layer1.0.conv1.png')).mtimeMs).toBe(before);
    // other options: nothing is skipped
    const again = runCli(['render', dir, '--model', MODEL, '--out', out, '--resume', '--colormap', 'magma', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ done: 3, skipped: 0 });
  });

  test('Ctrl-C stops cleanly: finished images complete, no temporary files, --resume finishes the rest', async () => {
    const dir = tempDir('sigint');
    const out = tempDir('sigint-out');
    for (let i = 0; i < 20; i++) fs.copyFileSync(DOG, path.join(dir, `photo${String(i).padStart(2, '0')}.jpg`));
    const args = [
      'render',
      dir,
      '--model',
      MODEL,
      '--layers',
      'layer1.0.conv1,layer4',
      '--overlay',
      '--batch',
      '4',
      '--out',
      out,
    ];
    const run = startCli(args, (err) => /\[3\/20\]/.test(err));
    await run.started;
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.signal).toBeNull();
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/stopping after the current image/);
    expect(r.stderr).toMatch(/interrupted; finished files are complete\. Rerun the same command with --resume/);
    const files = listFiles(out);
    expect(files.filter((f) => path.basename(f).startsWith('.'))).toEqual([]);
    const finished = files.filter((f) => f.endsWith('record.json')).map((f) => path.dirname(f));
    expect(finished.length).toBeGreaterThanOrEqual(3);
    expect(finished.length).toBeLessThan(20);
    for (const name of finished) {
      for (const f of [
        'input.png',
        'layer1.0.conv1.png',
        'layer1.0.conv1.overlay.png',
        'layer4.png',
        'layer4.overlay.png',
        'layer4.top.png',
      ]) {
        await expectValidPng(path.join(out, name, f));
      }
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.interrupted).toBe(true);
    expect(manifest.images).toHaveLength(finished.length);

    const resumed = runCli([...args, '--resume', '--json']);
    expect(resumed.code).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({
      skipped: finished.length,
      done: 20 - finished.length,
      finished: 20,
    });
  });

  test('globs and folders expand to images; a glob or folder with no images is a usage error', () => {
    const dir = tempDir('glob');
    fs.mkdirSync(path.join(dir, 'x', 'y'), { recursive: true });
    fs.copyFileSync(DOG, path.join(dir, 'x', 'one.jpg'));
    fs.copyFileSync(DOG, path.join(dir, 'x', 'y', 'two.jpg'));
    fs.copyFileSync(DOG, path.join(dir, 'x', 'y', 'three.png'));
    const out = tempDir('glob-out');
    const r = runCli(['render', `${dir}/**/*.jpg`, '--model', MODEL, '--out', out, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ inputs: 2, done: 2 });
    const none = runCli(['render', `${dir}/**/*.gif`, '--model', MODEL, '--out', out]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no images match .*\[NO_INPUTS\]/);
    fs.mkdirSync(path.join(dir, 'empty'));
    expect(runCli(['render', path.join(dir, 'empty'), '--model', MODEL, '--out', out]).stderr).toMatch(
      /holds no images/,
    );
    const ch = runCli(['render', DOG, '--model', MODEL, '--channels', '1,99', '--out', out]);
    expect(ch.code).toBe(2);
    expect(ch.stderr).toMatch(/asks for channel 99 but layer layer1.0.conv1 has 64 channels/);
  });

  test('names from inputs are sanitised: nothing is written outside --out', () => {
    const root = tempDir('names');
    const dir = path.join(root, 'in');
    const out = path.join(root, 'out');
    fs.mkdirSync(dir);
    fs.copyFileSync(DOG, path.join(dir, `${HOSTILE}.jpg`));
    fs.copyFileSync(DOG, path.join(dir, '...jpg'));
    fs.copyFileSync(DOG, path.join(dir, 'manifest.json.png'));
    const inputs = [path.join(dir, `${HOSTILE}.jpg`), path.join(dir, '...jpg'), path.join(dir, 'manifest.json.png')];
    const r = runCli(['render', ...inputs, '--model', MODEL, '--out', out]);
    expect(r.stderr).not.toMatch(/failed/);
    expect(r.code).toBe(0);
    const all = listFiles(root);
    expect(all.filter((f) => !f.startsWith('in/') && !f.startsWith('out/'))).toEqual([]);
    const dirs = [
      ...new Set(
        listFiles(out)
          .filter((f) => f.includes('/'))
          .map((f) => f.split('/')[0]),
      ),
    ].sort();
    expect(dirs).toHaveLength(3);
    for (const d of dirs) expect(d).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*$/);
    expect(dirs).toContain('img_src_x_onerror_alert_1');
    expect(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')).images).toHaveLength(3);
  });
});
