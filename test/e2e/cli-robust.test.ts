/**
 * CLI runs that used to give silently wrong output (issue 15, item 4): layers whose names map to
 * one file, a stale record kept for an image that now fails, --resume across a replaced model
 * file, and a folder scan that read its own output back. A small model keeps these fast.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { ensureTestModels, MODELS, PYTHON } from '../support/models';
import { barRows, decode } from '../support/colour-bar';
import { DOG, ensureBuilt, runCli, startCli, tempDir } from '../support/cli';

const LAYERS = ['a/b', 'a_b', 'input', 'x', 'x.overlay'];

/** A Sequential whose module names collide as files: `a/b`, `a_b`, `input`, and `x` with a child `overlay`. */
function makeNamesModel(file: string, seed: number): void {
  const script = `
import json, sys, torch, torch.nn as nn
class X(nn.Module):
    def __init__(self):
        super().__init__()
        self.overlay = nn.Conv2d(4, 4, 3, padding=1)
    def forward(self, x):
        return self.overlay(x)
torch.manual_seed(int(sys.argv[2]))
seq = nn.Sequential()
seq.add_module('stem', nn.Conv2d(3, 4, 3, padding=1))
seq.add_module('a/b', nn.ReLU())
seq.add_module('a_b', nn.Conv2d(4, 4, 1))
seq.add_module('input', nn.Conv2d(4, 4, 1))
seq.add_module('x', X())
seq.add_module('pool', nn.AdaptiveAvgPool2d(1))
seq.add_module('flat', nn.Flatten())
meta = {"format": "featscope-model/1", "architecture": "names", "export": "script",
        "weights": {"source": "seed", "trained": False},
        "input": {"size": [48, 48], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
torch.jit.save(torch.jit.script(seq.eval()), sys.argv[1], _extra_files={"featscope.json": json.dumps(meta)})
`;
  // TorchScript reads the class's source, so the script must be a file (not `python -c`).
  const py = path.join(path.dirname(file), 'make_names_model.py');
  fs.writeFileSync(py, script);
  execFileSync(PYTHON, [py, file, String(seed)], { stdio: 'inherit' });
}

let models: string;
beforeAll(() => {
  ensureBuilt();
  ensureTestModels();
  models = tempDir('names-models');
  makeNamesModel(path.join(models, 'one.pt'), 0);
  makeNamesModel(path.join(models, 'two.pt'), 1);
});

interface Manifest {
  images: { name: string; input: string; layers: { name: string; grid: string; overlay?: string }[] }[];
  failed: { source: string; code: string }[];
}
const manifestOf = (out: string) => JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as Manifest;

test('layers named a/b, a_b, input, x and x.overlay each get their own grid and overlay', async () => {
  const out = tempDir('names-out');
  const r = runCli([
    'render',
    DOG,
    '--model',
    path.join(models, 'one.pt'),
    '--layers',
    LAYERS.join(','),
    '--overlay',
    '--out',
    out,
  ]);
  expect(r.code).toBe(0);
  const [image] = manifestOf(out).images;
  expect(image.layers.map((l) => l.name).sort()).toEqual([...LAYERS].sort());
  const files = [image.input, ...image.layers.flatMap((l) => [l.grid, l.overlay!])];
  expect(new Set(files.map((f) => f.toLowerCase())).size).toBe(files.length); // 11 distinct files
  expect(image.input).toBe('dog/input.png');
  // Each file is the picture its record says: the input is the photo (48x48 at this model's size,
  // no banner strip), grids and overlays are pictures of their own.
  const inputMeta = await sharp(path.join(out, image.input)).metadata();
  expect([inputMeta.width, inputMeta.height]).toEqual([48, 48]);
  const written = fs.readdirSync(path.join(out, 'dog')).filter((f) => f.endsWith('.png'));
  // Besides those: one top-channel thumbnail strip per layer (<layer>.top.png, for the report).
  expect(written.length).toBe(files.length + LAYERS.length);
  expect(written.filter((f) => f.endsWith('.top.png')).length).toBe(LAYERS.length);
});

test('a re-render where an image now fails drops its old record: listed as failed only', () => {
  const dir = tempDir('stale');
  const out = tempDir('stale-out');
  fs.copyFileSync(DOG, path.join(dir, 'a.jpg'));
  fs.copyFileSync(DOG, path.join(dir, 'b.jpg'));
  const model = path.join(models, 'one.pt');
  expect(runCli(['render', dir, '--model', model, '--layers', 'x', '--out', out]).code).toBe(0);
  expect(manifestOf(out).images.map((i) => i.name)).toEqual(['a', 'b']);
  fs.writeFileSync(path.join(dir, 'b.jpg'), 'not a jpeg any more');
  const r = runCli(['render', dir, '--model', model, '--layers', 'x', '--out', out]);
  expect(r.code).toBe(1);
  const m = manifestOf(out);
  expect(m.images.map((i) => i.name)).toEqual(['a']);
  expect(m.failed.map((f) => [path.basename(f.source), f.code])).toEqual([['b.jpg', 'IMAGE_DECODE']]);
  // And --resume does not take the old record for a finished image either.
  const again = runCli(['render', dir, '--model', model, '--layers', 'x', '--out', out, '--resume', '--json']);
  expect(JSON.parse(again.stdout)).toMatchObject({ skipped: 1, done: 0 });
});

test('--resume after the model file was replaced under the same name redoes every image', () => {
  const dir = tempDir('resume-model');
  const out = tempDir('resume-model-out');
  fs.copyFileSync(DOG, path.join(dir, 'a.jpg'));
  fs.copyFileSync(DOG, path.join(dir, 'b.jpg'));
  const model = path.join(tempDir('resume-model-file'), 'model.pt');
  fs.copyFileSync(path.join(models, 'one.pt'), model);
  const args = ['render', dir, '--model', model, '--layers', 'x', '--out', out, '--resume', '--json'];
  expect(JSON.parse(runCli(args).stdout)).toMatchObject({ done: 2, skipped: 0 });
  expect(JSON.parse(runCli(args).stdout)).toMatchObject({ done: 0, skipped: 2 });
  fs.copyFileSync(path.join(models, 'two.pt'), model); // other weights, same path
  expect(JSON.parse(runCli(args).stdout)).toMatchObject({ done: 2, skipped: 0 });
});

test('rendering a folder into an output folder inside it never reads its own pictures back', () => {
  const dir = tempDir('self');
  fs.copyFileSync(DOG, path.join(dir, 'a.jpg'));
  const args = [
    'render',
    dir,
    '--model',
    path.join(models, 'one.pt'),
    '--layers',
    'x',
    '--out',
    path.join(dir, 'out'),
    '--json',
  ];
  for (let run = 0; run < 3; run++) {
    const r = runCli(args);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ inputs: 1, done: 1 });
  }
});

/**
 * The analysis commands on the batch runner's conventions (issue 15, item 4): one bad file among
 * good ones fails alone (exit 1, its [CODE] in the message, the good pictures written), --resume
 * skips finished images, and the closing lines name every file written.
 */
describe('analysis commands: one bad file fails alone', () => {
  let dir: string;
  let model: string;
  beforeAll(() => {
    dir = tempDir('analysis-bad');
    fs.copyFileSync(DOG, path.join(dir, 'a.jpg'));
    fs.copyFileSync(path.join(path.dirname(DOG), 'chelsea.png'), path.join(dir, 'b.png'));
    fs.writeFileSync(path.join(dir, 'bad.jpg'), 'not a jpeg');
    model = path.join(models, 'one.pt');
  });

  /** stdout's JSON; every file it lists as written exists and is named on its own closing line. */
  function closing(r: ReturnType<typeof runCli>): { written: string[]; exitCode: number } {
    const json = JSON.parse(r.stdout) as { written: string[]; exitCode: number };
    expect(json.exitCode).toBe(r.code);
    for (const f of json.written) {
      expect(fs.existsSync(f)).toBe(true);
      expect(r.stderr).toContain(`\n  ${f}\n`);
    }
    expect(r.stderr).toMatch(/bad\.jpg: Cannot decode image .* \[IMAGE_DECODE\]/);
    return json;
  }

  const mtimes = (files: string[]) => files.map((f) => fs.statSync(f).mtimeMs);

  test.each([
    ['gradcam', ['--layer', 'x', '--saliency', 'gradient'], ['gradcam-x.png', 'saliency-gradient.png'], 'gradcam.json'],
    ['attack', ['--method', 'fgsm', '--epsilon', '4/255'], ['divergence.png', 'adversarial.png'], 'attack.json'],
  ])('%s: exit 1, the good pictures written, --resume skips them', (command, extra, kinds, summary) => {
    const out = tempDir(`${command}-bad-out`);
    const args = [command, dir, '--model', model, '--out', out, '--json', ...extra];
    const r = runCli(args);
    expect(r.stderr).toContain('featscope: loading model');
    expect(r.stderr).toContain('featscope: writing report…');
    expect(r.code).toBe(1);
    const { written } = closing(r);
    const pictures = ['a', 'b'].flatMap((name) => kinds.map((k) => path.join(out, `${name}.${k}`)));
    expect(written).toEqual(expect.arrayContaining([...pictures, path.join(out, summary)]));
    const json = JSON.parse(fs.readFileSync(path.join(out, summary), 'utf8'));
    expect(json.images.map((i: { source: string }) => path.basename(i.source))).toEqual(['a.jpg', 'b.png']);
    expect(json.failed).toEqual([expect.objectContaining({ source: path.join(dir, 'bad.jpg'), code: 'IMAGE_DECODE' })]);
    // --resume: the two finished images are not redone (their pictures untouched), the bad one is tried again.
    const before = mtimes(pictures);
    const again = runCli([...args, '--resume']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('skipped 2 already finished');
    expect(mtimes(pictures)).toEqual(before);
    expect(closing(again).written).toEqual(written);
  });

  test('a layer that does not exist ends the run before any work: exit 2, nothing written', () => {
    const out = path.join(tempDir('gradcam-typo'), 'out');
    const r = runCli(['gradcam', dir, '--model', model, '--layer', 'nope', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\[UNKNOWN_LAYER\]/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test.each([
    ['stats', ['--layers', 'x', '--examples', '0'], ['stats.json', 'stats.png']],
    ['similarity', ['--layers', 'a_b,x'], ['similarity.json', 'similarity.png']],
  ])('%s: exit 1 with the bad file listed, the results of the good ones written', (command, extra, files) => {
    const out = tempDir(`${command}-bad-out`);
    const r = runCli([command, dir, '--model', model, '--out', out, '--json', ...extra]);
    expect(r.code).toBe(1);
    const { written } = closing(r);
    expect([...written].sort()).toEqual(files.map((f) => path.join(out, f)).sort());
    expect(JSON.parse(r.stdout).images).toBe(2);
  });

  test.each([
    ['stats', ['--layers', 'a/b,x', '--examples', '0', '--batch', '3'], 'stats.json'],
    ['similarity', ['--layers', 'a_b,x', '--batch', '3'], 'similarity.json'],
  ])('%s: the bad file fails alone with its code; the others give the values of a run without it', (c, extra, json) => {
    const good = tempDir(`${c}-good-in`);
    for (const f of ['a.jpg', 'b.png']) fs.copyFileSync(path.join(dir, f), path.join(good, f));
    const result = (input: string, code: number) => {
      const out = tempDir(`${c}-alone-out`);
      const r = runCli([c, input, '--model', model, '--out', out, ...extra]);
      expect(r.code).toBe(code);
      // No per-image records: these commands have no --resume.
      expect(fs.readdirSync(out).sort()).toEqual([json, `${c}.png`].sort());
      return JSON.parse(fs.readFileSync(path.join(out, json), 'utf8').split(input).join('IN'));
    };
    const { failed, ...withBad } = result(dir, 1);
    expect(failed).toEqual([{ source: 'IN/bad.jpg', code: 'IMAGE_DECODE', message: expect.any(String) }]);
    const { failed: none, ...withoutBad } = result(good, 0);
    expect(none).toEqual([]);
    expect(withBad).toEqual(withoutBad);
  });
});

test('render --overlay draws a colour bar; --normalize shared is in the manifest, a bad mode is a usage error', async () => {
  const out = tempDir('normalize-out');
  const model = path.join(models, 'one.pt');
  const r = runCli([
    'render',
    DOG,
    '--model',
    model,
    '--layers',
    'x',
    '--overlay',
    '--normalize',
    'shared',
    '--out',
    out,
  ]);
  expect(r.code).toBe(0);
  const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  expect(m.options.normalize).toBe('shared');
  const overlay = await decode(fs.readFileSync(path.join(out, m.images[0].layers[0].overlay)));
  expect(barRows(overlay, 'turbo').length).toBeGreaterThanOrEqual(8);
  const grid = await decode(fs.readFileSync(path.join(out, m.images[0].layers[0].grid)));
  expect(barRows(grid, 'viridis').length).toBeGreaterThanOrEqual(8);
  const bad = runCli(['render', DOG, '--model', model, '--layers', 'x', '--normalize', 'global', '--out', out]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--normalize must be channel .* or shared .*, not "global" .*\[USAGE\]/);
});

test('gradcam: Ctrl-C writes the JSON of the images done and exits 130; --resume does the rest', async () => {
  const dir = tempDir('gradcam-sigint');
  for (let i = 0; i < 6; i++) fs.copyFileSync(DOG, path.join(dir, `d${i}.jpg`));
  const out = path.join(dir, 'out');
  // ResNet-18 with --flow and one image per batch: slow enough to be stopped in the middle.
  const args = [
    'gradcam',
    dir,
    '--model',
    MODELS.scripted,
    '--layer',
    'layer4',
    '--batch',
    '1',
    '--flow',
    '--out',
    out,
  ];
  const run = startCli(args, (stderr) => stderr.includes('[1/6]'));
  await run.started;
  run.child.kill('SIGINT');
  const r = await run.done;
  expect(r.code).toBe(130);
  expect(r.stderr).toMatch(/interrupted; finished files are complete. Rerun the same command with --resume/);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'gradcam.json'), 'utf8'));
  expect(json.interrupted).toBe(true);
  const done = json.images.length;
  expect(done).toBeGreaterThanOrEqual(1);
  expect(done).toBeLessThan(6);
  const again = runCli([...args, '--resume', '--json']);
  expect(again.code).toBe(0);
  expect(again.stderr).toContain(`skipped ${done} already finished`);
  expect(JSON.parse(again.stdout).images).toHaveLength(6);
});
