/**
 * Generated Slurm and Kubernetes files with hostile values: a line break anywhere (an option
 * value, the wrapped command, the output file name, values that land only in comments) is
 * refused; quotes, `$(...)` and backticks are written so that running the script passes them to
 * featscope as they are and runs nothing else.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import YAML from 'yaml';
import { ensureBuilt, runCli, tempDir } from '../support/cli';

beforeAll(() => ensureBuilt());

const SEP = '\u2028';
test.each([
  ['slurm-job', ['--partition', 'gpu\nrm -rf ~']],
  ['slurm-job', ['--partition', 'gpu;touch x']],
  ['slurm-job', ['--name', 'ok', '-o', 'job\ntouch PWNED.sbatch']],
  ['slurm-job', ['--bind-paths', '/data\n/x']],
  ['slurm-job', ['--', 'stats', '/data/p\nhotos', '--out', '/out/s']],
  ['slurm-job', ['--', 'stats', '/data/photos', '--out', `/out/s${SEP}x`]],
  ['k8s-job', ['--data-claim', 'd\n  x: 1', '--out-claim', 'o']],
  ['k8s-job', ['--data-claim', 'd', '--out-claim', 'o', '--namespace', 'a\nb']],
  ['k8s-job', ['--data-claim', 'd', '--out-claim', 'o', '--namespace', 'Bad_NS']],
  ['k8s-job', ['--data-claim', 'd', '--out-claim', 'o', '-o', 'x\n# kubectl delete all.yaml']],
  ['k8s-job', ['--data-claim', 'd', '--out-claim', 'o', '--image', 'img\r\n  command: [sh]']],
])('%s refuses %j with a usage error and writes nothing', (command, extra) => {
  const dir = tempDir('cluster-hostile');
  const base = [
    '--shards',
    '2',
    ...(command === 'k8s-job' && !extra.includes('--data-claim') ? ['--data-claim', 'd', '--out-claim', 'o'] : []),
  ];
  const tail = extra.includes('--') ? [] : ['--', 'stats', '/data/photos', '--out', '/out/stats'];
  const r = runCli([command, ...base, ...extra, ...tail], { cwd: dir });
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/\[USAGE\]/);
  expect(r.stderr).toMatch(/line break or control character|partition name|DNS label/);
  expect(fs.readdirSync(dir)).toEqual([]);
});

test('a generated sbatch script, run, hands quotes, $(...) and backticks to featscope as they are', () => {
  const dir = tempDir('cluster-run');
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  // A stand-in for featscope on PATH that records its arguments, one per line, NUL-safe enough here.
  fs.writeFileSync(
    path.join(bin, 'featscope'),
    `#!/bin/bash\nfor a in "$@"; do printf '%s\\n' "$a"; done >> "${dir}/argv.txt"\n`,
    {
      mode: 0o755,
    },
  );
  const hostileOut = `${dir}/o'ut $(touch ${dir}/PWNED1) \`touch ${dir}/PWNED2\` "x" ; touch ${dir}/PWNED3`;
  const r = runCli(
    [
      'slurm-job',
      '--shards',
      '2',
      '--gpus',
      '0',
      '-o',
      path.join(dir, `we'ird $(touch PWNED4).sbatch`),
      '--',
      'stats',
      `${dir}/ph"otos`,
      '--out',
      hostileOut,
    ],
    { cwd: dir },
  );
  expect(r.code).toBe(0);
  const script = fs.readdirSync(dir).find((f) => f.endsWith('.sbatch') && !f.includes('-merge'))!;
  expect(script).toBeDefined();
  for (const s of [script, script.replace(/\.sbatch$/, '-merge.sbatch')]) {
    const run = spawnSync('bash', [path.join(dir, s)], {
      cwd: dir,
      env: {
        PATH: `${bin}:/usr/bin:/bin`,
        SLURM_ARRAY_TASK_ID: '0',
        SLURM_ARRAY_TASK_COUNT: '2',
        SLURM_ARRAY_TASK_MIN: '0',
      },
      encoding: 'utf8',
    });
    expect(run.status).toBe(0);
  }
  for (const p of ['PWNED1', 'PWNED2', 'PWNED3', 'PWNED4']) expect(fs.existsSync(path.join(dir, p))).toBe(false);
  const lines = fs.readFileSync(path.join(dir, 'argv.txt'), 'utf8').trimEnd().split('\n');
  expect(lines).toEqual(['stats', `${dir}/ph"otos`, '--out', hostileOut, 'merge', hostileOut, '--out', hostileOut]);
});

test('a generated Kubernetes Job keeps hostile-looking values as values', () => {
  const dir = tempDir('cluster-k8s');
  const out = '/out/x: y # z';
  const r = runCli(
    [
      'k8s-job',
      '--shards',
      '2',
      '--data-claim',
      'd',
      '--out-claim',
      'o',
      '--image',
      'reg/img:1 # c',
      '-o',
      path.join(dir, "a'b #c.yaml"),
      '--',
      'stats',
      '/data/p',
      '--out',
      out,
    ],
    { cwd: dir },
  );
  expect(r.code).toBe(0);
  const text = fs.readFileSync(path.join(dir, "a'b #c.yaml"), 'utf8');
  const doc = YAML.parse(text);
  const container = doc.spec.template.spec.containers[0];
  expect(container.image).toBe('reg/img:1 # c');
  expect(container.args).toEqual(['featscope', 'stats', '/data/p', '--out', out, '--shards', '2']);
  // The comment header is two lines, both comments.
  expect(
    text
      .split('\n')
      .slice(0, 2)
      .every((l) => l.startsWith('#')),
  ).toBe(true);
});
