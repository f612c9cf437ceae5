#!/usr/bin/env node
'use strict';
// featscope's install script (package.json "install"). Where install scripts run:
//   1. a prebuild fits the libtorch found here and loads: nothing to build;
//   2. otherwise build against that libtorch with scripts/build-native.js (a C++17 compiler, cmake).
// Where install scripts are blocked (npm 12, pnpm, Yarn Berry, Bun, --ignore-scripts) this never
// runs, and lib/native.ts picks the same prebuild at load time: the selection is scripts/prebuild.js.
const path = require('path');
const { spawnSync } = require('child_process');
const { selectPrebuild } = require('./prebuild');

const root = path.resolve(__dirname, '..');
const choice = selectPrebuild(root);
if (choice.prebuild) {
  // Loaded in a child: a failed load must not take the installer with it.
  const check = spawnSync(
    process.execPath,
    [
      '-e',
      'const p = require(process.argv[1]); p.loadPrebuild(p.selectPrebuild(process.argv[2])).versions()',
      path.join(__dirname, 'prebuild.js'),
      root,
    ],
    { encoding: 'utf8' },
  );
  if (check.status === 0) {
    console.log(
      `featscope: using the prebuilt addon ${path.relative(root, choice.prebuild)} (${choice.libtorch.source})`,
    );
    process.exit(0);
  }
  console.log(
    `featscope: the prebuild for ${choice.key} does not load here (${(check.stderr || '').split('\n').find((l) => /Error/.test(l)) ?? 'see below'}); building instead`,
  );
} else {
  console.log(`featscope: ${choice.reason}; building the addon instead`);
}
const r = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js')], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(
    'featscope: no prebuilt addon fits this machine and the build failed (above). Install a C++17 compiler and cmake and run `npm rebuild featscope`, or run `npx featscope doctor` to see what was found.',
  );
}
process.exit(r.status ?? 1);
