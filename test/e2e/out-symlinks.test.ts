/**
 * Links planted inside --out are never followed: an image's folder that is a link makes that
 * image fail alone with UNSAFE_PATH, a file name that is a link is replaced (the link, not what it
 * points to), and nothing lands in the folder the links point to.
 */
import * as fs from 'fs';
import * as path from 'path';
import { MODELS, ensureTestModels } from '../support/models';
import { DOG, ensureBuilt, listFiles, runCli, tempDir } from '../support/cli';

const CHELSEA = path.join(path.dirname(DOG), 'chelsea.png');

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
});

test('render: a planted folder link stops the run before anything is written through it', () => {
  const out = tempDir('out-links');
  const elsewhere = tempDir('out-links-target');
  // The image folders render makes are named after the inputs: dog/ and chelsea/.
  fs.symlinkSync(elsewhere, path.join(out, 'dog'));
  const r = runCli([
    'render',
    DOG,
    CHELSEA,
    '--layers',
    'layer1',
    '--out',
    out,
    '--model',
    MODELS.scripted,
    '--device',
    'cpu',
  ]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/"[^"]*\/dog": it is a symbolic link inside the output folder.*\[UNSAFE_PATH\]/);
  expect(fs.readdirSync(elsewhere)).toEqual([]);
});

test('render: a planted file link fails that image alone, and what it points to is untouched', () => {
  const out = tempDir('out-links-file');
  const victim = path.join(tempDir('out-links-victim'), 'victim.png');
  fs.writeFileSync(victim, 'keep me');
  fs.mkdirSync(path.join(out, 'chelsea'));
  fs.symlinkSync(victim, path.join(out, 'chelsea', 'input.png'));
  const r = runCli([
    'render',
    DOG,
    CHELSEA,
    '--layers',
    'layer1',
    '--out',
    out,
    '--model',
    MODELS.scripted,
    '--device',
    'cpu',
  ]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/chelsea\.png: refusing to write through .*input\.png.*\[UNSAFE_PATH\]/);
  expect(r.stderr).toMatch(/rendered 1 image, 1 failed/);
  expect(fs.readFileSync(victim, 'utf8')).toBe('keep me');
  expect(listFiles(path.join(out, 'dog')).some((f) => f.endsWith('.png'))).toBe(true);
});

test('gradcam: a planted link as a picture name or the record folder is not followed', () => {
  const out = tempDir('out-links-gradcam');
  const elsewhere = tempDir('out-links-gradcam-target');
  fs.mkdirSync(path.join(out, '.featscope'));
  fs.symlinkSync(elsewhere, path.join(out, '.featscope', 'gradcam'));
  const r = runCli(['gradcam', DOG, '--layer', 'layer4', '--out', out, '--model', MODELS.scripted, '--device', 'cpu']);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/symbolic link inside the output folder/);
  expect(fs.readdirSync(elsewhere)).toEqual([]);
});
