/**
 * `featscope k8s-job` and `featscope slurm-job`: ready-to-submit files that run a sharded
 * render/export/stats on the engines people already have — a Kubernetes Indexed Job (each pod
 * gets JOB_COMPLETION_INDEX; a failed pod is retried with the same index) or a Slurm array job
 * (SLURM_ARRAY_TASK_ID/COUNT) — plus the merge step that runs after all shards succeeded.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import YAML from 'yaml';
import { parseList, parsePositiveInt, usage } from './args';
import { writeAtomic } from './files';
import { parseArgsOptions, parseCommand, printHelp, type CommandSpec } from './command';
import { COMMAND_SPECS, K8S_JOB_COMMAND, SLURM_JOB_COMMAND } from './commands';

/** The commands the generators run in shards. */
const SHARDED = new Map<string, CommandSpec>(
  (COMMAND_SPECS as readonly CommandSpec[]).filter((c) => c.cluster === true).map((c) => [c.name, c]),
);

interface Inner {
  command: string;
  argv: string[];
  out: string;
  /** Its positionals: the inputs. */
  inputs: string[];
}

/**
 * The featscope command line the shards run: render, export or stats with an --out, read against
 * that command's descriptor, so that an unknown option or a switch given a value is refused here
 * and not on the cluster.
 */
function innerCommand(positionals: string[], writer: string): Inner {
  const [command, ...argv] = positionals;
  if (!command)
    throw usage(`${writer} needs the featscope command after --, e.g. -- stats /data/photos --out /out/stats`, writer);
  const spec = SHARDED.get(command);
  if (!spec)
    throw usage(`${writer} runs ${[...SHARDED.keys()].join(', ')} in shards, not ${JSON.stringify(command)}`, writer);
  if (argv.some((a) => a === '--shard' || a === '--shards' || a.startsWith('--shard=')))
    throw usage(`leave --shard/--shards out of the command: ${writer} adds them`, writer);
  let line: ReturnType<typeof parseArgs>;
  try {
    line = parseArgs({ args: argv, options: parseArgsOptions(spec), allowPositionals: spec.positionals, strict: true });
  } catch (err) {
    const msg = err instanceof Error ? err.message.replace(/\. To specify a positional argument.*$/s, '') : String(err);
    throw usage(`the ${command} command: ${msg}`, writer);
  }
  const out = line.values.out;
  if (typeof out !== 'string' || !out)
    throw usage(
      `the ${command} command needs --out DIR (on the shared output volume): every shard writes DIR/shard-I-of-N and the merge writes DIR`,
      writer,
    );
  return { command, argv, out, inputs: line.positionals };
}

/** A value as one shell word (POSIX single quotes). */
const shq = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Line breaks and other control characters in any value a generator writes (option values, the
 * featscope command it wraps, the file names): refused, so that no value can end a comment, a
 * `#SBATCH` line or a YAML scalar and start a line of its own. C0/C1 controls, DEL and the
 * Unicode line and paragraph separators (line breaks to YAML 1.1 readers) all count.
 */
// eslint-disable-next-line no-control-regex
const LINE_BREAKING = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function refuseLineBreaks(writer: string, values: Record<string, unknown>, positionals: string[]): void {
  const show = (v: string) => JSON.stringify(v).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
  for (const [k, v] of Object.entries(values))
    if (typeof v === 'string' && LINE_BREAKING.test(v))
      throw usage(`--${k} ${show(v)} holds a line break or control character; give it without one`, writer);
  for (const v of positionals)
    if (LINE_BREAKING.test(v))
      throw usage(
        `${show(v)} (in the featscope command) holds a line break or control character; rename it or give it without one`,
        writer,
      );
}

export async function k8sJob(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(K8S_JOB_COMMAND, argv);
  if (values.help) return printHelp(K8S_JOB_COMMAND);
  refuseLineBreaks('k8s-job', values, positionals);
  if (values.shards === undefined)
    throw usage('--shards N is required (the number of pods, each one shard)', 'k8s-job');
  const shards = parsePositiveInt(values.shards, '--shards', 1, 100000, 'k8s-job');
  const parallelism = parsePositiveInt(values.parallelism, '--parallelism', shards, 100000, 'k8s-job');
  const gpus = values.gpus === '0' ? 0 : parsePositiveInt(values.gpus, '--gpus', 1, 16, 'k8s-job');
  const retries = values.retries === '0' ? 0 : parsePositiveInt(values.retries, '--retries', 3, 100, 'k8s-job');
  for (const k of ['data-claim', 'out-claim'] as const) {
    if (!values[k])
      throw usage(
        `--${k} PVC is required: the PersistentVolumeClaim ${k === 'data-claim' ? 'holding the images' : 'the shards and the merge write to'}`,
        'k8s-job',
      );
  }
  const inner = innerCommand(positionals, 'k8s-job');
  const name = values.name ?? `featscope-${inner.command}`;
  if (!DNS_LABEL.test(name) || name.length > 57)
    throw usage(
      `--name must be a DNS label of at most 57 characters (lower-case letters, digits, '-'), not ${JSON.stringify(name)}`,
      'k8s-job',
    );
  if (values.namespace !== undefined && (!DNS_LABEL.test(values.namespace) || values.namespace.length > 63))
    throw usage(
      `--namespace must be a DNS label (lower-case letters, digits, '-'), not ${JSON.stringify(values.namespace)}`,
      'k8s-job',
    );
  const memory = values.memory;
  if (memory !== undefined && !/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$/.test(memory))
    throw usage(`--memory takes a Kubernetes quantity such as 16Gi, not ${JSON.stringify(memory)}`, 'k8s-job');
  const dataPath = values['data-path'] ?? '/data';
  const outPath = values['out-path'] ?? '/out';
  for (const [o, p] of [
    ['--data-path', dataPath],
    ['--out-path', outPath],
  ])
    if (!path.posix.isAbsolute(p))
      throw usage(`${o} must be an absolute path in the pod, not ${JSON.stringify(p)}`, 'k8s-job');
  if (!path.posix.resolve(inner.out).startsWith(`${outPath.replace(/\/$/, '')}/`)) {
    throw usage(
      `the command's --out ${inner.out} is not under --out-path ${outPath}: the shards' outputs would be lost with their pods`,
      'k8s-job',
    );
  }
  const image = values.image ?? 'featscope:cuda';
  const resources = {
    ...(gpus > 0 || memory
      ? { limits: { ...(gpus > 0 ? { 'nvidia.com/gpu': gpus } : {}), ...(memory ? { memory } : {}) } }
      : {}),
    ...(memory ? { requests: { memory } } : {}),
  };
  const volumes = [
    { name: 'data', persistentVolumeClaim: { claimName: values['data-claim'], readOnly: true } },
    { name: 'out', persistentVolumeClaim: { claimName: values['out-claim'] } },
  ];
  const mounts = [
    { name: 'data', mountPath: dataPath, readOnly: true },
    { name: 'out', mountPath: outPath },
  ];
  const metadata = (n: string) => ({
    name: n,
    ...(values.namespace ? { namespace: values.namespace } : {}),
    labels: { 'app.kubernetes.io/name': 'featscope', 'featscope/run': name },
  });
  const job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(name),
    spec: {
      completionMode: 'Indexed',
      completions: shards,
      parallelism: Math.min(parallelism, shards),
      // A failed pod is retried with its index: the shard is redone, into the same folder.
      backoffLimitPerIndex: retries,
      maxFailedIndexes: 0,
      template: {
        metadata: { labels: { 'app.kubernetes.io/name': 'featscope', 'featscope/run': name } },
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'featscope',
              image,
              args: ['featscope', inner.command, ...inner.argv, '--shards', String(shards)],
              ...(Object.keys(resources).length ? { resources } : {}),
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  };
  const mergeJob = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(`${name}-merge`),
    spec: {
      completions: 1,
      backoffLimit: 2,
      template: {
        metadata: { labels: { 'app.kubernetes.io/name': 'featscope', 'featscope/run': name } },
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'merge',
              image,
              args: ['featscope', 'merge', inner.out, '--out', inner.out],
              // A stats merge draws the example pictures from the top images: the data too, read-only.
              volumeMounts: inner.command === 'stats' ? mounts : [mounts[1]],
            },
          ],
          volumes: inner.command === 'stats' ? volumes : [volumes[1]],
        },
      },
    },
  };
  const file = path.resolve(values.out ?? `${name}.yaml`);
  const mergeFile = file.replace(/(\.ya?ml)?$/, '-merge$1');
  const head = (what: string) =>
    `# featscope ${what}, written by \`featscope k8s-job\`.\n# Run: kubectl apply -f ${shq(path.basename(file))} && kubectl wait --for=condition=complete --timeout=48h job/${name} && kubectl apply -f ${shq(path.basename(mergeFile))}\n`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await writeAtomic(file, head(`${inner.command} over ${shards} shards (Indexed Job)`) + YAML.stringify(job));
  await writeAtomic(mergeFile, head(`merge of the ${shards} shards of ${name}`) + YAML.stringify(mergeJob));
  process.stderr.write(
    `k8s-job: wrote ${file} (${shards} shards, ${Math.min(parallelism, shards)} at a time${gpus ? `, ${gpus} GPU each` : ''}) and ${mergeFile}\n`,
  );
  process.stderr.write(
    `k8s-job: kubectl apply -f ${file} && kubectl wait --for=condition=complete --timeout=48h job/${name} && kubectl apply -f ${mergeFile}\n`,
  );
  return 0;
}

export async function slurmJob(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(SLURM_JOB_COMMAND, argv);
  if (values.help) return printHelp(SLURM_JOB_COMMAND);
  refuseLineBreaks('slurm-job', values, positionals);
  if (values.shards === undefined)
    throw usage('--shards N is required (the number of array tasks, each one shard)', 'slurm-job');
  const shards = parsePositiveInt(values.shards, '--shards', 1, 100000, 'slurm-job');
  const parallelism =
    values.parallelism === undefined
      ? undefined
      : parsePositiveInt(values.parallelism, '--parallelism', shards, 100000, 'slurm-job');
  const gpus = values.gpus === '0' ? 0 : parsePositiveInt(values.gpus, '--gpus', 1, 16, 'slurm-job');
  const cpus = parsePositiveInt(values.cpus, '--cpus', 4, 512, 'slurm-job');
  const time = values.time ?? '24:00:00';
  if (!/^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$/.test(time))
    throw usage(`--time takes [D-]HH:MM[:SS], e.g. 04:00:00, not ${JSON.stringify(time)}`, 'slurm-job');
  const memory = values.memory;
  if (memory !== undefined && !/^\d+[KMGT]?$/.test(memory))
    throw usage(`--memory takes a Slurm size such as 16G, not ${JSON.stringify(memory)}`, 'slurm-job');
  if (values.partition !== undefined && !/^[\w.-]+(,[\w.-]+)*$/.test(values.partition))
    throw usage(
      `--partition takes a partition name or a comma list of them (letters, digits, '.', '_', '-'), not ${JSON.stringify(values.partition)}`,
      'slurm-job',
    );
  const inner = innerCommand(positionals, 'slurm-job');
  const name = values.name ?? `featscope-${inner.command}`;
  if (!/^[\w.-]+$/.test(name))
    throw usage(`--name takes letters, digits, '.', '_' and '-', not ${JSON.stringify(name)}`, 'slurm-job');
  const sif = values.sif;
  const inputs = inner.inputs;
  const binds = (values['bind-paths'] !== undefined ? parseList(values['bind-paths']) : undefined) ?? [
    ...new Set([...inputs.map((p) => path.dirname(path.resolve(p))), path.dirname(path.resolve(inner.out))]),
  ];
  const run = (args: string[], gpu = gpus > 0) =>
    (sif
      ? `apptainer exec ${gpu ? '--nv ' : ''}${binds.map((b) => `--bind ${shq(b)}`).join(' ')} ${shq(path.resolve(sif))} `
      : '') + args.map(shq).join(' ');
  const header = (job: string, extra: string[]) => [
    '#!/bin/bash',
    `#SBATCH --job-name=${job}`,
    ...extra,
    `#SBATCH --cpus-per-task=${cpus}`,
    `#SBATCH --time=${time}`,
    ...(memory ? [`#SBATCH --mem=${memory}`] : []),
    ...(values.partition ? [`#SBATCH --partition=${values.partition}`] : []),
    `#SBATCH --output=${job}-%A_%a.log`,
  ];
  const file = path.resolve(values.out ?? `${name}.sbatch`);
  const mergeFile = file.replace(/(\.sbatch|\.sh)?$/, '-merge$1');
  const submit = `jid=$(sbatch --parsable ${shq(path.basename(file))}) && sbatch --dependency=afterok:$jid ${shq(path.basename(mergeFile))}`;
  const array = [
    ...header(name, [
      `#SBATCH --array=0-${shards - 1}${parallelism ? `%${parallelism}` : ''}`,
      ...(gpus ? [`#SBATCH --gres=gpu:${gpus}`] : []),
    ]),
    `# featscope ${inner.command} over ${shards} shards, written by \`featscope slurm-job\`. Submit with the merge after it:`,
    `#   ${submit}`,
    '# Each task takes shard SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT and writes',
    `# ${shq(inner.out)}/shard-I-of-${shards}; a requeued task redoes its shard into the same folder.`,
    'set -euo pipefail',
    `export OMP_NUM_THREADS=\${SLURM_CPUS_PER_TASK:-${cpus}}`,
    run(['featscope', inner.command, ...inner.argv]),
    '',
  ].join('\n');
  const mergeScript = [
    ...header(`${name}-merge`, []).filter((l) => !l.startsWith('#SBATCH --output')),
    `#SBATCH --output=${name}-merge-%j.log`,
    `# The merge of the ${shards} shards of ${name}: submit it with --dependency=afterok on the array job.`,
    'set -euo pipefail',
    run(['featscope', 'merge', inner.out, '--out', inner.out], false),
    '',
  ].join('\n');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await writeAtomic(file, array);
  await writeAtomic(mergeFile, mergeScript);
  process.stderr.write(
    `slurm-job: wrote ${file} (${shards} array tasks${gpus ? `, ${gpus} GPU each` : ''}) and ${mergeFile}\nslurm-job: ${submit}\n`,
  );
  return 0;
}
