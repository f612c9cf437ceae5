/**
 * Control characters in file and layer names reach the terminal escaped: a file name cannot end
 * its progress line and forge another, nor send escape sequences (cursor moves, colours, clear).
 */
import * as fs from 'fs';
import * as path from 'path';
import { shown } from '../../lib/cli/term';
import { MODELS, ensureTestModels } from '../support/models';
import { DOG, ensureBuilt, runCli, tempDir } from '../support/cli';

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
});

test('shown() escapes C0/C1 controls, DEL, line separators and bidi overrides, and nothing else', () => {
  expect(shown('a\nb\r\tc\x1b[31md\x7f\x9b\u2028\u202ee\u2066')).toBe(
    'a\\nb\\r\\tc\\x1b[31md\\x7f\\x9b\\u2028\\u202ee\\u2066',
  );
  expect(shown('ordinary/päth – 猫.jpg')).toBe('ordinary/päth – 猫.jpg');
});

test('progress, failure and error lines show hostile names escaped', () => {
  const dir = tempDir('term-escapes');
  const forged = 'x\nfeatscope: rendered 2 images\x1b[2J\x1b[31m.jpg';
  fs.copyFileSync(DOG, path.join(dir, forged));
  fs.writeFileSync(path.join(dir, 'bad\r\x1b[1Adone.jpg'), 'not a jpeg');
  const r = runCli([
    'render',
    dir,
    '--layers',
    'layer1',
    '--out',
    path.join(dir, 'out'),
    '--model',
    MODELS.scripted,
    '--device',
    'cpu',
  ]);
  expect(r.code).toBe(1);
  expect(r.stderr).not.toContain('\x1b');
  expect(r.stderr).not.toContain('\r');
  const lines = r.stderr.split('\n');
  // Exactly two progress lines, one per input; the forged one is shown as text inside the first.
  expect(lines.filter((l) => /^featscope: \[\d\/2\]/.test(l))).toHaveLength(2);
  expect(lines.some((l) => l.startsWith('featscope: rendered 2 images'))).toBe(false);
  expect(r.stderr).toContain('x\\nfeatscope: rendered 2 images\\x1b[2J\\x1b[31m.jpg');
  expect(r.stderr).toContain('bad\\r\\x1b[1Adone.jpg');

  const layer = runCli([
    'render',
    DOG,
    '--layers',
    'layer1\x1b[2J\nfeatscope: all done',
    '--out',
    path.join(dir, 'o2'),
    '--model',
    MODELS.scripted,
    '--device',
    'cpu',
  ]);
  expect(layer.code).toBe(2);
  expect(layer.stderr).not.toContain('\x1b');
  expect(layer.stderr.split('\n').some((l) => l.startsWith('featscope: all done'))).toBe(false);
});
