/**
 * `featscope merge` on tampered shard outputs: every case is refused with MERGE_INVALID and a
 * message naming the file, without a crash (an abort of V8), a hang (a FIFO) or a file read from
 * outside the shard folders; a truncated features file never gives a silently wrong CKA.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- the tests edit parsed JSON of any shape */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { MODELS, ensureTestModels } from '../support/models';
import { DOG, ensureBuilt, runCli, tempDir } from '../support/cli';

const FIXTURES = path.dirname(DOG);
let photos: string;
let statsOut: string;
let simOut: string;
let renderOut: string;

const cli = (args: string[]) => runCli([...args, '--model', MODELS.scripted, '--device', 'cpu']);

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
  const dir = tempDir('merge-tampered');
  photos = path.join(dir, 'photos');
  fs.mkdirSync(photos);
  for (const f of ['dog.jpg', 'chelsea.png', 'coffee.png', 'camera.png'])
    fs.copyFileSync(path.join(FIXTURES, f), path.join(photos, f));
  statsOut = path.join(dir, 'stats');
  simOut = path.join(dir, 'sim');
  renderOut = path.join(dir, 'render');
  for (const i of [0, 1]) {
    expect(
      cli(['stats', photos, '--layers', 'layer4', '--examples', '0', '--out', statsOut, '--shard', `${i}/2`]).code,
    ).toBe(0);
    expect(cli(['similarity', photos, '--layers', 'layer3,layer4', '--out', simOut, '--shard', `${i}/2`]).code).toBe(0);
    expect(cli(['render', photos, '--layers', 'layer1', '--out', renderOut, '--shard', `${i}/2`]).code).toBe(0);
  }
});

/** A copy of a run's shard folders, with `edit` applied to shard 0's folder; then merge it. */
function tampered(from: string, edit: (shard0: string) => void) {
  const to = tempDir('merge-tampered-copy');
  fs.cpSync(from, to, { recursive: true });
  edit(path.join(to, 'shard-0-of-2'));
  const r = runCli(['merge', to, '--out', path.join(to, 'merged')], {});
  return { ...r, to };
}

function editJson(file: string, f: (j: Record<string, any>) => void, raw?: ((text: string) => string) | null) {
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  f(j);
  fs.writeFileSync(file, raw ? raw(JSON.stringify(j)) : JSON.stringify(j));
}

const refused = (r: { code: number | null; stderr: string }, pattern: RegExp) => {
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/\[MERGE_INVALID\]/);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/unexpected error|FATAL|Aborted|RangeError/);
};

test('the untouched shards merge (the baseline for the cases below)', () => {
  for (const out of [statsOut, simOut, renderOut]) expect(tampered(out, () => undefined).code).toBe(0);
});

test.each<[string, (s: Record<string, any>) => void, RegExp, ((t: string) => string) | null]>([
  ['a non-finite sum', (s) => (s.layers[0].sum[0] = 'INF'), /sum\[0\] is Infinity/, (t) => t.replace('"INF"', '1e999')],
  ['a negative count', (s) => (s.layers[0].images = -3), /images is not a non-negative integer/, null],
  ['a silent count past the images', (s) => (s.layers[0].silent[1] = 1e9), /silent\[1\]/, null],
  ['an out-of-range sketch index', (s) => (s.layers[0].sketch[0].pos = [1e15, 1]), /sketch\[0\]/, null],
  ['sketch counts that do not add up', (s) => (s.layers[0].sketch[0].n += 5), /sketch\[0\]/, null],
  [
    'fewer channels in an array than declared',
    (s) => s.layers[0].max.pop(),
    /max does not hold one value per channel/,
    null,
  ],
  ['a top image that no shard read', (s) => (s.layers[0].top[0] = [[999, 1, 0]]), /names image 999/, null],
  ['files that are not [index, path] pairs', (s) => (s.files = [[-1, 'x']]), /files is not a list/, null],
])('stats: %s is refused', (_what, edit, pattern, raw) => {
  refused(
    tampered(statsOut, (d) => editJson(path.join(d, 'stats-state.json'), edit, raw)),
    pattern,
  );
});

test('a FIFO or a device as a state file is refused at once, never waited on', () => {
  for (const make of [(f: string) => execFileSync('mkfifo', [f]), (f: string) => fs.symlinkSync('/dev/zero', f)]) {
    const started = Date.now();
    const r = tampered(statsOut, (d) => {
      fs.rmSync(path.join(d, 'stats-state.json'));
      make(path.join(d, 'stats-state.json'));
    });
    refused(r, /not a regular file/);
    expect(Date.now() - started).toBeLessThan(60_000); // a hang would run into the test's timeout
  }
});

test('render: manifest paths outside the shard folder are refused, and nothing is copied from there', () => {
  const secret = path.join(tempDir('merge-secret'), 'secret.png');
  fs.writeFileSync(secret, 'SECRET');
  for (const [edit, pattern] of [
    [(m: Record<string, any>) => (m.images[0].layers[0].grid = secret), /is an absolute path/],
    [
      (m: Record<string, any>) => (m.images[0].layers[0].grid = '../../../../../../../etc/passwd'),
      /points outside the shard folder/,
    ],
    [
      (m: Record<string, any>) => (m.images[0].input = '../shard-1-of-2/../../x.png'),
      /points outside the shard folder/,
    ],
  ] as const) {
    const r = tampered(renderOut, (d) => editJson(path.join(d, 'manifest.json'), edit));
    refused(r, pattern);
  }
  // A link planted in the shard folder that leads out of it.
  const r = tampered(renderOut, (d) => {
    const m = JSON.parse(fs.readFileSync(path.join(d, 'manifest.json'), 'utf8'));
    fs.symlinkSync(secret, path.join(d, 'planted.png'));
    m.images[0].layers[0].grid = 'planted.png';
    fs.writeFileSync(path.join(d, 'manifest.json'), JSON.stringify(m));
  });
  refused(r, /link to outside the shard folder/);
});

test('similarity: a truncated or padded features file, or one outside the shard, is refused', () => {
  const featuresOf = (d: string) => {
    const st = JSON.parse(fs.readFileSync(path.join(d, 'similarity-state.json'), 'utf8'));
    return path.join(d, st.sides[0][0].file);
  };
  refused(
    tampered(simOut, (d) => {
      const f = featuresOf(d);
      fs.truncateSync(f, fs.statSync(f).size - 4);
    }),
    /truncated or altered/,
  );
  refused(
    tampered(simOut, (d) => fs.appendFileSync(featuresOf(d), Buffer.alloc(8))),
    /over the limit|truncated or altered/,
  );
  refused(
    tampered(simOut, (d) =>
      editJson(path.join(d, 'similarity-state.json'), (s) => (s.sides[0][0].file = '/etc/passwd')),
    ),
    /absolute path/,
  );
  refused(
    tampered(simOut, (d) => editJson(path.join(d, 'similarity-state.json'), (s) => (s.sides[0][0].channels = -1))),
    /sides is not a list/,
  );
});
