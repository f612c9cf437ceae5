/**
 * The CLI's own error codes (lib/cli/codes.ts), the one failure type's code, the one end-of-run
 * function's exit statuses and the one Ctrl-C handler's first signal.
 */
import { usage } from '../../lib/cli/args';
import { CLI_CODES, asCode, cliError } from '../../lib/cli/codes';
import { interruptible, Interrupted } from '../../lib/cli/interrupt';
import { endRun, reportError } from '../../lib/cli/summary';
import { ERROR_CODES, FeatscopeError } from '../../lib/errors';

let stderr: jest.SpyInstance;
let written = '';
beforeEach(() => {
  written = '';
  stderr = jest.spyOn(process.stderr, 'write').mockImplementation((s) => {
    written += String(s);
    return true;
  });
});
afterEach(() => stderr.mockRestore());

test('CLI errors are FeatscopeErrors with the CLI codes; a usage error exits 2, others 1', () => {
  expect([...CLI_CODES].sort()).toEqual(['UNSAFE_PATH', 'USAGE']);
  const e = usage('--x is wrong', 'render');
  expect(e).toBeInstanceOf(FeatscopeError);
  expect(e.code).toBe('USAGE');
  expect(reportError(e)).toBe(2);
  expect(written).toBe('featscope: --x is wrong (see `featscope render --help`) [USAGE]\n');
  written = '';
  expect(reportError(cliError('UNSAFE_PATH', 'no\nway'), 'job 1/2 (a)')).toBe(1);
  expect(written).toBe('featscope: job 1/2 (a): no\\nway [UNSAFE_PATH]\n');
  expect(reportError(new Error('boom'))).toBe(1);
});

test('asCode keeps the known codes and makes anything else INTERNAL', () => {
  for (const c of [...ERROR_CODES, ...CLI_CODES]) expect(asCode(c)).toBe(c);
  expect(asCode(undefined)).toBe('INTERNAL');
  expect(asCode('EVIL\n')).toBe('INTERNAL');
});

test('endRun: 130 when stopped or interrupted, 1 with failures, 0 otherwise', () => {
  expect(endRun({ command: 'stats', stopped: true })).toBe(130);
  expect(written).toContain('featscope: stats: interrupted (Ctrl-C); nothing was written');
  const base = { command: 'gradcam', json: false, out: '/o', total: 2, files: ['/o/a.png'], summary: {} };
  const ok = { done: 2, skipped: 0, failed: [], interrupted: false };
  expect(endRun({ ...base, outcome: ok })).toBe(0);
  const failed = [{ source: 'b.jpg', code: asCode('IMAGE_DECODE'), message: 'bad' }];
  expect(endRun({ ...base, outcome: { ...ok, done: 1, failed } })).toBe(1);
  expect(written).toContain('  b.jpg: bad [IMAGE_DECODE]\n');
  expect(endRun({ ...base, outcome: { ...ok, failed, interrupted: true } })).toBe(130);
});

test('the first Ctrl-C stops the run at its next check; dispose removes the handlers', () => {
  const notes: string[] = [];
  const before = process.listenerCount('SIGINT');
  const interrupt = interruptible({ note: (t) => notes.push(t) }, { stopping: 'stopping now' });
  expect(process.listenerCount('SIGINT')).toBe(before + 1);
  expect(() => interrupt.check()).not.toThrow();
  process.emit('SIGINT');
  expect(interrupt.stopping).toBe(true);
  expect(notes).toEqual(['stopping now']);
  expect(() => interrupt.check()).toThrow(Interrupted);
  interrupt.dispose();
  expect(process.listenerCount('SIGINT')).toBe(before);
});
