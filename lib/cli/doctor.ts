/**
 * `featscope doctor`: why the addon loads or does not. It works when the addon cannot load (that is
 * when it is needed), so it reads the libtorch search and the prebuild selection itself
 * (scripts/prebuild.js, the code the loader runs) and only then tries the addon.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import { binding, localBuild, packageRoot, prebuildModule, type PrebuildChoice } from '../native';
import { parseCommand, printHelp } from './command';
import { DOCTOR_COMMAND } from './commands';

interface Report {
  node: string;
  platform: string;
  libtorch: PrebuildChoice['libtorch'];
  libtorchError: string | null;
  localBuild: string | null;
  prebuild: { key: string | null; chosen: string | null; reason: string | null; available: string[] };
  addon: { loads: boolean; from: string | null; libtorch?: string; cxx11Abi?: boolean; error?: string; code?: string };
  cuda: { available: boolean; devices: number } | null;
  sharp: { version: string | null; libvips: string | null; error?: string };
  python: { python: string; torch: string; cuda: string | null; cxx11Abi: boolean } | { python: string; error: string };
}

/** The torch of the Python the search uses first (imports it: slow, so only here). */
function pythonTorch(): Report['python'] {
  const python = process.env.FEATSCOPE_PYTHON || '/usr/bin/python3';
  try {
    const out = execFileSync(
      python,
      [
        '-c',
        'import json, torch; print(json.dumps([torch.__version__, torch.version.cuda, bool(torch._C._GLIBCXX_USE_CXX11_ABI)]))',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 },
    );
    const [torch, cuda, cxx11Abi] = JSON.parse(out.trim().split('\n').pop()!) as [string, string | null, boolean];
    return { python, torch, cuda, cxx11Abi };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const line = (e.stderr ?? '').trim().split('\n').pop() || e.message.split('\n')[0];
    return { python, error: line };
  }
}

function sharpVersions(): Report['sharp'] {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const s = require('sharp') as { versions: { sharp?: string; vips?: string } };
    return { version: s.versions.sharp ?? null, libvips: s.versions.vips ?? null };
  } catch (err) {
    return { version: null, libvips: null, error: (err as Error).message.split('\n')[0] };
  }
}

export function doctorReport(): Report {
  const choice = prebuildModule().selectPrebuild(packageRoot);
  const hasLocal = fs.existsSync(localBuild);
  let addon: Report['addon'];
  let cuda: Report['cuda'] = null;
  try {
    const b = binding();
    const v = b.versions();
    addon = {
      loads: true,
      from: process.env.FEATSCOPE_ADDON || (hasLocal ? localBuild : choice.prebuild),
      libtorch: v.libtorch,
      cxx11Abi: v.cxx11Abi,
    };
    cuda = { available: b.cudaAvailable(), devices: b.cudaDeviceCount() };
  } catch (err) {
    const e = err as { message: string; code?: string };
    addon = { loads: false, from: null, error: e.message, ...(e.code ? { code: e.code } : {}) };
  }
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    libtorch: choice.libtorch,
    libtorchError: choice.libtorch ? null : choice.reason,
    localBuild: hasLocal ? localBuild : null,
    prebuild: { key: choice.key, chosen: choice.prebuild, reason: choice.reason, available: choice.available },
    addon,
    cuda,
    sharp: sharpVersions(),
    python: pythonTorch(),
  };
}

export async function doctor(argv: string[]): Promise<number> {
  const { values } = parseCommand(DOCTOR_COMMAND, argv);
  if (values.help) return printHelp(DOCTOR_COMMAND);
  const r = doctorReport();
  if (values.json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return r.addon.loads ? 0 : 1;
  }
  const t = r.libtorch;
  const rows: Array<[string, string]> = [
    ['node', `${r.node} (${r.platform})`],
    [
      'libtorch',
      t
        ? `${t.version ?? 'unknown version'}, ${t.cxx11Abi === null ? 'unknown' : t.cxx11Abi ? 'CXX11' : 'pre-CXX11'} ABI, ${t.cuda ? 'CUDA' : 'CPU only'}; from ${t.source}`
        : `none found: ${r.libtorchError}`,
    ],
  ];
  if (t) rows.push(['  libraries', t.libDir]);
  rows.push(['local build', r.localBuild ?? 'none (build/Release/featscope.node)']);
  rows.push([
    'prebuild',
    r.prebuild.chosen ? `${r.prebuild.key} (${r.prebuild.chosen})` : `none: ${r.prebuild.reason}`,
  ]);
  rows.push(['  packaged', r.prebuild.available.length ? r.prebuild.available.join(', ') : 'none']);
  rows.push([
    'addon',
    r.addon.loads
      ? `loads (${r.addon.from}), libtorch ${r.addon.libtorch}`
      : `does not load [${r.addon.code ?? 'error'}]: ${r.addon.error}`,
  ]);
  if (r.cuda)
    rows.push([
      'cuda',
      r.cuda.available
        ? `available, ${r.cuda.devices} GPU${r.cuda.devices === 1 ? '' : 's'}`
        : 'not available (CPU only)',
    ]);
  rows.push([
    'sharp',
    r.sharp.version ? `${r.sharp.version} (libvips ${r.sharp.libvips})` : `not loaded: ${r.sharp.error}`,
  ]);
  const p = r.python;
  rows.push([
    'python torch',
    'error' in p
      ? `${p.python}: none (${p.error})`
      : `${p.python}: torch ${p.torch}, ${p.cxx11Abi ? 'CXX11' : 'pre-CXX11'} ABI, ${p.cuda ? `CUDA ${p.cuda}` : 'CPU only'}`,
  ]);
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(
    rows.map(([k, val]) => `${k.padEnd(width)}  ${val.replace(/\n/g, `\n${' '.repeat(width + 2)}`)}`).join('\n') + '\n',
  );
  return r.addon.loads ? 0 : 1;
}
