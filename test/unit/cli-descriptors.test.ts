/**
 * The command descriptors (lib/cli/commands.ts) are the one description of the CLI: every command
 * has one with help for every option, job files accept exactly the declared options, and the
 * k8s/Slurm generators write only declared flags (and refuse undeclared ones).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import YAML from 'yaml';
import { k8sJob, slurmJob } from '../../lib/cli/cluster';
import { parseList } from '../../lib/cli/args';
import { helpText, type CommandSpec } from '../../lib/cli/command';
import { COMMAND_SPECS } from '../../lib/cli/commands';
import { COMMANDS } from '../../lib/cli/main';
import { jobOptions, readJobFile } from '../../lib/cli/run';
import { FeatscopeError } from '../../lib/errors';

const specs = COMMAND_SPECS as readonly CommandSpec[];
const byName = new Map(specs.map((s) => [s.name, s]));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-descriptors-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The `--name` flags of a command line (`--name=value` counts as `--name`), up to a `--`. */
function flags(argv: string[]): string[] {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0]);
}

function declared(command: string): Set<string> {
  return new Set([...byName.get(command)!.options.map((o) => o.name), 'help', 'threads']);
}

test('every command of the command table has exactly one descriptor, and the descriptors no other command', () => {
  expect(specs.map((s) => s.name).sort()).toEqual(Object.keys(COMMANDS).sort());
  expect(new Set(specs.map((s) => s.name)).size).toBe(specs.length);
});

test.each(specs.map((s) => [s.name, s] as const))(
  '%s: help names every option with its metavar and text',
  (_n, spec) => {
    const text = helpText(spec);
    expect(text.startsWith(`Usage: featscope ${spec.name}`)).toBe(true);
    const names = spec.options.map((o) => o.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('help');
    for (const o of spec.options) {
      expect(o.help.trim()).not.toBe('');
      // A switch has no value to name; every other option names its value.
      expect(o.metavar === undefined).toBe(o.type === 'bool');
      expect(text).toContain(`--${o.name}${o.metavar ? ` ${o.metavar}` : ''}`);
      if (o.short) expect(text).toContain(`-${o.short}, --${o.name}`);
    }
    const shorts = spec.options.flatMap((o) => (o.short ? [o.short] : []));
    expect(new Set(shorts).size).toBe(shorts.length);
  },
);

test('job-file keys are the declared options of the job commands, typed as declared', () => {
  const jobCommands = specs.filter((s) => s.jobs);
  expect(jobCommands.map((s) => s.name)).toEqual(expect.arrayContaining(['render', 'export', 'stats', 'merge']));
  for (const spec of jobCommands) {
    const keys = jobOptions(spec.name);
    for (const [k, o] of keys) {
      expect(spec.options).toContainEqual(o);
      expect(k).toBe(o.name);
    }
    expect(keys.has('help')).toBe(false);
  }
  // A job that sets every option of render: its command line has only render's declared flags, a
  // switch as a bare flag, a list joined with commas, a path resolved against the file's folder.
  const render = byName.get('render')!;
  const job: Record<string, unknown> = { command: 'render', inputs: 'photos/' };
  for (const o of render.options) {
    if (o.name === 'help') continue;
    job[o.name] = o.type === 'bool' ? true : o.type === 'list' ? ['a', 'b'] : o.type === 'int' ? 2 : 'x';
  }
  delete job.shards; // --shard and --shards exclude each other (checked when the command runs)
  const file = path.join(dir, 'every.yaml');
  fs.writeFileSync(file, YAML.stringify(job));
  const [parsed] = readJobFile(file);
  const got = flags(parsed.argv);
  for (const f of got) expect(declared('render')).toContain(f);
  expect(new Set(got)).toEqual(new Set(Object.keys(job).filter((k) => k !== 'command' && k !== 'inputs')));
  const at = (name: string) => parsed.argv[parsed.argv.indexOf(`--${name}`) + 1];
  expect(at('layers')).toBe('a,b');
  expect(at('model')).toBe(path.join(dir, 'x'));
  expect(at('colormap')).toBe('x');
  expect(parsed.argv[parsed.argv.indexOf('--overlay') + 1].startsWith('--')).toBe(true);
});

test('a job key that is no declared option is refused', () => {
  const file = path.join(dir, 'unknown.yaml');
  fs.writeFileSync(file, YAML.stringify({ command: 'stats', inputs: 'p/', overlay: true }));
  expect(() => readJobFile(file)).toThrow(/unknown key "overlay"/);
});

describe('generated Slurm and Kubernetes files', () => {
  let stderr: jest.SpyInstance;
  beforeEach(() => {
    stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => stderr.mockRestore());

  const inner = ['render', '/data/photos', '--layers', 'layer1,layer2', '--overlay', '--report', '-o', '/out/r'];

  test('the sbatch scripts run featscope with the declared flags of render and merge only', async () => {
    const out = path.join(dir, 'job.sbatch');
    expect(await slurmJob(['--shards', '4', '--out', out, '--', ...inner])).toBe(0);
    const lines = [fs.readFileSync(out, 'utf8'), fs.readFileSync(out.replace(/\.sbatch$/, '-merge.sbatch'), 'utf8')]
      .join('\n')
      .split('\n')
      .filter((l) => l.startsWith('featscope '));
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      const [, command, ...argv] = line.split(' ');
      for (const f of flags(argv)) expect(declared(command)).toContain(f);
    }
    expect(lines[0]).toContain('--layers layer1,layer2 --overlay --report');
  });

  test('the Indexed Job and its merge run featscope with declared flags only', async () => {
    const out = path.join(dir, 'job.yaml');
    const argv = ['--shards', '3', '--data-claim', 'd', '--out-claim', 'o', '--out', out, '--', ...inner];
    expect(await k8sJob(argv)).toBe(0);
    for (const f of [out, out.replace(/\.yaml$/, '-merge.yaml')]) {
      const job = YAML.parse(fs.readFileSync(f, 'utf8')) as {
        spec: { template: { spec: { containers: Array<{ args: string[] }> } } };
      };
      const [featscope, command, ...rest] = job.spec.template.spec.containers[0].args;
      expect(featscope).toBe('featscope');
      for (const flag of flags(rest)) expect(declared(command)).toContain(flag);
    }
  });

  test.each([
    ['an undeclared flag', ['--frobnicate']],
    ['a switch given a value', ['--overlay=yes']],
    ["another command's flag", ['--top-images', '3']],
  ])('%s in the wrapped command is refused before a file is written', async (_what, extra) => {
    const out = path.join(dir, `bad-${extra[0].replace(/\W/g, '')}.sbatch`);
    let err: unknown;
    try {
      await slurmJob(['--shards', '2', '--out', out, '--', ...inner, ...extra]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FeatscopeError);
    expect((err as FeatscopeError).code).toBe('USAGE');
    expect((err as Error).message).toContain('render');
    expect(fs.existsSync(out)).toBe(false);
  });
});

test('parseList: one comma-list reader', () => {
  expect(parseList('a, b,,c ,')).toEqual(['a', 'b', 'c']);
  expect(parseList(' , ')).toEqual([]);
  expect(parseList('1,,2', { keepEmpty: true })).toEqual(['1', '', '2']);
});
