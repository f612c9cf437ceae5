#!/usr/bin/env node
/**
 * featscope's command line. Bad input is a FeatscopeError, printed as `featscope: <message> [<code>]`
 * without a stack; usage errors exit with 2, failed inputs with 1 (FEATSCOPE_DEBUG=1 adds stacks).
 */
import { commandList } from './command';
import { COMMAND_SPECS } from './commands';
import { reportError } from './summary';

export const MAIN_HELP = `Usage: featscope <command> [options]

See what each layer of a CNN sees: feature-map grids, overlays and a report from TorchScript models.

Commands:
${commandList(COMMAND_SPECS)}
Run \`featscope <command> --help\` for its options. Common: --model FILE (default models/resnet18.pt,
or $FEATSCOPE_MODEL), --device auto|cpu|cuda, --out DIR (default ./featscope-out), --threads N
(libtorch's intra-op threads; default $FEATSCOPE_THREADS, else libtorch's: the core count).

Example:
  featscope render photo.jpg --layers layer1.0.conv1,layer4 --overlay --report --out out/

Only load model files you trust: TorchScript can run arbitrary operations.
`;

type Command = (argv: string[]) => Promise<number>;

/**
 * Each command's module is loaded when it runs: a render does not compile the viewer, the
 * analyses or the job-file parser (about a third of the start-up's module loading).
 */
const lazy =
  (load: () => Command): Command =>
  (argv) =>
    load()(argv);

/* eslint-disable @typescript-eslint/no-require-imports -- lazy loading is the point: a static import loads every command at start-up, and `await import()` compiles to the same require in this CommonJS build */
export const COMMANDS: Record<string, Command> = {
  info: lazy(() => (require('./info') as typeof import('./info')).info),
  doctor: lazy(() => (require('./doctor') as typeof import('./doctor')).doctor),
  layers: lazy(() => (require('./layers') as typeof import('./layers')).layers),
  render: lazy(() => (require('./render') as typeof import('./render')).render),
  export: lazy(() => (require('./export') as typeof import('./export')).exportCommand),
  gradcam: lazy(() => (require('./gradcam') as typeof import('./gradcam')).gradcam),
  predict: lazy(() => (require('./predict') as typeof import('./predict')).predict),
  attention: lazy(() => (require('./attention') as typeof import('./attention')).attention),
  weights: lazy(() => (require('./weights') as typeof import('./weights')).weights),
  attack: lazy(() => (require('./attack') as typeof import('./attack')).attack),
  stats: lazy(() => (require('./stats') as typeof import('./stats')).stats),
  concepts: lazy(() => (require('./concepts') as typeof import('./concepts')).concepts),
  maximize: lazy(() => (require('./maximize') as typeof import('./maximize')).maximize),
  similarity: lazy(() => (require('./similarity') as typeof import('./similarity')).similarity),
  view: lazy(() => (require('./view') as typeof import('./view')).view),
  merge: lazy(() => (require('./merge') as typeof import('./merge')).merge),
  'k8s-job': lazy(() => (require('./cluster') as typeof import('./cluster')).k8sJob),
  'slurm-job': lazy(() => (require('./cluster') as typeof import('./cluster')).slurmJob),
  run: lazy(() => (argv) => (require('./run') as typeof import('./run')).runJobs(argv, COMMANDS)),
};
/* eslint-enable @typescript-eslint/no-require-imports */

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    if (command === 'help' && rest[0] && COMMANDS[rest[0]]) return COMMANDS[rest[0]](['--help']);
    (command === undefined ? process.stderr : process.stdout).write(MAIN_HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-V') {
    const { featscopeVersion } = await import('./manifest');
    process.stdout.write(`${featscopeVersion()}\n`);
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(
      `featscope: unknown command ${JSON.stringify(command)}; commands: ${Object.keys(COMMANDS).join(', ')} (see \`featscope --help\`) [USAGE]\n`,
    );
    return 2;
  }
  return run(rest);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.exitCode = reportError(err);
    },
  );
}
