// CLI naming and input scanning without a model (issue 15, item 4): unique layer file names,
// linear glob matching, the output folder never read back as input.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { layerFileNames } from '../../lib/cli/files';
import { expandInputs, matchGlob, matchSegment } from '../../lib/cli/inputs';

describe('layerFileNames', () => {
  test('every layer and picture kind gets its own file, whatever the module names', () => {
    const layers = [
      'a/b',
      'a_b',
      'input',
      'x',
      'x.overlay',
      'Conv',
      'conv',
      'layer1.0.relu#1',
      'layer1.0.relu_call1',
      'conv1',
      'layer4',
    ];
    const base = layerFileNames(layers);
    expect(base.size).toBe(layers.length);
    // Files of one image's folder: input.png, and per layer a grid and an overlay.
    const files = ['input.png', ...layers.flatMap((l) => [`${base.get(l)}.png`, `${base.get(l)}.overlay.png`])].map(
      (f) => f.toLowerCase(),
    );
    expect(new Set(files).size).toBe(files.length);
    // Clean, unambiguous names keep their plain file names.
    expect(base.get('conv1')).toBe('conv1');
    expect(base.get('layer4')).toBe('layer4');
    expect(base.get('x')).toBe('x');
    // The ambiguous ones carry a hash of the full name.
    for (const l of ['a/b', 'a_b', 'input', 'x.overlay', 'Conv', 'conv', 'layer1.0.relu#1', 'layer1.0.relu_call1']) {
      expect(base.get(l)).toMatch(/-[0-9a-f]{8}$/);
    }
    // Stable across runs and independent of the other layers' order.
    expect(layerFileNames([...layers].reverse())).toEqual(base);
  });

  test('a lone call suffix keeps the readable name', () => {
    expect(layerFileNames(['layer1.0.relu', 'layer1.0.relu#1']).get('layer1.0.relu#1')).toBe('layer1.0.relu_call1');
  });
});

describe('glob matching', () => {
  test.each([
    ['*.png', 'a.png', true],
    ['*.png', 'a/b.png', false],
    ['**/*.png', 'a/b/c.png', true],
    ['**/*.png', 'c.png', true],
    ['a/**/c.png', 'a/c.png', true],
    ['a/**/c.png', 'a/x/y/c.png', true],
    ['a/**/c.png', 'b/x/c.png', false],
    ['[ab].png', 'b.png', true],
    ['[!ab].png', 'a.png', false],
    ['photo[0-9][0-9].jpg', 'photo07.jpg', true],
    ['?.jpg', 'ab.jpg', false],
    ['a*b*c', 'abxbc', true],
    ['*a*b', 'aaab', true],
  ])('%s against %s: %s', (pattern, file, want) => {
    expect(matchGlob(pattern, file)).toBe(want);
  });

  test('many stars against a long name that does not match answer at once (was > 60 s)', () => {
    // A regular expression with backtracking took more than a minute on this; the matcher is
    // O(name x pattern). Checked by result on names far longer than any that backtracking survives.
    const name = `${'a'.repeat(20000)}.png`;
    expect(matchSegment('*a*a*a*a*a*a*a*a*b.png', name)).toBe(false);
    expect(matchSegment('*a*a*a*a*a*a*a*a*.png', name)).toBe(true);
  });
});

describe('expandInputs', () => {
  test('a folder scan and a glob skip the output folder inside it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-scan-'));
    const out = path.join(dir, 'out');
    fs.mkdirSync(path.join(out, 'a'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'a.png'), 'x');
    fs.writeFileSync(path.join(out, 'a', 'input.png'), 'x');
    fs.writeFileSync(path.join(out, 'a', 'conv1.png'), 'x');
    const all = await expandInputs([dir]);
    expect(all.map((i) => path.relative(dir, i.source)).sort()).toEqual([
      'a.png',
      'out/a/conv1.png',
      'out/a/input.png',
    ]);
    const scanned = await expandInputs([dir], { skip: out });
    expect(scanned.map((i) => path.relative(dir, i.source))).toEqual(['a.png']);
    const globbed = await expandInputs([path.join(dir, '**', '*.png')], { skip: out });
    expect(globbed.map((i) => path.relative(dir, i.source))).toEqual(['a.png']);
    // The output folder given as the input folder: a usage error that says why.
    await expect(expandInputs([out], { skip: out })).rejects.toMatchObject({
      code: 'NO_INPUTS',
      message: expect.stringMatching(/it is the output folder/),
    });
    // A file named explicitly is taken even inside it.
    expect((await expandInputs([path.join(out, 'a', 'conv1.png')], { skip: out })).length).toBe(1);
  });
});

describe('picture titles state the channel-selection rule', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { selectionRule } = require('../../lib/render/grid') as typeof import('../../lib/render/grid');
  test.each([
    [16, 64, 'first 16 of 64 channels'],
    [64, 64, 'all 64 channels'],
    [{ top: 16, by: 'mean' }, 512, 'top 16 of 512 channels by mean'],
    [{ top: 8 }, 512, 'top 8 of 512 channels by max'],
    [[3, 7, 9], 64, 'channels 3, 7, 9 of 64'],
  ])('%j of %d: %s', (selection, channels, want) => {
    expect(selectionRule(selection as never, channels as number)).toBe(want);
  });
});
