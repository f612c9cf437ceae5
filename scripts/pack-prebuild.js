#!/usr/bin/env node
'use strict';
// Places the addon built by scripts/build-native.js where node-gyp-build looks for a prebuilt one:
//   build/Release/featscope.node -> prebuilds/<platform>-<arch>/featscope.napi.node
// node-gyp-build reads the dot-separated tags of each file name in prebuilds/<platform>-<arch>/;
// `napi` marks a Node-API build that any Node ABI may load, and the leading `featscope` is not a
// tag, so it only names the file. (prebuildify has no cmake-js backend, so we place it ourselves.)
// A prebuild is tied to the libtorch it was linked against (its RPATH points there): ship it only
// beside that libtorch, as Dockerfile.cuda does.
//
//   node scripts/pack-prebuild.js [--from build/Release/featscope.node] [--out DIR]
//
// --out writes DIR/prebuilds/... instead of the package root (for checks that must not touch it).
// Afterwards it asks node-gyp-build, with PREBUILDS_ONLY=1, which file it would load, and fails
// unless that is the one just written.
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const root = path.resolve(__dirname, '..');

function main(argv) {
  let from = path.join(root, 'build', 'Release', 'featscope.node');
  let out = root;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--from' && argv[i + 1]) from = path.resolve(argv[++i]);
    else if (argv[i] === '--out' && argv[i + 1]) out = path.resolve(argv[++i]);
    else {
      console.error(
        `pack-prebuild: unknown argument ${argv[i]}\nusage: node scripts/pack-prebuild.js [--from FILE.node] [--out DIR]`,
      );
      return 2;
    }
  }
  if (!fs.existsSync(from)) {
    console.error(
      `pack-prebuild: ${path.relative(process.cwd(), from) || from} does not exist; build it first with \`node scripts/build-native.js\``,
    );
    return 1;
  }
  const tuple = `${process.platform}-${process.arch}`;
  const dir = path.join(out, 'prebuilds', tuple);
  const dest = path.join(dir, 'featscope.napi.node');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(from, dest);
  console.log(`pack-prebuild: ${from} -> ${dest}`);

  // The same resolution the package does at run time, minus build/Release.
  const resolved = execFileSync(
    process.execPath,
    [
      '-e',
      'process.stdout.write(require(process.argv[1]).path(process.argv[2]))',
      require.resolve('node-gyp-build', { paths: [root] }),
      out,
    ],
    { env: { ...process.env, PREBUILDS_ONLY: '1' }, encoding: 'utf8' },
  );
  if (path.resolve(resolved) !== dest) {
    console.error(`pack-prebuild: node-gyp-build would load ${resolved}, not ${dest}`);
    return 1;
  }
  console.log(`pack-prebuild: node-gyp-build resolves ${path.relative(out, dest)} (PREBUILDS_ONLY=1)`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
