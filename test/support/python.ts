/** Access to the system Python (matplotlib, torchvision) for reference values; tests skip without it. */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// The one Python setting of the tests (test/support/models.ts).
import { PYTHON } from './models';
export { PYTHON };
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** True when PYTHON exists and can import every module named. */
export function pythonHas(...modules: string[]): boolean {
  if (!fs.existsSync(PYTHON)) return false;
  const r = spawnSync(PYTHON, ['-c', modules.map((m) => `import ${m}`).join('; ')], { encoding: 'utf8' });
  return r.status === 0;
}

export function runPython(args: string[], input?: string): string {
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', input, cwd: REPO_ROOT, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${PYTHON} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** torchvision's preprocessing of image files as one float32 NCHW batch (scripts/torchvision_preprocess.py). */
export function torchvisionPreprocess(files: string[], mode: 'squash' | 'crop', extra: string[] = []): Float32Array {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-tv-')), 'batch.f32');
  try {
    runPython([
      path.join(REPO_ROOT, 'scripts', 'torchvision_preprocess.py'),
      '--mode',
      mode,
      '--out',
      out,
      ...extra,
      ...files,
    ]);
    const buf = fs.readFileSync(out);
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
}

/** Mean, 99th percentile and max of |a - b|. */
export function diffStats(a: Float32Array, b: Float32Array): { mean: number; p99: number; max: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  const d = new Float64Array(a.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    d[i] = Math.abs(a[i] - b[i]);
    sum += d[i];
  }
  d.sort();
  return { mean: sum / d.length, p99: d[Math.floor(0.99 * (d.length - 1))], max: d[d.length - 1] };
}
