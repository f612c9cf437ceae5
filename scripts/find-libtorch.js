#!/usr/bin/env node
'use strict';
// Finds the libtorch featscope builds against, in a documented order, and says which one it used:
//   1. LIBTORCH            an unpacked libtorch (the folder holding lib/ and share/cmake/Torch)
//   2. TORCH_CMAKE_PREFIX, then CMAKE_PREFIX_PATH   folders CMake searches for TorchConfig.cmake
//   3. the torch of a Python: FEATSCOPE_PYTHON, then /usr/bin/python3, then python3 on PATH
//      (torch.utils.cmake_prefix_path)
//   4. the system: Debian's libtorch-dev (/usr/lib/<triplet>/cmake/Torch)
// Used by scripts/build-native.js (the one build of record) and scripts/setup.sh.
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const OPTIONS_HELP = [
  "featscope needs libtorch (PyTorch's C++ library) to build its native addon. Any one of these works:",
  '  - Debian/Ubuntu: apt-get install libtorch-dev   (scripts/setup.sh does this for you, saying so)',
  '  - a Python with PyTorch: set FEATSCOPE_PYTHON=/path/to/python (or have torch in /usr/bin/python3)',
  '  - an unpacked libtorch zip from pytorch.org: set LIBTORCH=/path/to/libtorch',
  '  - any folder holding Torch/TorchConfig.cmake: set TORCH_CMAKE_PREFIX or CMAKE_PREFIX_PATH',
].join('\n');

/** The folder that holds TorchConfig.cmake under a CMake prefix, or null. */
function torchConfigDir(prefix) {
  if (!prefix) return null;
  const candidates = [
    prefix,
    path.join(prefix, 'Torch'),
    path.join(prefix, 'share', 'cmake', 'Torch'),
    path.join(prefix, 'lib', 'cmake', 'Torch'),
  ];
  return candidates.find((d) => fs.existsSync(path.join(d, 'TorchConfig.cmake'))) || null;
}

function pythonPrefix(python) {
  try {
    const out = execFileSync(
      python,
      ['-c', 'import torch, torch.utils; print(torch.utils.cmake_prefix_path); print(torch.__version__)'],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 60000,
      },
    );
    const [prefix, version] = out.trim().split('\n');
    return { prefix, version };
  } catch {
    return null;
  }
}

function systemConfigDirs() {
  const dirs = [];
  for (const base of ['/usr/lib', '/usr/local/lib', '/usr/lib64']) {
    if (!fs.existsSync(base)) continue;
    dirs.push(path.join(base, 'cmake', 'Torch'));
    for (const e of fs.readdirSync(base)) {
      if (e.endsWith('-linux-gnu')) dirs.push(path.join(base, e, 'cmake', 'Torch'));
    }
  }
  return dirs;
}

/**
 * @param {Record<string, string | undefined>} env
 * @param {{ systemDirs?: string[] }} [options] systemDirs replaces the system folders searched (tests)
 * @returns {{ source: string, configDir: string } | { error: string }}
 */
function findLibtorch(env = process.env, options = {}) {
  const tried = [];
  if (env.LIBTORCH) {
    const d = torchConfigDir(env.LIBTORCH);
    if (d) return { source: `LIBTORCH=${env.LIBTORCH}`, configDir: d };
    return {
      error: `LIBTORCH=${env.LIBTORCH} holds no share/cmake/Torch/TorchConfig.cmake; point it at an unpacked libtorch folder.\n${OPTIONS_HELP}`,
    };
  }
  for (const v of ['TORCH_CMAKE_PREFIX', 'CMAKE_PREFIX_PATH']) {
    if (!env[v]) continue;
    for (const p of env[v].split(path.delimiter).filter(Boolean)) {
      const d = torchConfigDir(p);
      if (d) return { source: `${v} (${p})`, configDir: d };
    }
    tried.push(`${v}=${env[v]}: no TorchConfig.cmake`);
  }
  const pythons = [env.FEATSCOPE_PYTHON, '/usr/bin/python3', 'python3'].filter(Boolean);
  for (const py of [...new Set(pythons)]) {
    const r = pythonPrefix(py);
    const d = r && torchConfigDir(r.prefix);
    if (d) return { source: `the torch ${r.version} of ${py}`, configDir: d };
    tried.push(r ? `${py}: torch ${r.version} ships no CMake files` : `${py}: no torch`);
  }
  for (const d of options.systemDirs ?? systemConfigDirs()) {
    if (fs.existsSync(path.join(d, 'TorchConfig.cmake'))) return { source: `the system libtorch (${d})`, configDir: d };
  }
  tried.push('system: no libtorch-dev');
  return { error: `featscope: no libtorch found (tried: ${tried.join('; ')}).\n${OPTIONS_HELP}` };
}

/**
 * The version of the libtorch whose TorchConfig.cmake lies in configDir: TorchConfigVersion.cmake's
 * PACKAGE_VERSION, else torch/version.h under the install prefix; null when neither says.
 */
function libtorchVersion(configDir) {
  try {
    const m = /set\(PACKAGE_VERSION "([^"]+)"\)/.exec(
      fs.readFileSync(path.join(configDir, 'TorchConfigVersion.cmake'), 'utf8'),
    );
    if (m) return m[1];
  } catch {
    /* no version file: try the header */
  }
  for (let d = configDir, i = 0; i < 5; i++, d = path.dirname(d)) {
    for (const h of ['include/torch/csrc/api/include/torch/version.h', 'include/torch/version.h']) {
      try {
        const t = fs.readFileSync(path.join(d, h), 'utf8');
        const v = ['MAJOR', 'MINOR', 'PATCH'].map((k) => new RegExp(`#define TORCH_VERSION_${k} (\\d+)`).exec(t)?.[1]);
        if (v.every(Boolean)) return v.join('.');
      } catch {
        /* not here */
      }
    }
  }
  return null;
}

module.exports = { findLibtorch, libtorchVersion, OPTIONS_HELP };

if (require.main === module) {
  const r = findLibtorch();
  if (r.error) {
    console.error(r.error);
    process.exit(1);
  }
  if (process.argv.includes('--quiet')) console.log(r.configDir);
  else console.log(`${r.configDir}\t${r.source}\t${libtorchVersion(r.configDir) ?? 'unknown version'}`);
}
