// The libtorch version guard in CMakeLists.txt: configure featscope against stand-in libtorch
// CMake packages that claim a version, and check that one outside 1.13..2.11 stops the build with
// a message naming the version found, the tested range and the override.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { libtorchVersion } = require('../../scripts/find-libtorch') as { libtorchVersion(dir: string): string | null };

const ROOT = path.resolve(__dirname, '..', '..');
let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fs-guard-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A TorchConfig.cmake that defines the `torch` target and nothing else, at `version`. */
function standIn(version: string | null): string {
  const dir = path.join(tmp, `torch-${version ?? 'none'}`, 'share', 'cmake', 'Torch');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'TorchConfig.cmake'),
    'set(TORCH_FOUND TRUE)\nset(TORCH_INSTALL_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../..")\nadd_library(torch INTERFACE IMPORTED)\n',
  );
  if (version)
    fs.writeFileSync(
      path.join(dir, 'TorchConfigVersion.cmake'),
      `set(PACKAGE_VERSION "${version}")\nset(PACKAGE_VERSION_COMPATIBLE TRUE)\n`,
    );
  return dir;
}

function configure(version: string | null, env: Record<string, string> = {}) {
  const dir = standIn(version);
  const build = path.join(tmp, `build-${version}-${Object.keys(env).length}`);
  const r = spawnSync('cmake', ['-S', ROOT, '-B', build, `-DTorch_DIR=${dir}`, '-DFEATSCOPE_TORCH_SOURCE=a stand-in'], {
    encoding: 'utf8',
    env: { ...process.env, FEATSCOPE_BYPASS_VERSION_CHECK: '', ...env },
  });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}`.replace(/\s+/g, ' ') };
}

test.each(['2.12.0', '3.0.1', '1.12.1'])(
  'libtorch %s outside the tested range stops the build and names the override',
  (v) => {
    const r = configure(v);
    expect(r.status).not.toBe(0);
    expect(r.out).toContain(`featscope: libtorch ${v} (from a stand-in`);
    expect(r.out).toContain('outside the tested range 1.13 to 2.11');
    expect(r.out).toContain('FEATSCOPE_BYPASS_VERSION_CHECK=1');
  },
);

test('FEATSCOPE_BYPASS_VERSION_CHECK=1 builds anyway, with a warning', () => {
  const r = configure('2.12.0', { FEATSCOPE_BYPASS_VERSION_CHECK: '1' });
  expect(r.out).toContain('FEATSCOPE_BYPASS_VERSION_CHECK=1 is set: building anyway');
  expect(r.status).toBe(0);
});

test.each(['1.13.0', '2.6.0', '2.11.0'])('libtorch %s inside the range configures and is named', (v) => {
  const r = configure(v);
  expect(r.out).toContain(`featscope: libtorch ${v} from a stand-in`);
  expect(r.out).not.toContain('outside the tested range');
  expect(r.status).toBe(0);
});

test('a libtorch that states no version is refused too', () => {
  const r = configure(null);
  expect(r.status).not.toBe(0);
  expect(r.out).toContain('outside the tested range 1.13 to 2.11');
});

test('find-libtorch reads the version the guard checks', () => {
  expect(libtorchVersion(standIn('2.6.0'))).toBe('2.6.0');
  expect(libtorchVersion(standIn(null))).toBeNull();
});
