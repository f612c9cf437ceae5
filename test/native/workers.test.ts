// Worker threads beside the main thread, and environments that end mid-forward (issue 15, item 1).
// Each scenario runs in a child process (test/support/hostile.js): before native state was kept per
// environment these aborted ("HandleScope::CreateHandle", "terminate called after throwing an
// instance of 'Napi::Error'") or crashed once a worker had exited.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { MODELS, ROOT, ensureTestModels } from '../support/models';

const HOSTILE = path.join(ROOT, 'test', 'support', 'hostile.js');

beforeAll(() => ensureTestModels());

interface Seen {
  mainSums: number[];
  workers: { sums: number[]; error: { code: string; ownClass: boolean } }[];
  workerExits: number[];
  mainAfter: number;
  mainError: { code: string; ownClass: boolean };
}

function scenario(name: string): Seen {
  const r = spawnSync(process.execPath, ['--expose-gc', HOSTILE, name, MODELS.scripted], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 240_000,
  });
  if (r.status !== 0 || r.signal)
    throw new Error(`scenario ${name}: exit ${r.status} signal ${r.signal}\n${r.stderr.slice(-3000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Seen;
}

function expectEnvironmentsSound(seen: Seen, workers: number) {
  const reference = seen.mainSums[0];
  expect(Number.isFinite(reference)).toBe(true);
  for (const s of seen.mainSums) expect(s).toBe(reference);
  // Each worker's captures equal the main thread's bit for bit, and its native errors are its own
  // environment's error class with the code.
  expect(seen.workers).toHaveLength(workers);
  for (const w of seen.workers) {
    expect(w.sums).toEqual([reference, reference, reference]);
    expect(w.error).toEqual({ code: 'MODEL_INVALID', ownClass: true });
  }
  // The main environment after the others ended: same values, its own error class.
  expect(seen.mainAfter).toBe(reference);
  expect(seen.mainError).toEqual({ code: 'MODEL_INVALID', ownClass: true });
}

test('two worker threads load and run models beside the main thread, then exit', () => {
  const seen = scenario('beside');
  expect(seen.workerExits).toEqual([0, 0]);
  expectEnvironmentsSound(seen, 2);
});

test('worker.terminate() during its forward leaves the process and the other environments working', () => {
  const seen = scenario('terminate');
  expect(seen.workerExits).toEqual([1]); // terminate()'s exit code
  expectEnvironmentsSound(seen, 1);
});

test("a worker's process.exit() during its forward leaves the process working", () => {
  const seen = scenario('exit');
  expect(seen.workerExits).toEqual([0]);
  expectEnvironmentsSound(seen, 1);
});
