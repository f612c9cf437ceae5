/**
 * `featscope run job.yaml|job.json`: the options of any command in a file, jobs in a list run in
 * turn. Every job is checked before the first starts (unknown keys get a did-you-mean); relative
 * paths resolve against the file's folder; --resume skips the jobs that finished and resumes the
 * one that was stopped.
 */
import { createHash } from 'crypto';
import * as path from 'path';
import YAML from 'yaml';
import { FeatscopeError } from '../errors';
import { closest, editDistance } from '../suggest';
import { usage } from './args';
import { writeAtomic } from './files';
import { shown } from './term';
import { bracketDepthExceeds, readBoundedFile, valueDepthExceeds } from '../fsutil';
import { parseCommand, printHelp, type CommandSpec, type OptionSpec } from './command';
import { COMMAND_SPECS, RUN_COMMAND } from './commands';
import type { CliCode } from './codes';
import { interruptible } from './interrupt';
import { reportError } from './summary';

/** The commands a job may run, by name. */
const JOB_COMMANDS = new Map<string, CommandSpec>(
  (COMMAND_SPECS as readonly CommandSpec[]).filter((c) => c.jobs === true).map((c) => [c.name, c]),
);

/** Keys of a job that are not command options. */
const JOB_KEYS = ['command', 'inputs', 'name'];
const FILE_KEYS = ['defaults', 'jobs'];

/** A command's options as job-file keys: every declared option but -h/--help. */
export function jobOptions(command: string): Map<string, OptionSpec> {
  const spec = JOB_COMMANDS.get(command);
  if (!spec) throw new Error(`not a job command: ${command}`);
  return new Map(spec.options.filter((o) => o.name !== 'help').map((o) => [o.name, o]));
}

let every: string[] | undefined;
/** The options of all commands, for defaults. */
function allOptions(): string[] {
  every ??= [...new Set([...JOB_COMMANDS.keys()].flatMap((c) => [...jobOptions(c).keys()]))].sort();
  return every;
}

/** Commands whose positionals are inputs (images, or merge's shard folders). */
function takesInputs(command: string): boolean {
  return JOB_COMMANDS.get(command)?.inputs === true;
}

export interface Job {
  index: number;
  name: string;
  command: string;
  argv: string[];
  /** sha256 of the command line: --resume skips a finished job only with the same one. */
  key: string;
  resumable: boolean;
}

type Plain = Record<string, unknown>;
const isObject = (v: unknown): v is Plain => v !== null && typeof v === 'object' && !Array.isArray(v);

function refuse(message: string): FeatscopeError<CliCode> {
  return usage(message, 'run');
}

function unknownKey(key: string, where: string, known: string[]): FeatscopeError<CliCode> {
  const near = closest(key, known, 3).filter((k) => editDistance(key, k) <= Math.max(2, Math.floor(key.length / 3)));
  return refuse(
    `${where}: unknown key ${JSON.stringify(key)}${near.length ? `; did you mean ${near.map((n) => JSON.stringify(n)).join(', ')}?` : ''} (known: ${known.join(', ')})`,
  );
}

/** A job file is a few hundred bytes; a megabyte is far past any honest one. */
const MAX_JOB_FILE_BYTES = 1 << 20;
/** defaults/jobs/options/lists: 4 levels; 32 leaves room and stops a parser-recursion attack. */
const MAX_JOB_DEPTH = 32;
/** Keys that name JavaScript's object machinery, never an option: refused wherever they appear. */
const PROTO_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function refuseProtoKeys(doc: unknown, where: string): void {
  const stack: unknown[] = [doc];
  while (stack.length) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    for (const k of Object.keys(v as object)) {
      if (PROTO_KEYS.has(k))
        throw refuse(
          `${where}: unknown key ${JSON.stringify(k)} (it names JavaScript's object machinery, not an option); remove it`,
        );
      stack.push((v as Plain)[k]);
    }
  }
}

/** Parses and checks a job file: every job's command line, ready to run. */
export function readJobFile(file: string): Job[] {
  const ext = path.extname(file).toLowerCase();
  if (!['.yaml', '.yml', '.json'].includes(ext))
    throw refuse(`job file ${JSON.stringify(file)} must end in .yaml, .yml or .json`);
  const text = readBoundedFile(file, MAX_JOB_FILE_BYTES, (reason) =>
    refuse(`job file ${JSON.stringify(file)}: ${reason}`),
  ).toString('utf8');
  const tooDeep = () =>
    refuse(
      `job file ${JSON.stringify(file)} nests lists or mappings more than ${MAX_JOB_DEPTH} deep; a job file needs a few levels`,
    );
  if (bracketDepthExceeds(text, MAX_JOB_DEPTH)) throw tooDeep();
  let doc: unknown;
  try {
    doc = ext === '.json' ? JSON.parse(text) : YAML.parse(text, { prettyErrors: true, maxAliasCount: 100 });
  } catch (err) {
    if (err instanceof RangeError) throw tooDeep();
    const first = String((err as Error).message)
      .split('\n')[0]
      .replace(/:\s*$/, '');
    throw refuse(`job file ${JSON.stringify(file)} is not valid ${ext === '.json' ? 'JSON' : 'YAML'}: ${first}`);
  }
  if (valueDepthExceeds(doc, MAX_JOB_DEPTH)) throw tooDeep();
  refuseProtoKeys(doc, `job file ${JSON.stringify(file)}`);
  const dir = path.dirname(path.resolve(file));
  let defaults: Plain = {};
  let list: unknown[];
  if (Array.isArray(doc)) list = doc;
  else if (isObject(doc) && 'command' in doc) list = [doc];
  else if (isObject(doc)) {
    for (const k of Object.keys(doc))
      if (!FILE_KEYS.includes(k)) throw unknownKey(k, `job file ${JSON.stringify(file)}`, FILE_KEYS);
    if (doc.defaults !== undefined && !isObject(doc.defaults))
      throw refuse(`job file ${JSON.stringify(file)}: defaults must be a mapping of options (model: ..., device: ...)`);
    defaults = (doc.defaults as Plain | undefined) ?? {};
    if (!Array.isArray(doc.jobs))
      throw refuse(`job file ${JSON.stringify(file)}: jobs must be a list of jobs (- command: render ...)`);
    list = doc.jobs;
  } else {
    throw refuse(
      `job file ${JSON.stringify(file)} must hold a list of jobs or a mapping with jobs:, not ${doc === null ? 'nothing' : typeof doc}`,
    );
  }
  if (list.length === 0) throw refuse(`job file ${JSON.stringify(file)} has no jobs`);
  return list.map((entry, i) => toJob(entry, i, list.length, defaults, dir));
}

function toJob(entry: unknown, i: number, total: number, defaults: Plain, dir: string): Job {
  let where = `job ${i + 1} of ${total}`;
  if (!isObject(entry)) throw refuse(`${where} must be a mapping (command: render, inputs: ..., ...)`);
  const command = entry.command;
  const commands = [...JOB_COMMANDS.keys()];
  if (typeof command !== 'string') throw refuse(`${where} needs command: one of ${commands.join(', ')}`);
  if (!JOB_COMMANDS.has(command)) {
    const near = closest(command, commands, 2);
    throw refuse(
      `${where}: unknown command ${JSON.stringify(command)}; did you mean ${near.join(' or ')}? (commands: ${commands.join(', ')})`,
    );
  }
  const name = entry.name === undefined ? command : String(entry.name);
  where = `job ${i + 1} of ${total} (${name})`;
  const options = jobOptions(command);
  const merged: Plain = Object.create(null) as Plain;
  // Defaults apply where the command has the option: `model` in defaults does not break `info`.
  for (const [k, v] of Object.entries(defaults)) {
    if (k === 'inputs' ? takesInputs(command) : options.has(k)) merged[k] = v;
    else if (k !== 'inputs' && !allOptions().includes(k)) throw unknownKey(k, 'defaults', ['inputs', ...allOptions()]);
  }
  Object.assign(merged, entry);
  const argv: string[] = [];
  const known = [...JOB_KEYS, ...options.keys()];
  for (const [key, value] of Object.entries(merged)) {
    if (key === 'command' || key === 'name') continue;
    if (key === 'inputs') {
      if (!takesInputs(command)) throw refuse(`${where}: ${command} takes no inputs; remove inputs`);
      continue;
    }
    const spec = options.get(key);
    if (!spec) throw unknownKey(key, where, known);
    if (spec.type === 'bool') {
      if (typeof value !== 'boolean')
        throw refuse(`${where}: ${key} is a switch: give true or false, not ${JSON.stringify(value)}`);
      if (value) argv.push(`--${key}`);
      continue;
    }
    let text: string;
    if (typeof value === 'string') text = value;
    else if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
    else if (
      Array.isArray(value) &&
      value.length > 0 &&
      value.every((v) => typeof v === 'string' || typeof v === 'number')
    )
      text = value.join(',');
    else throw refuse(`${where}: ${key} needs a value (a string, a number or a list), not ${JSON.stringify(value)}`);
    if (spec.type === 'path' && text !== '') text = path.resolve(dir, text);
    argv.push(`--${key}`, text);
  }
  if (options.has('out') && merged.out === undefined) argv.push('--out', path.join(dir, 'featscope-out'));
  const positionals: string[] = [];
  if (takesInputs(command)) {
    const inputs = merged.inputs;
    const list: unknown[] | undefined =
      typeof inputs === 'string' ? [inputs] : Array.isArray(inputs) ? inputs : undefined;
    const isPath = (v: unknown): v is string => typeof v === 'string' && v !== '';
    if (!list || list.length === 0 || !list.every(isPath)) {
      throw refuse(`${where}: inputs must be an image, folder or glob, or a list of them (inputs: photos/)`);
    }
    for (const p of list) positionals.push(path.resolve(dir, p));
  }
  const full = [...argv, ...(positionals.length ? ['--', ...positionals] : [])];
  // The command's own parser checks the option values' form (a switch given a value, ...) up front.
  parseCommand(JOB_COMMANDS.get(command)!, full);
  return {
    index: i,
    name,
    command,
    argv: full,
    key: createHash('sha256')
      .update(JSON.stringify([command, full]))
      .digest('hex')
      .slice(0, 16),
    resumable: options.has('resume'),
  };
}

interface RunState {
  file: string;
  jobs: Record<string, { job: number; name: string; exitCode: number; finished: string }>;
}

function statePath(file: string): string {
  return path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.state.json`);
}

function readState(file: string): RunState {
  try {
    const raw = readBoundedFile(statePath(file), MAX_JOB_FILE_BYTES * 4, (reason) => new Error(reason));
    const s = JSON.parse(raw.toString('utf8')) as RunState;
    if (isObject(s) && isObject(s.jobs)) return s;
  } catch {
    // none yet, or unreadable: start afresh
  }
  return { file: path.resolve(file), jobs: {} };
}

const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/** Exit codes, worst first: interrupted, usage, failed. */
function worse(a: number, b: number): number {
  const rank = (c: number) => (c === 130 ? 3 : c === 2 ? 2 : c === 0 ? 0 : 1);
  return rank(b) > rank(a) ? b : a;
}

export async function runJobs(
  argv: string[],
  commands: Record<string, (argv: string[]) => Promise<number>>,
): Promise<number> {
  const { values, positionals } = parseCommand(RUN_COMMAND, argv);
  if (values.help) return printHelp(RUN_COMMAND);
  if (positionals.length !== 1)
    throw refuse(`run takes one job file (job.yaml or job.json), not ${positionals.length}`);
  const file = positionals[0];
  const jobs = readJobFile(file);
  if (values['dry-run']) {
    for (const j of jobs) process.stdout.write(`featscope ${j.command} ${j.argv.map(quote).join(' ')}\n`);
    return 0;
  }
  const resume = Boolean(values.resume);
  const state = resume ? readState(file) : { file: path.resolve(file), jobs: {} };
  const saveState = () => writeAtomic(statePath(file), `${JSON.stringify(state, null, 2)}\n`);
  await saveState();

  // Ctrl-C or SIGTERM: the current job (whose own handler also hears it) ends, the rest do not start.
  const interrupt = interruptible(
    { note: (text) => process.stderr.write(`${text}\n`) },
    {
      stopping: 'featscope run: stopping after the current job (Ctrl-C again to quit now); rerun with --resume',
      quit: '',
      sigterm: 'stop',
    },
  );
  let code = 0;
  const summary: string[] = [];
  try {
    for (const j of jobs) {
      const label = `job ${j.index + 1}/${jobs.length} (${shown(j.name)})`;
      if (interrupt.stopping) {
        code = worse(code, 130);
        summary.push(`${label}: not started`);
        continue;
      }
      const done = state.jobs[j.key];
      if (resume && done?.exitCode === 0) {
        process.stderr.write(`featscope run: ${label}: finished in an earlier run, skipped\n`);
        summary.push(`${label}: skipped (finished earlier)`);
        continue;
      }
      const args = resume && j.resumable ? ['--resume', ...j.argv] : j.argv;
      process.stderr.write(`featscope run: ${label}: featscope ${j.command} ${shown(args.map(quote).join(' '))}\n`);
      const started = Date.now();
      let jobCode: number;
      try {
        jobCode = await commands[j.command](args);
      } catch (err) {
        jobCode = reportError(err, label);
      }
      state.jobs[j.key] = { job: j.index + 1, name: j.name, exitCode: jobCode, finished: new Date().toISOString() };
      await saveState();
      code = worse(code, jobCode);
      summary.push(`${label}: exit ${jobCode} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      if (jobCode === 130 || jobCode === 2) {
        if (jobCode === 130) interrupt.stop();
        if (jobCode === 2) {
          for (const rest of jobs.slice(j.index + 1))
            summary.push(`job ${rest.index + 1}/${jobs.length} (${rest.name}): not started`);
          break;
        }
      }
    }
  } finally {
    interrupt.dispose();
  }
  process.stderr.write(`featscope run: ${summary.join('; ')}\n`);
  if (code === 130)
    process.stderr.write(
      `featscope run: interrupted; rerun \`featscope run ${quote(file)} --resume\` to skip the finished jobs and resume the rest\n`,
    );
  return code;
}
