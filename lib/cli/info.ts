/** `featscope info`: versions and GPUs, the first thing to run in a new container. */
import { execFile } from 'child_process';
import { versions } from '../versions';
import { loadModel } from '../model';
import { weightsLabel } from '../metadata';
import { resolveModel } from './args';
import { parseCommand, printHelp } from './command';
import { INFO_COMMAND } from './commands';

/** GPU names from nvidia-smi when it is there; libtorch only gives a count. */
function gpuNames(): Promise<string[]> {
  return new Promise((resolve) => {
    execFile(
      'nvidia-smi',
      ['--query-gpu=name,memory.total', '--format=csv,noheader'],
      { timeout: 5000 },
      (err, stdout) => {
        resolve(
          err
            ? []
            : stdout
                .split('\n')
                .map((l) => l.trim())
                .filter(Boolean),
        );
      },
    );
  });
}

export async function info(argv: string[]): Promise<number> {
  const { values } = parseCommand(INFO_COMMAND, argv);
  if (values.help) return printHelp(INFO_COMMAND);
  const v = versions();
  const gpus = v.cuda.available ? await gpuNames() : [];
  const model = await describeModel(values.model);
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ ...v, platform: `${process.platform}-${process.arch}`, gpus, model }, null, 2)}\n`,
    );
    return 0;
  }
  const rows: Array<[string, string]> = [
    ['featscope', v.featscope],
    ['node', `${v.node} (${process.platform}-${process.arch})`],
    ['libtorch', `${v.libtorch}${v.cxx11Abi ? ' (CXX11 ABI)' : ' (pre-CXX11 ABI)'}, ${v.threads} CPU threads`],
    [
      'cuda',
      v.cuda.available
        ? `available, ${v.cuda.devices} GPU${v.cuda.devices === 1 ? '' : 's'}`
        : 'not available (CPU only)',
    ],
  ];
  gpus.forEach((g, i) => rows.push([`gpu ${i}`, g]));
  rows.push([
    'model',
    model.error
      ? model.error
      : `${model.path}: ${model.architecture ?? model.type}, ${model.layers} layers; ${model.weights}`,
  ]);
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(rows.map(([k, val]) => `${k.padEnd(width)}  ${val}`).join('\n') + '\n');
  return 0;
}

interface ModelSummary {
  path?: string;
  type?: string;
  architecture?: string;
  layers?: number;
  trained?: boolean;
  weights?: string;
  error?: string;
}

/** The default (or given) model, loaded on the CPU; a missing or broken one is reported, not fatal. */
async function describeModel(given: string | undefined): Promise<ModelSummary> {
  try {
    const m = await loadModel(resolveModel(given), { device: 'cpu' });
    try {
      const label = weightsLabel(m.metadata);
      return {
        path: m.path,
        type: m.type,
        architecture: m.metadata.architecture,
        layers: (await m.layers()).length,
        trained: label.trained,
        weights: label.text,
      };
    } finally {
      m.dispose();
    }
  } catch (err) {
    return {
      error: `${(err as Error).message}${(err as { code?: string }).code ? ` [${(err as { code?: string }).code}]` : ''}`,
    };
  }
}
