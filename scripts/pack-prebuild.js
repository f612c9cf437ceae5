#!/usr/bin/env node
'use strict';
// Places the addon built by scripts/build-native.js where featscope looks for a prebuilt one:
//   build/Release/featscope.node -> prebuilds/<key>/featscope.node   (stripped)
// The key (scripts/prebuild.js) names what the addon needs: platform-arch, the libtorch major.minor,
// the C++ ABI and CUDA or not, e.g. linux-x64-torch1.13-cxx11-cpu. It is read from the addon itself:
// the version and ABI it reports when loaded, CUDA when it links libtorch_cuda or its RPATH's
// libtorch has it (a linker with --as-needed may drop the link). CI packs one per
// libtorch leg; the CUDA image packs its own.
//
//   node scripts/pack-prebuild.js [--from build/Release/featscope.node] [--out DIR]
//
// --out writes DIR/prebuilds/... instead of the package root (for checks that must not touch it).
// Afterwards it asks the load-time selection (selectPrebuild) which prebuild it would pick for the
// libtorch found here, and fails unless it is the one just written.
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { elfDynamic, prebuildKey, selectPrebuild } = require('./prebuild');

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
  // What the addon was built against, from the addon: loading it here works (it carries the RPATH
  // of the libtorch it was linked with).
  const v = JSON.parse(
    execFileSync(
      process.execPath,
      ['-e', 'process.stdout.write(JSON.stringify(require(process.argv[1]).versions()))', from],
      { encoding: 'utf8' },
    ),
  );
  const dyn = elfDynamic(from);
  const needed = dyn?.needed ?? [];
  const cuda =
    needed.some((n) => /^lib(torch|c10)_cuda\.so/.test(n)) ||
    (dyn?.runpath ?? []).some((d) => fs.existsSync(d) && fs.readdirSync(d).some((f) => /^libtorch_cuda\.so/.test(f)));
  const key = prebuildKey({ version: v.libtorch, cxx11Abi: v.cxx11Abi, cuda });
  const dir = path.join(out, 'prebuilds', key);
  const dest = path.join(dir, 'featscope.node');
  fs.mkdirSync(dir, { recursive: true });
  try {
    // Symbols the loader does not need stay behind (debug builds shrink the most).
    execFileSync('strip', ['--strip-unneeded', '-o', dest, from], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    console.error(`pack-prebuild: strip failed (${String(err.message).split('\n')[0]}); copying unstripped`);
    fs.copyFileSync(from, dest);
  }
  console.log(
    `pack-prebuild: ${from} -> ${dest} (${(fs.statSync(dest).size / 1024).toFixed(0)} KiB; libtorch ${v.libtorch}, ${needed.filter((n) => /^lib(torch|c10)/.test(n)).join(' ')})`,
  );

  // The same selection the package does at load time, here.
  const picked = selectPrebuild(out);
  if (picked.prebuild !== dest) {
    console.error(`pack-prebuild: at load, featscope would not pick ${dest} here: ${picked.reason ?? picked.prebuild}`);
    return 1;
  }
  console.log(`pack-prebuild: the libtorch found here (${picked.libtorch.source}) selects prebuilds/${key}`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
