// libtorch's intra-op thread count: setNumThreads / getNumThreads, FEATSCOPE_THREADS at load and
// the CLI's --threads. Each case runs in its own process (the count is process-wide), and the
// forwards' use of it is checked on the OS threads the process has (/proc/self/task): OpenMP starts
// a team of n - 1 threads for a parallel region run with n threads, on the libuv pool threads that
// run forwards.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { ensureBuilt, runCli } from '../support/cli';
import { ensureTestModels, MODELS, ROOT } from '../support/models';

const DIST = JSON.stringify(path.join(ROOT, 'dist', 'index.js'));

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
});

function node(script: string, env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, FEATSCOPE_THREADS: '', ...env },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('setNumThreads(n) is what forwards on the worker threads use', () => {
  const r = node(`
    const fs = require('fs');
    const { loadModel, setNumThreads, getNumThreads } = require(${DIST});
    const tasks = () => fs.readdirSync('/proc/self/task').length;
    (async () => {
      setNumThreads(1);
      const m = await loadModel(${JSON.stringify(MODELS.scripted)}, { device: 'cpu' });
      const base = tasks(); // the pool threads exist now (the load ran on one)
      const x = { data: new Float32Array(3 * 64 * 64).fill(0.5), shape: [1, 3, 64, 64] };
      // Every pool thread runs forwards at one thread first (in parallel: all four take part).
      for (let i = 0; i < 3; i++) await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(() => m.forward(x, { optimize: false })));
      const one = tasks();
      const atOne = getNumThreads();
      setNumThreads(3);
      const atThree = getNumThreads();
      for (let i = 0; i < 3; i++) await m.forward(x, { optimize: false });
      const three = tasks();
      process.stdout.write(JSON.stringify({ atOne, atThree, base, one, three }));
    })().catch((e) => { console.error(e); process.exit(1); });`);
  expect(r.stderr).toBe('');
  const o = JSON.parse(r.stdout);
  expect(o.atOne).toBe(1);
  expect(o.atThree).toBe(3);
  // One thread: no OpenMP team anywhere (without the count applied on the pool threads, libgomp's
  // default of one per core started teams there).
  expect(o.one).toBe(o.base);
  // A pool thread that ran its first forwards with one thread starts a team of 3 now.
  expect(o.three - o.one).toBeGreaterThanOrEqual(2);
});

test('bad counts are INVALID_ARGUMENT errors naming the value', () => {
  const r = node(`
    const { setNumThreads, getNumThreads } = require(${DIST});
    const out = [];
    for (const v of [0, -1, 1.5, '2', NaN, 1025, undefined]) {
      try { setNumThreads(v); out.push('accepted'); } catch (e) { out.push(e.code + ': ' + e.message); }
    }
    out.push(getNumThreads());
    process.stdout.write(JSON.stringify(out));`);
  const out = JSON.parse(r.stdout) as (string | number)[];
  expect(
    out
      .slice(0, 7)
      .every(
        (s) =>
          typeof s === 'string' &&
          s.startsWith('INVALID_ARGUMENT: Expected an integer from 1 to 1024 for setNumThreads(n)'),
      ),
  ).toBe(true);
  expect(out[0]).toMatch(/received 0/);
  expect(out[3]).toMatch(/received "2"/);
  expect(out[5]).toMatch(/received 1025/);
  expect(typeof out[7]).toBe('number'); // unchanged, libtorch's default
});

test('FEATSCOPE_THREADS sets the count when the addon loads; a bad value is a coded error', () => {
  const script = `
    const { getNumThreads, versions } = require(${DIST});
    try { process.stdout.write(JSON.stringify({ n: getNumThreads(), v: versions().threads })); }
    catch (e) { process.stdout.write(JSON.stringify({ code: e.code, message: e.message })); }`;
  expect(JSON.parse(node(script, { FEATSCOPE_THREADS: '3' }).stdout)).toEqual({ n: 3, v: 3 });
  const bad = JSON.parse(node(script, { FEATSCOPE_THREADS: 'four' }).stdout);
  expect(bad).toEqual({
    code: 'INVALID_ARGUMENT',
    message: expect.stringMatching(/for FEATSCOPE_THREADS but received "four"/),
  });
});

test('CLI: --threads N on any command; a bad N is a usage error', () => {
  const info = runCli(['info', '--json', '--threads', '3']);
  expect(info.code).toBe(0);
  expect(JSON.parse(info.stdout).threads).toBe(3);
  // --threads wins over FEATSCOPE_THREADS.
  expect(
    JSON.parse(runCli(['info', '--json', '--threads', '2'], { env: { FEATSCOPE_THREADS: '3' } }).stdout).threads,
  ).toBe(2);
  const bad = runCli(['layers', '--threads', '0', '--model', MODELS.scripted]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(
    /--threads must be an integer from 1 to 1024, not "0" \(see `featscope layers --help`\) \[USAGE\]/,
  );
  const layers = runCli(['layers', '--threads', '2', '--model', MODELS.scripted, '--json', '--size', '32']);
  expect(layers.code).toBe(0);
  expect(JSON.parse(layers.stdout).layers).toHaveLength(67);
  for (const cmd of [
    'info',
    'layers',
    'render',
    'export',
    'gradcam',
    'weights',
    'attack',
    'stats',
    'maximize',
    'similarity',
    'concepts',
  ]) {
    expect(runCli([cmd, '--help']).stdout).toMatch(/--threads N/);
  }
});
