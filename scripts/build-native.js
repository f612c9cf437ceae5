#!/usr/bin/env node
'use strict';
// The one build of record for the native addon: finds libtorch (scripts/find-libtorch.js), then
// runs cmake-js on CMakeLists.txt. `npm run build:native` calls it directly; the install script
// (scripts/install.js) calls it when no prebuild fits. The addon lands in build/Release/featscope.node.
const path = require('path');
const { spawnSync } = require('child_process');
const { findLibtorch, libtorchVersion } = require('./find-libtorch');

const root = path.resolve(__dirname, '..');
// FEATSCOPE_BUILD_DIR: another build folder (the sanitizer build uses build/asan); default build/.
const buildDir = path.resolve(root, process.env.FEATSCOPE_BUILD_DIR || 'build');
const outDir = process.env.FEATSCOPE_BUILD_DIR ? buildDir : path.join(buildDir, 'Release');
const found = findLibtorch();
if (found.error) {
  console.error(found.error);
  process.exit(1);
}
const version = libtorchVersion(found.configDir) ?? 'unknown version';
console.log(
  `featscope: building against libtorch ${version}, ${found.source}\nfeatscope: TorchConfig.cmake in ${found.configDir}`,
);

const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
// A debug build: --debug or FEATSCOPE_BUILD_TYPE=Debug. (FEATSCOPE_DEBUG means one thing only: runtime notes.)
const debug = process.env.FEATSCOPE_BUILD_TYPE === 'Debug' || process.argv.includes('--debug');
const sanitize = process.env.FEATSCOPE_SANITIZE || '';
const args = [
  cmakeJs,
  'build',
  '--directory',
  root,
  '--out',
  path.join(buildDir, 'cmake'),
  `--CDTorch_DIR=${found.configDir}`,
  `--CDFEATSCOPE_TORCH_SOURCE=${found.source}`,
  `--CDFEATSCOPE_OUTPUT_DIR=${outDir}`,
];
if (debug) args.push('--debug');
if (sanitize) args.push(`--CDFEATSCOPE_SANITIZE=${sanitize}`);
if (process.env.CMAKE_GENERATOR === 'Ninja' || process.argv.includes('--ninja')) args.push('--generator', 'Ninja');
const parallel =
  process.env.CMAKE_BUILD_PARALLEL_LEVEL || String(Math.max(1, require('os').availableParallelism?.() ?? 2));
const r = spawnSync(process.execPath, args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: parallel },
});
if (r.status !== 0) {
  console.error(
    'featscope: native build failed (see above). Check that a C++17 compiler and cmake are installed, and that the libtorch found above matches this machine.',
  );
  process.exit(r.status || 1);
}
// The stamp scripts/setup.sh compares with what it finds, to rebuild when the libtorch changed.
require('fs').writeFileSync(path.join(buildDir, '.featscope-libtorch'), `${found.configDir}\t${version}\n`);
