/** `featscope info`: versions and GPUs, the first thing to run in a new container. */
import { execFile } from 'child_process';
import { versions } from '../versions';
import { parse } from './args';

export const INFO_HELP = `Usage: featscope info [--json]

Print featscope, Node, libtorch and CUDA versions and the GPUs libtorch sees.

Options:
      --json   machine-readable output
  -h, --help   this help
`;

/** GPU names from nvidia-smi when it is there; libtorch only gives a count. */
function gpuNames(): Promise<string[]> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader'], { timeout: 5000 }, (err, stdout) => {
      resolve(err ? [] : stdout.split('\n').map((l) => l.trim()).filter(Boolean));
    });
  });
}

export async function info(argv: string[]): Promise<number> {
  const { values } = parse('info', argv, { json: { type: 'boolean' } }, false);
  if (values.help) {
    process.stdout.write(INFO_HELP);
    return 0;
  }
  const v = versions();
  const gpus = v.cuda.available ? await gpuNames() : [];
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ...v, platform: `${process.platform}-${process.arch}`, gpus }, null, 2)}\n`);
    return 0;
  }
  const rows: Array<[string, string]> = [
    ['featscope', v.featscope],
    ['node', `${v.node} (${process.platform}-${process.arch})`],
    ['libtorch', `${v.libtorch}${v.cxx11Abi ? ' (CXX11 ABI)' : ' (pre-CXX11 ABI)'}, ${v.threads} CPU threads`],
    ['cuda', v.cuda.available ? `available, ${v.cuda.devices} GPU${v.cuda.devices === 1 ? '' : 's'}` : 'not available (CPU only)'],
  ];
  gpus.forEach((g, i) => rows.push([`gpu ${i}`, g]));
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(rows.map(([k, val]) => `${k.padEnd(width)}  ${val}`).join('\n') + '\n');
  return 0;
}
