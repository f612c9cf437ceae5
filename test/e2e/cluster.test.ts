/**
 * `featscope k8s-job` and `featscope slurm-job`: the Kubernetes manifests parse and pass the
 * batch/v1 Job schema (the Kubernetes OpenAPI schema of the kubernetes-models package, run in a
 * child process as that package is ESM only; mutations that break it must fail), plus the checks
 * the schema leaves to the API server's validation (known fields, Indexed needs completions, a
 * Job's restartPolicy, volume names); the sbatch scripts are run with bash as Slurm would run
 * them, 4 array tasks then the merge.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import YAML from 'yaml';
import { MODELS, ROOT, ensureTestModels } from '../support/models';
import { CLI, DOG, ensureBuilt, runCli, tempDir } from '../support/cli';

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
});

type Obj = Record<string, unknown>;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// Field names of the objects used, from the Kubernetes API reference (batch/v1 Job, core/v1 PodSpec).
const ALLOWED: Record<string, string[]> = {
  job: ['apiVersion', 'kind', 'metadata', 'spec', 'status'],
  metadata: ['name', 'generateName', 'namespace', 'labels', 'annotations'],
  jobSpec: [
    'activeDeadlineSeconds',
    'backoffLimit',
    'backoffLimitPerIndex',
    'completionMode',
    'completions',
    'managedBy',
    'manualSelector',
    'maxFailedIndexes',
    'parallelism',
    'podFailurePolicy',
    'podReplacementPolicy',
    'selector',
    'successPolicy',
    'suspend',
    'template',
    'ttlSecondsAfterFinished',
  ],
  template: ['metadata', 'spec'],
  podSpec: [
    'containers',
    'initContainers',
    'restartPolicy',
    'volumes',
    'nodeSelector',
    'tolerations',
    'affinity',
    'serviceAccountName',
    'securityContext',
    'imagePullSecrets',
  ],
  container: [
    'name',
    'image',
    'command',
    'args',
    'env',
    'resources',
    'volumeMounts',
    'workingDir',
    'imagePullPolicy',
    'securityContext',
  ],
  resources: ['limits', 'requests', 'claims'],
  volumeMount: ['name', 'mountPath', 'readOnly', 'subPath'],
  volume: ['name', 'persistentVolumeClaim', 'emptyDir', 'hostPath', 'configMap', 'secret', 'nfs'],
};

function onlyKeys(o: Obj, kind: string, where: string): void {
  for (const k of Object.keys(o))
    if (!ALLOWED[kind].includes(k)) throw new Error(`${where}: unknown field ${k} for ${kind}`);
}

/** Per object, null if it passes the Kubernetes schema, else the schema's message. */
function schemaErrors(docs: Obj[]): Array<string | null> {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'test', 'support', 'k8s_validate.mjs')], {
    input: JSON.stringify(docs),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`k8s_validate.mjs failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const QUANTITY = /^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$/;

/** The checks the API server makes on a batch/v1 Job, for the fields these manifests use. */
function checkJob(doc: Obj, where: string): void {
  onlyKeys(doc, 'job', where);
  expect(doc.apiVersion).toBe('batch/v1');
  expect(doc.kind).toBe('Job');
  const meta = doc.metadata as Obj;
  onlyKeys(meta, 'metadata', `${where}.metadata`);
  expect(typeof meta.name).toBe('string');
  expect(meta.name).toMatch(DNS_LABEL);
  expect((meta.name as string).length).toBeLessThanOrEqual(63);
  for (const v of Object.values(meta.labels as Obj))
    expect(String(v)).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/);
  const spec = doc.spec as Obj;
  onlyKeys(spec, 'jobSpec', `${where}.spec`);
  for (const k of ['completions', 'parallelism', 'backoffLimit', 'backoffLimitPerIndex', 'maxFailedIndexes']) {
    if (spec[k] !== undefined) expect(Number.isInteger(spec[k]) && (spec[k] as number) >= 0).toBe(true);
  }
  if (spec.completionMode !== undefined) expect(['NonIndexed', 'Indexed']).toContain(spec.completionMode);
  if (spec.completionMode === 'Indexed') expect(spec.completions).toBeGreaterThanOrEqual(1); // Indexed needs completions
  if (spec.backoffLimitPerIndex !== undefined) expect(spec.completionMode).toBe('Indexed');
  if (spec.maxFailedIndexes !== undefined) {
    expect(spec.backoffLimitPerIndex).toBeDefined();
    expect(spec.maxFailedIndexes as number).toBeLessThanOrEqual(spec.completions as number);
  }
  if (spec.parallelism !== undefined && spec.completions !== undefined)
    expect(spec.parallelism as number).toBeLessThanOrEqual(spec.completions as number);
  const template = spec.template as Obj;
  onlyKeys(template, 'template', `${where}.spec.template`);
  const pod = template.spec as Obj;
  onlyKeys(pod, 'podSpec', `${where}.spec.template.spec`);
  expect(['Never', 'OnFailure']).toContain(pod.restartPolicy); // a Job's pods may not restart Always
  const volumes = (pod.volumes ?? []) as Obj[];
  const names = new Set<string>();
  for (const v of volumes) {
    onlyKeys(v, 'volume', `${where} volume`);
    expect(v.name).toMatch(DNS_LABEL);
    expect(Object.keys(v).filter((k) => k !== 'name')).toHaveLength(1); // exactly one source
    if (v.persistentVolumeClaim) expect(typeof (v.persistentVolumeClaim as Obj).claimName).toBe('string');
    names.add(v.name as string);
  }
  expect(names.size).toBe(volumes.length);
  const containers = pod.containers as Obj[];
  expect(containers.length).toBeGreaterThanOrEqual(1);
  for (const c of containers) {
    onlyKeys(c, 'container', `${where} container`);
    expect(c.name).toMatch(DNS_LABEL);
    expect(typeof c.image).toBe('string');
    expect((c.image as string).length).toBeGreaterThan(0);
    expect((c.args as unknown[]).every((a) => typeof a === 'string')).toBe(true);
    for (const m of (c.volumeMounts ?? []) as Obj[]) {
      onlyKeys(m, 'volumeMount', `${where} volumeMount`);
      expect(names.has(m.name as string)).toBe(true);
      expect(path.posix.isAbsolute(m.mountPath as string)).toBe(true);
    }
    if (c.resources) {
      const r = c.resources as Obj;
      onlyKeys(r, 'resources', `${where} resources`);
      for (const group of [r.limits, r.requests])
        for (const q of Object.values((group ?? {}) as Obj)) expect(String(q)).toMatch(QUANTITY);
    }
  }
}

test('k8s-job writes an Indexed Job and its merge Job that pass the Job schema checks', () => {
  const dir = tempDir('k8s');
  const file = path.join(dir, 'job.yaml');
  const r = runCli([
    'k8s-job',
    '--shards',
    '8',
    '--parallelism',
    '3',
    '--data-claim',
    'photos',
    '--out-claim',
    'results',
    '--memory',
    '16Gi',
    '--namespace',
    'vision',
    '--out',
    file,
    '--',
    'stats',
    '/data/photos',
    '--layers',
    'layer3,layer4',
    '--out',
    '/out/stats',
  ]);
  expect(r.stderr).toMatch(/k8s-job: wrote .*job\.yaml \(8 shards, 3 at a time, 1 GPU each\) and .*job-merge\.yaml/);
  expect(r.code).toBe(0);
  const job = YAML.parse(fs.readFileSync(file, 'utf8')) as Obj;
  const merge = YAML.parse(fs.readFileSync(path.join(dir, 'job-merge.yaml'), 'utf8')) as Obj;
  checkJob(job, 'job');
  checkJob(merge, 'merge');
  expect(schemaErrors([job, merge])).toEqual([null, null]);
  // The schema check can fail: each mutation breaks one rule of the Job schema.
  const mutate = (
    f: (j: Obj & { spec: Obj & { template: { spec: { containers: Obj[]; volumes: Obj[] } } } }) => void,
  ) => {
    const copy = structuredClone(job) as Parameters<typeof f>[0];
    f(copy);
    return copy;
  };
  const broken = schemaErrors([
    mutate((j) => (j.spec.completions = '8')),
    mutate((j) => delete j.spec.template.spec.containers[0].name),
    mutate((j) => (j.spec.completionMode = 'Sharded')),
    mutate((j) => ((j.spec.template.spec.containers[0].resources as Obj).requests = { memory: 'lots' })),
    mutate((j) => (j.spec.template.spec.volumes[0].persistentVolumeClaim = { claimName: 7 })),
  ]);
  expect(broken[0]).toMatch(/spec\/completions must be integer/);
  expect(broken[1]).toMatch(/containers\/0 must have required property name/);
  expect(broken[2]).toMatch(/spec\/completionMode must be equal to one of the allowed values/);
  expect(broken[3]).toMatch(/requests\/memory must match format "quantity"/);
  expect(broken[4]).toMatch(/claimName must be string/);

  const spec = job.spec as Obj;
  expect(spec).toMatchObject({
    completionMode: 'Indexed',
    completions: 8,
    parallelism: 3,
    backoffLimitPerIndex: 3,
    maxFailedIndexes: 0,
  });
  expect((job.metadata as Obj).namespace).toBe('vision');
  const pod = (spec.template as Obj).spec as Obj;
  const [c] = pod.containers as Obj[];
  expect(c.image).toBe('featscope:cuda');
  expect(c.args).toEqual([
    'featscope',
    'stats',
    '/data/photos',
    '--layers',
    'layer3,layer4',
    '--out',
    '/out/stats',
    '--shards',
    '8',
  ]);
  expect(c.resources).toEqual({ limits: { 'nvidia.com/gpu': 1, memory: '16Gi' }, requests: { memory: '16Gi' } });
  expect(pod.volumes).toEqual([
    { name: 'data', persistentVolumeClaim: { claimName: 'photos', readOnly: true } },
    { name: 'out', persistentVolumeClaim: { claimName: 'results' } },
  ]);
  const mergePod = ((merge.spec as Obj).template as Obj).spec as Obj;
  expect((mergePod.containers as Obj[])[0].args).toEqual(['featscope', 'merge', '/out/stats', '--out', '/out/stats']);
  // The stats merge draws the example pictures from the top images: the data is mounted read-only there too.
  expect(mergePod.volumes).toEqual(pod.volumes);
  expect((mergePod.containers as Obj[])[0].volumeMounts).toEqual(c.volumeMounts);
  expect((merge.spec as Obj).completions).toBe(1);

  // Refused with the fix named, and no file written.
  const cases: Array<[string[], RegExp]> = [
    [
      ['--shards', '4', '--out-claim', 'r', '--', 'stats', '/data/p', '--out', '/out/s'],
      /--data-claim PVC is required/,
    ],
    [
      ['--shards', '4', '--data-claim', 'p', '--out-claim', 'r', '--', 'stats', '/data/p', '--out', '/tmp/s'],
      /--out \/tmp\/s is not under --out-path \/out: the shards' outputs would be lost/,
    ],
    [
      ['--shards', '4', '--data-claim', 'p', '--out-claim', 'r', '--', 'gradcam', '/data/p', '--out', '/out/s'],
      /runs render, export, stats in shards, not "gradcam"/,
    ],
    [['--shards', '4', '--data-claim', 'p', '--out-claim', 'r', '--', 'stats', '/data/p'], /needs --out DIR/],
    [
      [
        '--shards',
        '4',
        '--data-claim',
        'p',
        '--out-claim',
        'r',
        '--name',
        'Bad_Name',
        '--',
        'stats',
        '/data/p',
        '--out',
        '/out/s',
      ],
      /--name must be a DNS label/,
    ],
  ];
  for (const [args, message] of cases) {
    const bad = runCli(['k8s-job', '--out', path.join(dir, 'bad.yaml'), ...args]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(message);
  }
  expect(fs.existsSync(path.join(dir, 'bad.yaml'))).toBe(false);
});

test('slurm-job scripts, run as Slurm runs them (4 array tasks, then the merge), give the unsharded stats', () => {
  const dir = tempDir('slurm');
  const photos = path.join(dir, 'photos');
  fs.mkdirSync(photos);
  const fixtures = path.dirname(DOG);
  for (const f of fs.readdirSync(fixtures))
    if (/\.(jpg|png)$/.test(f)) fs.copyFileSync(path.join(fixtures, f), path.join(photos, f));
  const out = path.join(dir, 'out');
  const file = path.join(dir, 'stats.sbatch');
  const command = [
    'stats',
    photos,
    '--model',
    MODELS.scripted,
    '--device',
    'cpu',
    '--layers',
    'layer2,layer4',
    '--examples',
    '0',
    '--out',
    out,
  ];
  const r = runCli([
    'slurm-job',
    '--shards',
    '4',
    '--parallelism',
    '2',
    '--gpus',
    '0',
    '--time',
    '01:00:00',
    '--out',
    file,
    '--',
    ...command,
  ]);
  expect(r.code).toBe(0);
  const script = fs.readFileSync(file, 'utf8');
  expect(script).toMatch(/^#!\/bin\/bash\n#SBATCH --job-name=featscope-stats\n#SBATCH --array=0-3%2\n/);
  expect(script).toMatch(/#SBATCH --time=01:00:00/);
  expect(script).not.toMatch(/--gres/);
  expect(script).toMatch(
    /jid=\$\(sbatch --parsable stats\.sbatch\) && sbatch --dependency=afterok:\$jid stats-merge\.sbatch/,
  );
  const mergeScript = path.join(dir, 'stats-merge.sbatch');

  // `featscope` on PATH, as in the image; the array's tasks with Slurm's variables (ids 10..13).
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(
    path.join(bin, 'featscope'),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`,
    { mode: 0o755 },
  );
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, FEATSCOPE_DEBUG: '' };
  for (let i = 0; i < 4; i++) {
    const task = spawnSync('bash', [file], {
      env: {
        ...env,
        SLURM_ARRAY_TASK_ID: String(10 + i),
        SLURM_ARRAY_TASK_MIN: '10',
        SLURM_ARRAY_TASK_COUNT: '4',
        SLURM_CPUS_PER_TASK: '1',
      },
      encoding: 'utf8',
    });
    expect(task.stderr).toMatch(new RegExp(`shard ${i}/4 \\(SLURM_ARRAY_TASK_ID=${10 + i}`));
    expect(task.status).toBe(0);
  }
  execFileSync('bash', [mergeScript], { env, stdio: 'pipe' });
  const one = tempDir('slurm-one');
  expect(runCli([...command.slice(0, -1), one]).code).toBe(0);
  const a = JSON.parse(fs.readFileSync(path.join(one, 'stats.json'), 'utf8'));
  const b = JSON.parse(fs.readFileSync(path.join(out, 'stats.json'), 'utf8'));
  expect(b.images).toBe(a.images);
  expect(b.layers.map((l: Obj) => [l.deadChannels, l.topImages])).toEqual(
    a.layers.map((l: Obj) => [l.deadChannels, l.topImages]),
  );
  a.layers.forEach((l: { channel: Record<string, number[]> }, i: number) => {
    for (const k of Object.keys(l.channel))
      l.channel[k].forEach((v, j) =>
        expect(Math.abs(v - b.layers[i].channel[k][j])).toBeLessThanOrEqual(1e-6 * Math.max(1e-6, Math.abs(v))),
      );
  });
});
