/** Helpers for the CLI tests: a fresh build of dist/, running the CLI, temp folders, Chromium. */
import { execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PYTHON, ROOT } from './models';

export const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
export const DOG = path.join(ROOT, 'test', 'fixtures', 'images', 'dog.jpg');
export const CHROMIUM = process.env.FEATSCOPE_CHROMIUM || '/usr/bin/chromium';
export const HOSTILE = '<img src=x onerror=alert(1)>';

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** The CLI runs from dist/: compile lib/ when any source is newer than the build. */
export function ensureBuilt(): void {
  const built = fs.existsSync(CLI) ? fs.statSync(CLI).mtimeMs : 0;
  if (newestMtime(path.join(ROOT, 'lib')) > built) {
    execFileSync(
      process.execPath,
      [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.json')],
      { stdio: 'inherit' },
    );
  }
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, FEATSCOPE_DEBUG: '', ...options.env },
    encoding: 'utf8',
    timeout: 180_000,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Start the CLI and resolve once `ready(stderr)` holds; the caller signals it and awaits `done`. */
export function startCli(args: string[], ready: (stderr: string) => boolean) {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  const done = new Promise<CliResult>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const started = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      if (ready(stderr)) resolve();
    });
    child.on('close', () => reject(new Error(`CLI exited before it was ready:\n${stderr}`)));
  });
  return { child, started, done };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `featscope-${prefix}-`));
}

/** Every file under `dir`, relative, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}

/** A TorchScript model with a submodule named `<img src=x onerror=alert(1)>` and hostile metadata. */
export function makeHostileModel(file: string): void {
  const script = `
import json, sys, torch, torch.nn as nn
seq = nn.Sequential()
seq.add_module('stem', nn.Conv2d(3, 8, 3, padding=1))
seq.add_module(${JSON.stringify(HOSTILE)}, nn.ReLU())
seq.add_module('pool', nn.AdaptiveAvgPool2d(1))
seq.add_module('flat', nn.Flatten())
torch.manual_seed(0)
m = torch.jit.script(seq.eval())
meta = {"format": "featscope-model/1", "architecture": "<script>alert(2)</script>", "export": "script",
        "weights": {"source": "<img src=y onerror=alert(3)>", "trained": False},
        "input": {"size": [64, 64], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
torch.jit.save(m, sys.argv[1], _extra_files={"featscope.json": json.dumps(meta)})
`;
  execFileSync(PYTHON, ['-c', script, file], { stdio: 'inherit' });
}
