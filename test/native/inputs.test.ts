// Inputs JS takes away while the forward runs (issue 15, item 2): the addon copies the input at
// the call, so a transferred-and-collected buffer or a resizable buffer shrunk to nothing cannot
// be read by the forward. Before, the forward read freed memory (values like 5.6e29) or crashed
// (SIGSEGV on the shrunk buffer). Run in child processes with one libuv thread, so that the
// forward starts only after the input is gone.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { binding } from '../../lib/native';
import { MODELS, ROOT, ensureTestModels } from '../support/models';

const HOSTILE = path.join(ROOT, 'test', 'support', 'hostile.js');

beforeAll(() => ensureTestModels());

function scenario(name: string): { detachedLength: number; maxDiff: number; mainAfter: number } {
  const r = spawnSync(process.execPath, ['--expose-gc', HOSTILE, name, MODELS.scripted], {
    cwd: ROOT,
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    encoding: 'utf8',
    timeout: 240_000,
  });
  if (r.status !== 0 || r.signal)
    throw new Error(`scenario ${name}: exit ${r.status} signal ${r.signal}\n${r.stderr.slice(-3000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('an input transferred away and garbage-collected during the forward: the forward sees the input of the call', () => {
  const seen = scenario('transfer');
  expect(seen.detachedLength).toBe(0); // the caller's array really was detached
  expect(seen.maxDiff).toBe(0); // output and capture equal a forward on an untouched copy
  expect(Number.isFinite(seen.mainAfter)).toBe(true);
});

test('a resizable ArrayBuffer shrunk to 0 during the forward: no crash, the forward sees the input of the call', () => {
  const seen = scenario('resize');
  expect(seen.detachedLength).toBe(0);
  expect(seen.maxDiff).toBe(0);
});

test('a shape whose product overflows is refused with INVALID_INPUT, naming the limit', async () => {
  const b = binding();
  const m = await b.load(MODELS.scripted, 'cpu', 'fast');
  try {
    for (const shape of [
      [2 ** 32, 2 ** 32],
      [1, 3, 2 ** 40, 2 ** 40],
    ]) {
      expect(() => m.forward(new Float32Array(0), shape, [], {}, false)).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT', message: expect.stringMatching(/2\^53/) }),
      );
    }
    // The model still answers.
    const r = await m.forward(new Float32Array(3 * 32 * 32).fill(0.5), [1, 3, 32, 32], ['fc'], {}, false);
    expect(r.captures[0].shape).toEqual([1, 1000]);
  } finally {
    m.dispose();
  }
});

test('malformed arguments from a raw caller are INVALID_ARGUMENT errors naming the element (native/args.h)', async () => {
  const b = binding();
  const m = await b.load(MODELS.scripted, 'cpu', 'fast');
  try {
    const data = new Float32Array(3 * 32 * 32).fill(0.5);
    const refused = (message: RegExp) =>
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });
    expect(() => m.forward(data, [1, 3, '32', 32] as never, [], {}, false)).toThrow(
      refused(/shape\[2\] must be a number, got a string/),
    );
    expect(() => m.forward(data, 'x' as never, [], {}, false)).toThrow(refused(/shape must be an array of integers/));
    expect(() => m.forward(data, [1, 3, 32, 32], ['fc', 7] as never, {}, false)).toThrow(
      refused(/layers\[1\] must be a string, got a number/),
    );
    expect(() => m.forward(data, [1, 3, 32, 32], ['fc'], { channels: [0, null] } as never, false)).toThrow(
      refused(/channels\[1\] must be a number, got null/),
    );
    const spec = { classes: [1, {}], loss: 'score', inputGrad: false, parameterGrads: false } as never;
    expect(() => m.backward(data, [1, 3, 32, 32], ['fc'], spec)).toThrow(
      refused(/classes\[1\] must be a number, got an object/),
    );
    // Options of the wrong type take their defaults, as before: a forward still runs.
    const r = await m.forward(data, [1, 3, 32, 32], ['fc'], { top: 'many', by: 3 } as never, 'yes' as never);
    expect(r.captures[0].shape).toEqual([1, 1000]);
  } finally {
    m.dispose();
  }
});
