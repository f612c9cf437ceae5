// Exits that end (issue 15, item 3): with a forward that never ends (test/support/spin_model.py),
// process.exit, SIGTERM and a second Ctrl-C end the process within FEATSCOPE_EXIT_TIMEOUT_MS
// (1 s here; 10 s by default). Before, Node's exit joined libuv's thread pool and waited for the
// forward for ever (the test's own kill after 60 s would show as signal SIGKILL).
import { execFileSync, spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { MODELS, PYTHON, ROOT } from '../support/models';
import { CLI, DOG, ensureBuilt, tempDir } from '../support/cli';

// Named by the script's content, so a changed script makes a new model file (caches survive runs).
const SPIN_SCRIPT = path.join(ROOT, 'test', 'support', 'spin_model.py');
const SPIN = path.join(
  MODELS.edge,
  `spin-${createHash('sha1').update(fs.readFileSync(SPIN_SCRIPT)).digest('hex').slice(0, 8)}.pt`,
);
const ENV = { ...process.env, FEATSCOPE_EXIT_TIMEOUT_MS: '1000', FEATSCOPE_DEBUG: '' };

beforeAll(() => {
  ensureBuilt();
  if (!fs.existsSync(SPIN)) {
    fs.mkdirSync(path.dirname(SPIN), { recursive: true });
    execFileSync(PYTHON, [SPIN_SCRIPT, SPIN], { stdio: 'inherit' });
  }
});

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs node with `args`; calls `act(child)` once stderr matches `ready`; kills it after 60 s. */
function run(args: string[], ready: RegExp | null, act: (child: ReturnType<typeof spawn>) => void): Promise<Ended> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let acted = false;
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  child.stdout!.resume();
  child.stderr!.on('data', (d) => {
    stderr += d;
    if (!acted && ready && ready.test(stderr)) {
      acted = true;
      act(child);
    }
  });
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(kill);
      resolve({ code, signal, stderr });
    }),
  );
}

test('process.exit while a forward never ends: the process ends with its code after the bound', async () => {
  const script = `
    const { loadModel } = require(${JSON.stringify(path.join(ROOT, 'dist'))});
    (async () => {
      const m = await loadModel(${JSON.stringify(SPIN)}, { device: 'cpu' });
      m.forward({ data: new Float32Array(3 * 8 * 8).fill(1), shape: [1, 3, 8, 8] }, { layers: ['conv'] });
      process.stderr.write('forward started\\n');
      setTimeout(() => process.exit(7), 200);
    })();`;
  const r = await run(['-e', script], null, () => {});
  expect(r.signal).toBeNull();
  expect(r.code).toBe(7);
  expect(r.stderr).toMatch(/forward started/);
  expect(r.stderr).toMatch(
    /featscope: 1 native run\(s\) still busy 1000 ms after exit was asked for; ending the process without waiting/,
  );
});

const renderArgs = () => [CLI, 'render', DOG, '--model', SPIN, '--layers', 'conv', '--out', tempDir('spin-out')];

test('SIGTERM during a forward that never ends: the CLI quits at once, exit 130', async () => {
  // The handlers are in place once the batch runner says it is running the model.
  const r = await run(renderArgs(), /running the model on 1 image/, (child) =>
    setTimeout(() => child.kill('SIGTERM'), 300),
  );
  expect(r.signal).toBeNull();
  expect(r.code).toBe(130);
  expect(r.stderr).toMatch(/stopped at once; finished files are complete/);
  expect(r.stderr).toMatch(/still busy 1000 ms after exit/);
});

test('a second Ctrl-C during a forward that never ends: the CLI quits, exit 130', async () => {
  const r = await run(renderArgs(), /running the model on 1 image/, (child) => {
    setTimeout(() => child.kill('SIGINT'), 300);
    setTimeout(() => child.kill('SIGINT'), 800);
  });
  expect(r.signal).toBeNull();
  expect(r.code).toBe(130);
  expect(r.stderr).toMatch(/stopping after the current image \(Ctrl-C again to quit at once\)/);
  expect(r.stderr).toMatch(/stopped at once; finished files are complete/);
  expect(r.stderr).toMatch(/still busy 1000 ms after exit/);
});
