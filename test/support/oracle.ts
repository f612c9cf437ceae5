/** Running the analysis oracles (test/support/*_oracle.py) on the eager twin of a model. */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CACHE, PYTHON, ROOT } from './models';

export function withTempDir<T>(prefix: string, fn: (dir: string) => T): T {
  fs.mkdirSync(CACHE, { recursive: true }); // a clean clone has no test/.cache yet
  const dir = fs.mkdtempSync(path.join(CACHE, prefix));
  try {
    return fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** withTempDir for an async `fn`: the folder is removed once its promise settles. */
export async function withTempDirAsync<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  fs.mkdirSync(CACHE, { recursive: true });
  const dir = fs.mkdtempSync(path.join(CACHE, prefix));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function writeF32(file: string, data: Float32Array): void {
  fs.writeFileSync(file, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
}

export function readF32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function runOracle(script: string, args: string[]): void {
  execFileSync(PYTHON, [path.join(ROOT, 'test', 'support', script), ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}
