// libtorch discovery: the documented order, the source it reports, one message when none is found.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { findLibtorch } = require('../../scripts/find-libtorch') as {
  findLibtorch(
    env: Record<string, string | undefined>,
    options?: { systemDirs?: string[]; runtime?: boolean },
  ): { source: string; configDir: string } | { error: string };
};

let fake: string;
beforeAll(() => {
  // A folder that looks like an unpacked libtorch.
  fake = fs.mkdtempSync(path.join(os.tmpdir(), 'libtorch-'));
  fs.mkdirSync(path.join(fake, 'share', 'cmake', 'Torch'), { recursive: true });
  fs.writeFileSync(path.join(fake, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'), '# stand-in\n');
});
afterAll(() => fs.rmSync(fake, { recursive: true, force: true }));

test('LIBTORCH comes first', () => {
  const r = findLibtorch({ LIBTORCH: fake, TORCH_CMAKE_PREFIX: '/elsewhere', FEATSCOPE_PYTHON: '/nonexistent/python' });
  expect(r).toEqual({
    source: `LIBTORCH=${fake}`,
    configDir: path.join(fake, 'share', 'cmake', 'Torch'),
    libDir: null,
  });
});

test('a LIBTORCH without CMake files is an error that lists the options', () => {
  const r = findLibtorch({ LIBTORCH: '/nonexistent/libtorch' }) as { error: string };
  expect(r.error).toMatch(/LIBTORCH=\/nonexistent\/libtorch holds no share\/cmake\/Torch\/TorchConfig\.cmake/);
  expect(r.error).toMatch(/apt-get install libtorch-dev/);
  expect(r.error).toMatch(/FEATSCOPE_PYTHON/);
  expect(r.error).toMatch(/TORCH_CMAKE_PREFIX or CMAKE_PREFIX_PATH/);
});

test('then TORCH_CMAKE_PREFIX, then CMAKE_PREFIX_PATH (any entry)', () => {
  expect(findLibtorch({ TORCH_CMAKE_PREFIX: path.join(fake, 'share', 'cmake') })).toMatchObject({
    source: expect.stringMatching(/^TORCH_CMAKE_PREFIX/),
  });
  expect(findLibtorch({ CMAKE_PREFIX_PATH: `/nope:${fake}` })).toMatchObject({ source: `CMAKE_PREFIX_PATH (${fake})` });
});

test('then the torch of a Python, then the system; a Python without torch is passed over', () => {
  const r = findLibtorch({ FEATSCOPE_PYTHON: '/nonexistent/python', PATH: process.env.PATH }) as { source: string };
  // On this machine: Debian's libtorch-dev (its python3-torch ships no CMake files).
  expect(r.source).toMatch(/^(the torch .* of .*python3|the system libtorch)/);
});

test('none anywhere: one message saying what was tried and listing every option', () => {
  const r = findLibtorch(
    { FEATSCOPE_PYTHON: '/nonexistent/python', CMAKE_PREFIX_PATH: '/nope', PATH: '/nonexistent' },
    { systemDirs: ['/nonexistent/cmake/Torch'] },
  ) as { error: string };
  expect(r.error).toMatch(
    /^featscope: no libtorch found \(tried: CMAKE_PREFIX_PATH=\/nope: no TorchConfig\.cmake; \/nonexistent\/python: no torch; /,
  );
  expect(r.error).toMatch(/system: no libtorch-dev\)/);
  for (const option of [
    'apt-get install libtorch-dev',
    'FEATSCOPE_PYTHON=',
    'LIBTORCH=',
    'TORCH_CMAKE_PREFIX or CMAKE_PREFIX_PATH',
  ]) {
    expect(r.error).toContain(option);
  }
});

test('the runtime search (prebuild loader, doctor) wants the shared libraries, not CMake files', () => {
  // The stand-in has CMake files but no lib/libc10.so: fine for a build, not for loading.
  expect(findLibtorch({ LIBTORCH: fake }, { runtime: true })).toMatchObject({
    error: expect.stringMatching(/^LIBTORCH=.* holds no lib\/libc10\.so/),
  });
  const lib = path.join(fake, 'lib');
  fs.mkdirSync(lib, { recursive: true });
  fs.writeFileSync(path.join(lib, 'libc10.so'), '');
  try {
    expect(findLibtorch({ LIBTORCH: fake }, { runtime: true })).toMatchObject({
      source: `LIBTORCH=${fake}`,
      libDir: lib,
    });
  } finally {
    fs.rmSync(lib, { recursive: true });
  }
});
