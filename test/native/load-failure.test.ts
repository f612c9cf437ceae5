// When the addon cannot load, the error names the likely cause and the fix (run in child processes:
// a process caches its addon).
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ROOT } from '../support/models';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-load-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function loadIn(packageDir: string, env: Record<string, string> = {}): { code: string; message: string } {
  const script = `try { require(${JSON.stringify(path.join(packageDir, 'dist'))}).versions(); console.log(JSON.stringify({ code: 'LOADED', message: '' })); }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
  const r = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, FEATSCOPE_ADDON: '', ...env },
  });
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('no build and no prebuild: names the libtorch found and the ways out', () => {
  // A copy of the package without build/ or prebuilds/.
  const pkg = path.join(tmp, 'pkg');
  fs.mkdirSync(pkg);
  fs.cpSync(path.join(ROOT, 'dist'), path.join(pkg, 'dist'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'scripts'), path.join(pkg, 'scripts'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'));
  const r = loadIn(pkg);
  expect(r.code).toBe('NATIVE_LOAD_FAILED');
  expect(r.message).toMatch(
    /could not load its native addon: there is no local build, and no prebuilt addon for linux-x64-torch\d+\.\d+-(pre)?cxx11-(cpu|cuda): found libtorch \S+ \((pre-)?CXX11 ABI, (CPU only|CUDA)\) from .*; this package carries none\./,
  );
  expect(r.message).toContain('`npm rebuild featscope` (needs a C++17 compiler and cmake');
  expect(r.message).toContain('`npx featscope doctor`');
  expect(r.message).not.toContain('npm run build:native');
});

test('the libtorch it was built against is gone: says so', () => {
  // An addon linked against a stand-in libtorch library that is then removed.
  const lib = path.join(tmp, 'libtorch_gone.so');
  fs.writeFileSync(path.join(tmp, 'stub.c'), 'int torch_stub(void) { return 1; }\n');
  fs.writeFileSync(path.join(tmp, 'addon.c'), 'extern int torch_stub(void); int use(void) { return torch_stub(); }\n');
  execFileSync('gcc', ['-shared', '-fPIC', '-o', lib, path.join(tmp, 'stub.c')]);
  execFileSync('gcc', [
    '-shared',
    '-fPIC',
    '-o',
    path.join(tmp, 'featscope.node'),
    path.join(tmp, 'addon.c'),
    `-L${tmp}`,
    '-ltorch_gone',
    `-Wl,-rpath,${tmp}`,
  ]);
  fs.rmSync(lib);
  const r = loadIn(ROOT, { FEATSCOPE_ADDON: path.join(tmp, 'featscope.node') });
  expect(r.code).toBe('NATIVE_LOAD_FAILED');
  expect(r.message).toMatch(/libtorch_gone\.so: cannot open shared object file/);
  expect(r.message).toMatch(
    /the libtorch it was built against is gone or moved: reinstall it, or rebuild with `npm rebuild featscope`/,
  );
});

test('the real addon loads and reports its libtorch', () => {
  const r = loadIn(ROOT);
  expect(r.code).toBe('LOADED');
});
