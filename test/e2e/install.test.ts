// An install with scripts blocked, as a user makes it: `npm pack` of the package with the prebuild
// for this machine's libtorch, `npm install --ignore-scripts` of the tarball into a fresh app, then
// require('featscope').loadModel(...) captures a layer, compared with the in-tree build.
//
// Offline by design: CI must not hang on the npm registry, and the libtorch 2.x chroot cannot reach
// it at all. The package's dependencies come from a loopback registry serving the exact versions of
// package-lock.json, packed from node_modules; the featscope tarball itself is what `npm pack` made.
// npm is the host's (FEATSCOPE_NPM_CLI in the chroot, where Debian's nodejs has no npm).
import { execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import type { AddressInfo } from 'net';
import { ROOT } from '../support/models';
import { ensureBuilt } from '../support/cli';

jest.setTimeout(300_000);
const MODEL = path.join(ROOT, 'models', 'resnet18.pt');
const NPM = process.env.FEATSCOPE_NPM_CLI ? [process.execPath, process.env.FEATSCOPE_NPM_CLI] : ['npm'];
let tmp: string;
let registry: http.Server;
let registryUrl: string;
let app: string;

/** Runs npm (async: the loopback registry answers from this process). */
function npm(args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(NPM[0], [...NPM.slice(1), ...args], {
      cwd,
      env: { ...process.env, npm_config_cache: path.join(tmp, 'npm-cache'), npm_config_update_notifier: 'false' },
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => resolve({ code, out }));
  });
}

/** A registry on 127.0.0.1 holding the runtime dependencies installed here, each as npm packs it. */
async function startRegistry(): Promise<void> {
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  const versions = new Map<string, Record<string, Record<string, unknown>>>();
  const tarballs = new Map<string, string>();
  const tarDir = path.join(tmp, 'registry');
  fs.mkdirSync(tarDir);
  for (const [where, entry] of Object.entries(lock.packages)) {
    if (!where || entry.dev || entry.devOptional || !fs.existsSync(path.join(ROOT, where))) continue;
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, where, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
    };
    const file = `${manifest.name.replace('/', '-')}-${manifest.version}.tgz`;
    execFileSync('tar', [
      '-czf',
      path.join(tarDir, file),
      '-C',
      path.join(ROOT, where),
      '--transform',
      's,^\\.,package,',
      '.',
    ]);
    tarballs.set(`/-/${file}`, path.join(tarDir, file));
    const v = versions.get(manifest.name) ?? {};
    v[manifest.version] = { ...manifest, dist: { tarball: `@@/-/${file}` } };
    versions.set(manifest.name, v);
  }
  registry = http.createServer((req, res) => {
    const url = decodeURIComponent(req.url ?? '');
    const tgz = tarballs.get(url);
    if (tgz) return res.end(fs.readFileSync(tgz));
    const v = versions.get(url.slice(1));
    if (!v) return res.writeHead(404).end('{}');
    const body = JSON.stringify({ name: url.slice(1), versions: v, 'dist-tags': { latest: Object.keys(v).pop() } });
    res.setHeader('content-type', 'application/json');
    res.end(body.replaceAll('@@', registryUrl));
  });
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
  registryUrl = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
}

/** The layer1.0.conv1 capture of a fixed input, from the featscope `from` resolves to. */
function captureWith(cwd: string, from: string, env: Record<string, string> = {}): { sum: number; data: number[] } {
  const script = `
    const f = require(${JSON.stringify(from)});
    (async () => {
      const model = await f.loadModel(${JSON.stringify(MODEL)}, { device: 'cpu' });
      const input = new Float32Array(3 * 64 * 64).map((_, i) => Math.sin(i * 0.01));
      const captures = await model.capture({ data: input, shape: [1, 3, 64, 64] }, ['layer1.0.conv1']);
      const d = Array.from(captures[0].data);
      model.dispose();
      process.stdout.write(JSON.stringify({ sum: d.reduce((a, b) => a + b, 0), data: d }));
    })().catch((e) => { process.stdout.write(JSON.stringify({ code: e.code, message: e.message })); });`;
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: { ...process.env, FEATSCOPE_ADDON: '', FEATSCOPE_THREADS: '1', ...env },
  });
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-install-'));
  // The package as published: its "files", plus the prebuild for this machine's libtorch.
  const stage = path.join(tmp, 'stage');
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
  for (const f of [...pkg.files, 'package.json', 'README.md']) {
    if (fs.existsSync(path.join(ROOT, f)) && f !== 'prebuilds/')
      fs.cpSync(path.join(ROOT, f), path.join(stage, f), { recursive: true });
  }
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'pack-prebuild.js'), '--out', stage], { stdio: 'pipe' });
  const packed = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], stage);
  expect(packed.code).toBe(0);
  await startRegistry();
  app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), '{ "name": "app", "private": true }\n');
  const tgz = path.join(tmp, 'featscope-0.1.0.tgz');
  const installed = await npm(
    ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--registry', registryUrl, tgz],
    app,
  );
  if (installed.code !== 0) throw new Error(`npm install failed:\n${installed.out}`);
});

afterAll(async () => {
  await new Promise((resolve) => (registry ? registry.close(resolve) : resolve(undefined)));
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('the tarball holds the prebuild and no build output', () => {
  const root = path.join(app, 'node_modules', 'featscope');
  expect(fs.existsSync(path.join(root, 'build'))).toBe(false);
  const keys = fs.readdirSync(path.join(root, 'prebuilds'));
  expect(keys).toHaveLength(1);
  expect(keys[0]).toMatch(/^linux-x64-torch\d+\.\d+-(cxx11|precxx11)-(cpu|cuda)$/);
});

test('with install scripts blocked, the prebuild captures a layer equal to the in-tree build', () => {
  const installed = captureWith(app, 'featscope');
  const inTree = captureWith(ROOT, path.join(ROOT, 'dist'));
  expect(installed.data).toHaveLength(64 * 16 * 16);
  expect(installed.data).toEqual(inTree.data);
  // doctor names the prebuild it chose.
  const doctor = spawnSync(
    process.execPath,
    [path.join(app, 'node_modules', 'featscope', 'dist', 'cli', 'main.js'), 'doctor', '--json'],
    {
      cwd: app,
      encoding: 'utf8',
    },
  );
  expect(doctor.status).toBe(0);
  const r = JSON.parse(doctor.stdout) as { prebuild: { chosen: string }; addon: { loads: boolean; from: string } };
  expect(r.addon.loads).toBe(true);
  expect(r.addon.from).toBe(r.prebuild.chosen);
  expect(r.prebuild.chosen).toContain(path.join(app, 'node_modules', 'featscope', 'prebuilds'));
});

test('libtorch in a folder not on the loader path: its libraries are the ones loaded', () => {
  // The libtorch libraries the prebuild needs, linked (or copied) into a folder of their own:
  // lib/ of an unpacked libtorch, named by LIBTORCH. /proc/self/maps shows which files are mapped.
  const root = path.join(app, 'node_modules', 'featscope');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the installed package's own selection code
  const { selectPrebuild, elfDynamic } = require(path.join(root, 'scripts', 'prebuild.js')) as {
    selectPrebuild(root: string): { preload: string[] };
    elfDynamic(f: string): { soname: string | null };
  };
  const own = path.join(tmp, 'libtorch');
  fs.mkdirSync(path.join(own, 'lib'), { recursive: true });
  for (const lib of selectPrebuild(root).preload) {
    const real = fs.realpathSync(lib);
    const dest = path.join(own, 'lib', elfDynamic(real).soname!);
    try {
      fs.linkSync(real, dest);
    } catch {
      fs.copyFileSync(real, dest);
    }
  }
  const script = `const f = require('featscope'); f.versions();
    const maps = require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/).slice(5).join(' '));
    process.stdout.write(JSON.stringify([...new Set(maps.filter((p) => /\\/lib(c10|torch)[^/]*\\.so/.test(p)))]));`;
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: app,
    encoding: 'utf8',
    env: { ...process.env, LIBTORCH: own, FEATSCOPE_ADDON: '' },
  });
  expect(r.stderr).toBe('');
  const mapped = JSON.parse(r.stdout) as string[];
  expect(mapped.length).toBeGreaterThan(0);
  for (const m of mapped) expect(m.startsWith(path.join(own, 'lib') + path.sep)).toBe(true);
});

test('a prebuild for another libtorch: the coded error, naming what was found and the ways out', () => {
  const root = path.join(app, 'node_modules', 'featscope');
  const [key] = fs.readdirSync(path.join(root, 'prebuilds'));
  const other = key.replace(/torch\d+\.\d+/, 'torch0.1');
  fs.renameSync(path.join(root, 'prebuilds', key), path.join(root, 'prebuilds', other));
  try {
    const r = captureWith(app, 'featscope') as unknown as { code: string; message: string };
    expect(r.code).toBe('NATIVE_LOAD_FAILED');
    expect(r.message).toContain(`no prebuilt addon for ${key}: found libtorch`);
    expect(r.message).toContain(`this package carries ${other}`);
    expect(r.message).toContain('`npm rebuild featscope`');
    expect(r.message).toContain('`npx featscope doctor`');
  } finally {
    fs.renameSync(path.join(root, 'prebuilds', other), path.join(root, 'prebuilds', key));
  }
});

test('a prebuild under the right key but linked against other libtorch sonames: refused before loading', () => {
  // A stand-in addon naming libc10.so.0.1, which no libtorch here provides.
  const root = path.join(app, 'node_modules', 'featscope');
  const [key] = fs.readdirSync(path.join(root, 'prebuilds'));
  const file = path.join(root, 'prebuilds', key, 'featscope.node');
  const saved = path.join(tmp, 'saved.node');
  fs.copyFileSync(file, saved);
  const stub = path.join(tmp, 'stub');
  fs.mkdirSync(stub);
  fs.writeFileSync(path.join(stub, 'c10.c'), 'int c10_stub(void) { return 1; }\n');
  fs.writeFileSync(path.join(stub, 'addon.c'), 'extern int c10_stub(void); int use(void) { return c10_stub(); }\n');
  execFileSync('gcc', [
    '-shared',
    '-fPIC',
    '-Wl,-soname,libc10.so.0.1',
    '-o',
    path.join(stub, 'libc10.so.0.1'),
    path.join(stub, 'c10.c'),
  ]);
  execFileSync('gcc', ['-shared', '-fPIC', '-o', file, path.join(stub, 'addon.c'), path.join(stub, 'libc10.so.0.1')]);
  try {
    const r = captureWith(app, 'featscope') as unknown as { code: string; message: string };
    expect(r.code).toBe('NATIVE_LOAD_FAILED');
    expect(r.message).toMatch(new RegExp(`the prebuild for ${key} needs libc10\\.so\\.0\\.1, which .* does not hold`));
  } finally {
    fs.copyFileSync(saved, file);
  }
});

test('with install scripts allowed and a prebuild that fits, the install script keeps it and builds nothing', () => {
  const root = path.join(app, 'node_modules', 'featscope');
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'install.js')], { cwd: root, encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(
    /^featscope: using the prebuilt addon prebuilds\/linux-x64-torch\d+\.\d+-\S+\/featscope\.node \(/,
  );
  expect(fs.existsSync(path.join(root, 'build'))).toBe(false);
});
