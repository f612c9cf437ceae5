/**
 * CLI runs that used to give silently wrong output (issue 15, item 4): layers whose names map to
 * one file, a stale record kept for an image that now fails, --resume across a replaced model
 * file, and a folder scan that read its own output back. A small model keeps these fast.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { PYTHON } from '../support/models';
import { DOG, ensureBuilt, runCli, tempDir } from './support';

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
  expect(written.length).toBe(files.length);
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
