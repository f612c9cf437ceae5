#!/usr/bin/env node
'use strict';
// Finds the libtorch featscope builds against, in a documented order, and says which one it used:
//   1. LIBTORCH            an unpacked libtorch (the folder holding lib/ and share/cmake/Torch)
//   2. TORCH_CMAKE_PREFIX, then CMAKE_PREFIX_PATH   folders CMake searches for TorchConfig.cmake
//   3. the torch of a Python: FEATSCOPE_PYTHON, then /usr/bin/python3, then python3 on PATH
//      (torch.utils.cmake_prefix_path)
//   4. the system: Debian's libtorch-dev (/usr/lib/<triplet>/cmake/Torch)
// Used by scripts/build-native.js (the one build of record), scripts/setup.sh, and at load time
// (scripts/prebuild.js: the same search, asking for the shared libraries instead of CMake files).
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

/**
 * Where a Python's torch package lies, without importing torch (an import takes seconds; the
 * runtime search runs this at load): its CMake prefix, its lib/ folder and its version.
 */
function pythonTorch(python) {
  try {
    const out = execFileSync(
      python,
      [
        '-c',
        "import importlib.util as u; s = u.find_spec('torch'); print(s.submodule_search_locations[0] if s else '')",
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000 },
    );
    const dir = out.trim();
    if (!dir) return null;
    let version = 'unknown';
    try {
      version =
        /__version__\s*=\s*'([^']+)'/.exec(fs.readFileSync(path.join(dir, 'version.py'), 'utf8'))?.[1] ?? version;
    } catch {
      /* no version.py: say unknown */
    }
    return { prefix: path.join(dir, 'share', 'cmake'), libDir: path.join(dir, 'lib'), version };
  } catch {
    return null;
  }
}

/** True when dir holds libtorch's shared libraries (libc10.so, possibly with a version suffix). */
function holdsLibtorch(dir) {
  try {
    return fs.readdirSync(dir).some((f) => /^libc10\.so(\.|$)/.test(f));
  } catch {
    return false;
  }
}

/** The folder of libtorch's shared libraries beside a TorchConfig.cmake folder (<prefix>/lib, or its triplet folder). */
function libDirOfConfig(configDir) {
  const below = [path.resolve(configDir, '..', '..'), path.resolve(configDir, '..', '..', '..', 'lib')];
  const prefix = path.resolve(configDir, '..', '..', '..');
  try {
    for (const e of fs.readdirSync(path.join(prefix, 'lib'))) {
      if (e.endsWith('-linux-gnu')) below.push(path.join(prefix, 'lib', e));
    }
  } catch {
    /* no lib/ under the prefix */
  }
  return below.find(holdsLibtorch) ?? null;
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
 * The search, in the order above. For the build (the default) a candidate must carry CMake files;
 * with `runtime: true` (the prebuild loader, `featscope doctor`) it must carry the shared libraries
 * instead, so that a Python's torch without CMake files, or a system libtorch without -dev, counts.
 * @param {Record<string, string | undefined>} env
 * @param {{ systemDirs?: string[], runtime?: boolean }} [options] systemDirs replaces the system
 *   folders searched (tests)
 * @returns {{ source: string, configDir: string | null, libDir: string | null, version?: string } | { error: string }}
 */
function findLibtorch(env = process.env, options = {}) {
  const runtime = options.runtime === true;
  const tried = [];
  const found = (source, configDir, libDir, version) => {
    if (runtime && !libDir) return null;
    return { source, configDir, libDir, ...(version ? { version } : {}) };
  };
  if (env.LIBTORCH) {
    const d = torchConfigDir(env.LIBTORCH);
    const lib = holdsLibtorch(path.join(env.LIBTORCH, 'lib')) ? path.join(env.LIBTORCH, 'lib') : null;
    const r = (runtime || d) && found(`LIBTORCH=${env.LIBTORCH}`, d, lib ?? (d && libDirOfConfig(d)));
    if (r) return r;
    return {
      error: runtime
        ? `LIBTORCH=${env.LIBTORCH} holds no lib/libc10.so; point it at an unpacked libtorch folder.\n${OPTIONS_HELP}`
        : `LIBTORCH=${env.LIBTORCH} holds no share/cmake/Torch/TorchConfig.cmake; point it at an unpacked libtorch folder.\n${OPTIONS_HELP}`,
    };
  }
  for (const v of ['TORCH_CMAKE_PREFIX', 'CMAKE_PREFIX_PATH']) {
    if (!env[v]) continue;
    for (const p of env[v].split(path.delimiter).filter(Boolean)) {
      const d = torchConfigDir(p);
      const r = d && found(`${v} (${p})`, d, libDirOfConfig(d));
      if (r) return r;
    }
    tried.push(`${v}=${env[v]}: no TorchConfig.cmake`);
  }
  const pythons = [env.FEATSCOPE_PYTHON, '/usr/bin/python3', 'python3'].filter(Boolean);
  for (const py of [...new Set(pythons)]) {
    const t = pythonTorch(py);
    const d = t && torchConfigDir(t.prefix);
    const lib = t && holdsLibtorch(t.libDir) ? t.libDir : null;
    const r =
      t && (runtime || d) && found(`the torch ${t.version} of ${py}`, d, lib ?? (d && libDirOfConfig(d)), t.version);
    if (r) return r;
    tried.push(
      t ? `${py}: torch ${t.version} ships no ${runtime ? 'lib/libc10.so' : 'CMake files'}` : `${py}: no torch`,
    );
  }
  for (const d of options.systemDirs ?? systemConfigDirs()) {
    const hasConfig = fs.existsSync(path.join(d, 'TorchConfig.cmake'));
    if (!hasConfig && !runtime) continue;
    const lib = holdsLibtorch(path.resolve(d, '..', '..')) ? path.resolve(d, '..', '..') : null;
    const r = (hasConfig || lib) && found(`the system libtorch (${hasConfig ? d : lib})`, hasConfig ? d : null, lib);
    if (r) return r;
  }
  tried.push(runtime ? 'system: no libtorch' : 'system: no libtorch-dev');
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

module.exports = { findLibtorch, libtorchVersion, holdsLibtorch, OPTIONS_HELP };

if (require.main === module) {
  const r = findLibtorch();
  if (r.error) {
    console.error(r.error);
    process.exit(1);
  }
  if (process.argv.includes('--quiet')) console.log(r.configDir);
  else console.log(`${r.configDir}\t${r.source}\t${libtorchVersion(r.configDir) ?? 'unknown version'}`);
}
