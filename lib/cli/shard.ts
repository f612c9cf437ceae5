/**
 * Sharding a folder over the pods of a Kubernetes Indexed Job or the tasks of a Slurm array:
 * `--shard i/N`, else JOB_COMPLETION_INDEX with `--shards N`, else SLURM_ARRAY_TASK_ID and
 * SLURM_ARRAY_TASK_COUNT. Each image goes to shard hash(its path relative to the folder or glob
 * base it was found under) mod N: deterministic, and an image keeps its shard when others are
 * added. Each shard writes into OUT/shard-i-of-N/, which `featscope merge` combines.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { usage } from './args';
import type { InputImage } from './inputs';

export interface Shard {
  index: number;
  count: number;
  /** Where the index came from: --shard, JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID. */
  from: string;
}

/** The shard of this process, or undefined when the run is not sharded. */
export function parseShard(
  values: { shard?: string; shards?: string },
  command: string,
  env: NodeJS.ProcessEnv = process.env,
): Shard | undefined {
  const int = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v.trim()) ? Number(v.trim()) : NaN);
  const check = (index: number, count: number, from: string, text: string): Shard => {
    if (!Number.isInteger(count) || count < 1)
      throw usage(`${from}: the shard count must be a positive integer, not ${JSON.stringify(text)}`, command);
    if (!Number.isInteger(index) || index < 0 || index >= count) {
      throw usage(
        `${from}: the shard index must be an integer from 0 to ${count - 1}, not ${JSON.stringify(text)}`,
        command,
      );
    }
    return { index, count, from };
  };
  if (values.shard !== undefined) {
    if (values.shards !== undefined) throw usage('give --shard I/N or --shards N, not both', command);
    const m = /^(\d+)\/(\d+)$/.exec(String(values.shard).trim());
    if (!m)
      throw usage(
        `--shard takes I/N (this process's 0-based index and the shard count, e.g. 0/4), not ${JSON.stringify(values.shard)}`,
        command,
      );
    return check(Number(m[1]), Number(m[2]), '--shard', String(values.shard));
  }
  if (values.shards !== undefined) {
    const count = int(String(values.shards));
    const raw = env.JOB_COMPLETION_INDEX;
    if (raw === undefined)
      throw usage(
        "--shards N takes this process's index from $JOB_COMPLETION_INDEX (set in a Kubernetes Indexed Job), which is not set; outside Kubernetes give --shard I/N",
        command,
      );
    return check(
      int(raw),
      count,
      `--shards ${values.shards} with JOB_COMPLETION_INDEX=${raw}`,
      `${raw}/${values.shards}`,
    );
  }
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_COUNT !== undefined) {
    const min = env.SLURM_ARRAY_TASK_MIN !== undefined ? int(env.SLURM_ARRAY_TASK_MIN) : 0;
    const id = int(env.SLURM_ARRAY_TASK_ID);
    return check(
      id - min,
      int(env.SLURM_ARRAY_TASK_COUNT),
      `SLURM_ARRAY_TASK_ID=${env.SLURM_ARRAY_TASK_ID} (min ${min}), SLURM_ARRAY_TASK_COUNT=${env.SLURM_ARRAY_TASK_COUNT}`,
      `${env.SLURM_ARRAY_TASK_ID}`,
    );
  }
  return undefined;
}

/**
 * The key an image is sharded by: its path relative to the folder (or glob base) given that holds
 * it, so the split does not depend on where the data is mounted; files named one by one use the
 * path as given.
 */
export function shardKeys(positionals: string[], inputs: InputImage[]): string[] {
  const roots = positionals
    .map((p) => {
      const posix = p.split(path.sep).join('/');
      const segments = posix.split('/');
      const magic = segments.findIndex((s) => /[*?[]/.test(s));
      let base = p;
      if (magic >= 0 && !fs.existsSync(p)) base = segments.slice(0, magic).join('/') || '.';
      else if (!isDir(p)) return undefined;
      return path.resolve(base);
    })
    .filter((r): r is string => r !== undefined)
    .sort((a, b) => b.length - a.length);
  return inputs.map((i) => {
    const abs = path.resolve(i.source);
    const root = roots.find((r) => abs.startsWith(r.endsWith(path.sep) ? r : r + path.sep));
    return (root ? path.relative(root, abs) : i.source).split(path.sep).join('/');
  });
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function shardOf(key: string, count: number): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) % count;
}

/** This shard's inputs (in the run's order) with their indices in the full list. */
export function selectShard(
  positionals: string[],
  inputs: InputImage[],
  shard: Shard | undefined,
): { inputs: InputImage[]; indices: number[] } {
  if (!shard) return { inputs, indices: inputs.map((_, i) => i) };
  const keys = shardKeys(positionals, inputs);
  const indices = inputs.map((_, i) => i).filter((i) => shardOf(keys[i], shard.count) === shard.index);
  return { inputs: indices.map((i) => inputs[i]), indices };
}

/** OUT/shard-i-of-N for a sharded run, else OUT. */
export function shardOut(out: string, shard: Shard | undefined): string {
  return shard ? path.join(out, `shard-${shard.index}-of-${shard.count}`) : out;
}

/** What a shard's output records about its shard. */
export function shardRecord(
  shard: Shard | undefined,
  total: number,
  selected: number,
): Record<string, unknown> | undefined {
  if (!shard) return undefined;
  return {
    index: shard.index,
    count: shard.count,
    from: shard.from,
    split: 'sha256(path relative to the folder given) mod count',
    inputs: total,
    selected,
  };
}

/** A line for stderr naming the shard, so logs of pods and array tasks say which part they did. */
export function announceShard(
  command: string,
  shard: Shard | undefined,
  total: number,
  selected: number,
  out: string,
): void {
  if (!shard) return;
  process.stderr.write(
    `featscope ${command}: shard ${shard.index}/${shard.count} (${shard.from}): ${selected} of ${total} inputs, into ${out}\n`,
  );
}
