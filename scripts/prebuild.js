'use strict';
// Prebuilt addons: what each one needs, and which one fits the libtorch on this machine.
//
// A prebuild lies at prebuilds/<key>/featscope.node, its key naming what it was linked against:
//   <platform>-<arch>-torch<major.minor>-<cxx11|precxx11>-<cpu|cuda>   e.g. linux-x64-torch2.6-cxx11-cpu
// scripts/pack-prebuild.js writes them (CI, the CUDA image); lib/native.ts loads one when there is
// no local build, after finding libtorch with the build's own search (scripts/find-libtorch.js,
// runtime mode) and preloading, by absolute path, the libtorch libraries the prebuild names: so a
// libtorch in a Python's site-packages loads although it is not on the loader path.
const fs = require('fs');
const path = require('path');
const { findLibtorch, libtorchVersion } = require('./find-libtorch');

/** dlopen's RTLD_NODELETE (glibc): process.dlopen closes a library that is not an addon; this keeps it loaded. */
const RTLD_NODELETE = 0x1000;

/**
 * The DT_NEEDED names and DT_SONAME of an ELF64 little-endian shared object, read from its section
 * headers without loading it; null for anything else (another format, a truncated file).
 */
function elfDynamic(file) {
  let fd;
  try {
    fd = fs.openSync(file, 'r');
    const read = (pos, len) => {
      const b = Buffer.alloc(len);
      if (fs.readSync(fd, b, 0, len, pos) !== len) throw new Error('short read');
      return b;
    };
    const h = read(0, 64);
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return null;
    const shoff = Number(h.readBigUInt64LE(0x28));
    const shentsize = h.readUInt16LE(0x3a);
    const shnum = h.readUInt16LE(0x3c);
    if (shentsize < 64 || shnum === 0 || shnum > 65535) return null;
    const sections = read(shoff, shentsize * shnum);
    const sh = (i) => {
      const o = i * shentsize;
      return {
        type: sections.readUInt32LE(o + 4),
        offset: Number(sections.readBigUInt64LE(o + 0x18)),
        size: Number(sections.readBigUInt64LE(o + 0x20)),
        link: sections.readUInt32LE(o + 0x28),
      };
    };
    for (let i = 0; i < shnum; i++) {
      const s = sh(i);
      if (s.type !== 6 /* SHT_DYNAMIC */ || s.link >= shnum || s.size > 1 << 20) continue;
      const strtab = sh(s.link);
      if (strtab.size > 64 << 20) return null;
      const dyn = read(s.offset, s.size);
      const str = read(strtab.offset, strtab.size);
      const at = (o) => str.toString('latin1', o, str.indexOf(0, o));
      const out = { needed: [], soname: null, runpath: [], cxx11Abi: str.includes('St7__cxx11') };
      for (let o = 0; o + 16 <= dyn.length; o += 16) {
        const tag = Number(dyn.readBigInt64LE(o));
        const val = Number(dyn.readBigUInt64LE(o + 8));
        if (tag === 0) break;
        if (tag === 1) out.needed.push(at(val));
        else if (tag === 14) out.soname = at(val);
        else if (tag === 15 || tag === 29) out.runpath.push(...at(val).split(':').filter(Boolean));
      }
      return out;
    }
    return null;
  } catch {
    return null;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** libtorch's own libraries among a prebuild's DT_NEEDED (the rest are the C/C++ runtime). */
const TORCH_LIB = /^lib(c10|torch)(_[a-z]+)?\.so/;

/**
 * Version, C++ ABI and CUDA of the libtorch in libDir: the version from CMake's files, the Python
 * package's version.py or the libraries' version suffix; the ABI from TorchConfig.cmake's
 * _GLIBCXX_USE_CXX11_ABI, else from libc10's own symbol names (std::__cxx11 strings or not);
 * CUDA when libtorch_cuda is there.
 */
function describeLibDir(libDir, configDir, knownVersion) {
  const files = fs.readdirSync(libDir);
  const c10 = files.find((f) => /^libc10\.so(\.|$)/.test(f));
  const dyn = c10 ? elfDynamic(path.join(libDir, c10)) : null;
  let version = (configDir && libtorchVersion(configDir)) || knownVersion || null;
  if (!version) {
    const suffixed = files.map((f) => /^libtorch_cpu\.so\.(\d+\.\d+)/.exec(f)?.[1]).find(Boolean);
    version = suffixed ?? null;
  }
  let cxx11Abi = dyn ? dyn.cxx11Abi : null;
  try {
    const flag = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(
      fs.readFileSync(path.join(configDir, 'TorchConfig.cmake'), 'utf8'),
    );
    if (flag) cxx11Abi = flag[1] === '1';
  } catch {
    /* no CMake files (a runtime-only libtorch): the symbol names say */
  }
  return {
    version,
    cxx11Abi,
    cuda: files.some((f) => /^libtorch_cuda\.so/.test(f)),
  };
}

/** major.minor of a version string ('2.6.0+cu124' -> '2.6'), or null. */
function majorMinor(version) {
  return /^(\d+\.\d+)/.exec(version ?? '')?.[1] ?? null;
}

/** The prebuild key for a libtorch: platform-arch, libtorch major.minor, C++ ABI, CUDA or not. */
function prebuildKey({ version, cxx11Abi, cuda }, platform = process.platform, arch = process.arch) {
  return `${platform}-${arch}-torch${majorMinor(version) ?? 'unknown'}-${cxx11Abi ? 'cxx11' : 'precxx11'}-${cuda ? 'cuda' : 'cpu'}`;
}

/** The prebuilds a package holds: [{ key, file }]. */
function listPrebuilds(root) {
  const dir = path.join(root, 'prebuilds');
  let keys = [];
  try {
    keys = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return keys.map((key) => ({ key, file: path.join(dir, key, 'featscope.node') })).filter((p) => fs.existsSync(p.file));
}

/**
 * The libtorch found (runtime search) and the prebuild that fits it.
 * @returns {{ libtorch: object | null, key: string | null, prebuild: string | null,
 *   preload: string[], available: string[], reason: string | null }}
 *   reason says, when prebuild is null, why none fits.
 */
function selectPrebuild(root, env = process.env, options = {}) {
  const available = listPrebuilds(root).map((p) => p.key);
  const found = findLibtorch(env, { ...options, runtime: true });
  const none = (reason, libtorch = null, key = null) => ({
    libtorch,
    key,
    prebuild: null,
    preload: [],
    available,
    reason,
  });
  if (found.error) return none(found.error.split('\n')[0]);
  const libtorch = { ...found, ...describeLibDir(found.libDir, found.configDir, found.version) };
  const key = prebuildKey(libtorch);
  const where = `libtorch ${libtorch.version ?? 'of unknown version'} (${libtorch.cxx11Abi ? 'CXX11 ABI' : 'pre-CXX11 ABI'}, ${libtorch.cuda ? 'CUDA' : 'CPU only'}) from ${libtorch.source}, libraries in ${libtorch.libDir}`;
  const file = path.join(root, 'prebuilds', key, 'featscope.node');
  if (!fs.existsSync(file)) {
    return none(
      `no prebuilt addon for ${key}: found ${where}; this package carries ${available.length ? available.join(', ') : 'none'}`,
      libtorch,
      key,
    );
  }
  const dyn = elfDynamic(file);
  if (!dyn) return none(`${file} is not a shared object this platform can read`, libtorch, key);
  // Each libtorch library the prebuild names, found in libDir under that exact soname.
  const sonames = new Map();
  for (const f of fs.readdirSync(libtorch.libDir)) {
    if (!TORCH_LIB.test(f)) continue;
    const s = elfDynamic(path.join(libtorch.libDir, f))?.soname;
    if (s && !sonames.has(s)) sonames.set(s, path.join(libtorch.libDir, f));
  }
  const needed = dyn.needed.filter((n) => TORCH_LIB.test(n));
  const missing = needed.filter((n) => !sonames.has(n));
  if (missing.length) {
    return none(
      `the prebuild for ${key} needs ${missing.join(', ')}, which ${libtorch.libDir} does not hold (found ${where})`,
      libtorch,
      key,
    );
  }
  // A CUDA prebuild also gets libtorch's CUDA libraries, which register the CUDA kernels, even where
  // the linker dropped them from its DT_NEEDED (--as-needed).
  if (libtorch.cuda) {
    for (const [s] of sonames) if (/^lib(c10|torch)_cuda\.so/.test(s) && !needed.includes(s)) needed.push(s);
  }
  // Dependencies first: c10 before torch_cpu before torch.
  const order = (n) =>
    n.startsWith('libc10') ? 0 : n.startsWith('libtorch_cpu') ? 1 : n.startsWith('libtorch.') ? 3 : 2;
  const preload = needed.sort((a, b) => order(a) - order(b)).map((n) => sonames.get(n));
  return { libtorch, key, prebuild: file, preload, available, reason: null };
}

/**
 * Loads a libtorch library by absolute path so that an addon naming it by soname finds it already
 * loaded. process.dlopen throws for a library that is not an addon ("did not self-register") and
 * closes it; RTLD_NODELETE keeps it mapped.
 */
function preloadLibrary(file) {
  const os = require('os');
  try {
    process.dlopen({ exports: {} }, file, os.constants.dlopen.RTLD_NOW | RTLD_NODELETE);
  } catch (err) {
    if (!/did not self-register/.test(String(err && err.message))) throw err;
  }
}

/** Loads the prebuild selectPrebuild chose: its libtorch libraries first, by absolute path, then the addon. */
function loadPrebuild(choice) {
  for (const lib of choice.preload) preloadLibrary(lib);
  return require(choice.prebuild);
}

module.exports = {
  elfDynamic,
  describeLibDir,
  prebuildKey,
  majorMinor,
  listPrebuilds,
  selectPrebuild,
  preloadLibrary,
  loadPrebuild,
};
