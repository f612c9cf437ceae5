/**
 * Hostile job files for `featscope run`: each is refused with USAGE and a message naming the
 * file and the reason, without hanging, exhausting memory or overflowing the stack.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readJobFile } from '../../lib/cli/run';
import { FeatscopeError } from '../../lib/errors';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-hostile-jobs-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function refused(name: string, text: string | null, pattern: RegExp): void {
  const file = path.join(dir, name);
  if (text !== null) fs.writeFileSync(file, text);
  let err: unknown;
  try {
    readJobFile(file);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FeatscopeError);
  expect((err as FeatscopeError).code).toBe('USAGE');
  expect((err as Error).message).toContain(JSON.stringify(file));
  expect((err as Error).message).toMatch(pattern);
}

test.each([
  ['JSON __proto__ in a job', 'p1.json', '{"command":"info","__proto__":{"out":"/tmp/elsewhere"}}', /"__proto__"/],
  [
    'JSON __proto__ in defaults',
    'p2.json',
    '{"defaults":{"__proto__":{"device":"cuda"}},"jobs":[{"command":"info"}]}',
    /"__proto__"/,
  ],
  ['YAML __proto__', 'p3.yaml', 'command: info\n__proto__:\n  out: /tmp/elsewhere\n', /"__proto__"/],
  ['YAML constructor', 'p4.yaml', 'jobs:\n  - command: info\n    constructor: 1\n', /"constructor"/],
  ['prototype', 'p5.json', '[{"command":"info","prototype":true}]', /"prototype"/],
])('%s is refused as an unknown key', (_what, name, text, pattern) => refused(name, text, pattern));

test('deep nesting is refused before parsing, in JSON and YAML flow and block style', () => {
  refused('deep.json', '['.repeat(200000) + ']'.repeat(200000), /more than 32 deep/);
  refused('deep.yaml', 'command: info\nlayers: ' + '['.repeat(200000) + ']'.repeat(200000) + '\n', /more than 32 deep/);
  const block = Array.from({ length: 40 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n') + ' 1\n';
  refused('deepblock.yaml', block, /more than 32 deep/);
  // Brackets inside quoted strings are not nesting.
  fs.writeFileSync(path.join(dir, 'quoted.yaml'), `command: info\nname: "${'['.repeat(100)}"\n`);
  expect(readJobFile(path.join(dir, 'quoted.yaml'))[0].name).toBe('['.repeat(100));
});

test('a FIFO, a device and an oversized file are refused without blocking', () => {
  const fifo = path.join(dir, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  refused('fifo.yaml', null, /not a regular file/);
  fs.symlinkSync('/dev/zero', path.join(dir, 'zero.json'));
  refused('zero.json', null, /not a regular file/);
  refused('big.yaml', `command: info\n#${'x'.repeat(1 << 20)}\n`, /over the limit of 1048576/);
  refused('missing.yaml', null, /no such file/);
});
