#!/usr/bin/env node
/**
 * Where the CPU time of `featscope render <folder> --layers layer1.0.conv1` goes (bench/README.md,
 * "Folder profile"). Two runs of the CLI over the same folder:
 *   1. under `perf record` (all threads; needs perf and perf_event_paranoid <= 2): CPU time per
 *      thread role (the JS thread, the thread pool's forward, libvips, V8's helpers, OpenBLAS);
 *   2. with `--cpu-prof` (the JS thread only, to the function): the JS thread split into start-up,
 *      addon load, preprocessing, drawing, JSON and so on.
 * CPU time, not wall time: on a shared machine other processes stretch the clock, much less the
 * CPU a process uses. Usage:
 *   node bench/profile-folder.js [--folder DIR | --photos N] [--cli dist/cli/main.js] [--model FILE]
 */
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const cli = path.resolve(opt('--cli', path.join(root, 'dist', 'cli', 'main.js')));
const model = path.resolve(opt('--model', path.join(root, 'models', 'resnet18.pt')));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-profile-'));
let folder = opt('--folder');
if (!folder) {
  // The bench's folder case: copies of the test fixtures, cycled.
  const n = Number(opt('--photos', '44'));
  const src = path.join(root, 'test', 'fixtures', 'images');
  const photos = fs
    .readdirSync(src)
    .filter((f) => /\.(jpe?g|png)$/i.test(f))
    .sort();
  folder = path.join(tmp, 'photos');
  fs.mkdirSync(folder);
  for (let i = 0; i < n; i++) {
    const p = photos[i % photos.length];
    fs.copyFileSync(path.join(src, p), path.join(folder, `photo-${String(i).padStart(3, '0')}${path.extname(p)}`));
  }
}
const renderArgs = (out) => [
  cli,
  'render',
  folder,
  '--layers',
  'layer1.0.conv1',
  '--model',
  model,
  '--device',
  'cpu',
  '--out',
  out,
];

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.slice(0, 4).join(' ')} failed: ${r.stderr.slice(-500)}`);
  return r.stdout;
}

// 1. All threads, under perf.
const HZ = 499;
const data = path.join(tmp, 'perf.data');
run('perf', [
  'record',
  '-F',
  String(HZ),
  '-e',
  'cpu-clock',
  '-g',
  '-o',
  data,
  '--',
  process.execPath,
  '--perf-basic-prof',
  ...renderArgs(path.join(tmp, 'out1')),
]);
const script = run('perf', ['script', '-i', data, '-F', 'comm,tid,ip,sym,dso']);
const threads = new Map();
let mainTid = null;
for (const block of script.split(/\n\s*\n/)) {
  const lines = block.trim().split('\n');
  if (!lines[0]) continue;
  const [comm, tid] = lines[0].trim().split(/\s+/);
  const frames = lines.slice(1).join('\n');
  const t = threads.get(tid) ?? { comm, samples: 0, frames: [] };
  t.samples++;
  t.frames.push(frames);
  threads.set(tid, t);
  if (/node::Start\b|node::NodeMainInstance::Run/.test(frames) && comm === 'node') mainTid ??= tid;
}
const role = (tid, t) => {
  if (tid === mainTid) return 'JS thread (see the split below)';
  const all = t.frames.join('\n');
  if (t.comm === 'libvips') return 'libvips threads: decode and PNG encode';
  if (/openblas/.test(all) && /sched_yield/.test(all)) return 'OpenBLAS thread: idle spin (sched_yield)';
  if (/v8::platform|OptimizingCompileDispatcher|ConcurrentMarking|Sweeper/.test(all))
    return "V8's helper threads: JIT compiles, concurrent GC";
  if (/libdnnl|perf-\d+\.map|libtorch_cpu/.test(all) && t.samples > 100)
    return 'forward thread: layer check, optimise/freeze, forwards (libtorch, oneDNN)';
  return 'thread pool, other: model file read and load, file I/O, sharp';
};
const byRole = new Map();
let total = 0;
for (const [tid, t] of threads) {
  const r = role(tid, t);
  byRole.set(r, (byRole.get(r) ?? 0) + t.samples);
  total += t.samples;
}

// 2. The JS thread, to the function.
const profDir = path.join(tmp, 'prof');
run(process.execPath, [
  '--cpu-prof',
  `--cpu-prof-dir=${profDir}`,
  '--cpu-prof-interval',
  '500',
  ...renderArgs(path.join(tmp, 'out2')),
]);
const prof = JSON.parse(fs.readFileSync(path.join(profDir, fs.readdirSync(profDir)[0]), 'utf8'));
const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const stackOf = (id) => {
  const out = [];
  for (let i = id; i !== undefined; i = parent.get(i)) {
    const cf = nodes.get(i).callFrame;
    out.push(`${cf.functionName} ${cf.url}`);
  }
  return out.join('\n');
};
// First match wins, tested on the whole stack (leaf first).
const JS_RULES = [
  ['idle (waiting for the forward, libvips, the disk)', /^\(idle\)/],
  ['addon load: dlopen of libtorch (relocations)', /^dlopen |Module\._extensions\.\.node/m],
  ['garbage collection (JS thread part)', /^\(garbage collector\)/],
  ['start-up: module loading (JS compile)', /Module\._compile|Module\._load|wrapSafe|compileFunction/],
  ['model file hash (sha1, for --resume)', /modelFingerprint|crypto\/hash/],
  ['preprocess: resize (Pillow-exact) and normalise', /bilinearResize|resizeAndCrop| \S*preprocess\.js$/m],
  [
    'grid draw: statistics, colour map, labels, layout',
    /renderImageLayers|drawChannelGrid|render\/|visualize\.js|layerStatistics/,
  ],
  ['sharp calls (decode and encode set-up in JS)', /sharp\/dist/],
  ['records, manifest, JSON', /writeManifest|finishedRecords|readRecord|JSON|writeAtomic|manifest\.js/],
  ['batch loop, files, progress', /batch\.js|files\.js|progress\.js|render\.js|fs\/promises|node:fs/],
  ['model calls (capture, layers, load)', /model\.js|native\.js/],
];
const js = new Map();
const deltas = new Map();
prof.samples.forEach((s, i) => deltas.set(s, (deltas.get(s) ?? 0) + prof.timeDeltas[i]));
let jsBusy = 0;
for (const [id, us] of deltas) {
  const st = stackOf(id);
  const rule = JS_RULES.find(([, re]) => re.test(st));
  const name = rule ? rule[0] : 'other JS and native on the JS thread';
  js.set(name, (js.get(name) ?? 0) + us / 1000);
  if (!rule || !rule[0].startsWith('idle')) jsBusy += us / 1000;
}

const ms = (samples) => (samples * 1000) / HZ;
const pct = (v, of) => `${((100 * v) / of).toFixed(0)} %`;
console.log(`folder: ${folder} (${fs.readdirSync(folder).length} photos), ${new Date().toISOString()}`);
console.log(
  `load average: ${os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ')}`,
);
console.log(`\nperf run, all threads: ${ms(total).toFixed(0)} CPU ms\n`);
console.log('| thread | CPU ms | share |\n| --- | ---: | ---: |');
for (const [r, n] of [...byRole].sort((a, b) => b[1] - a[1]))
  console.log(`| ${r} | ${ms(n).toFixed(0)} | ${pct(n, total)} |`);
// --cpu-prof samples the JS thread on the wall clock (a descheduled thread keeps its sample), so
// its split is applied, as shares, to the JS thread's CPU time measured by perf.
const jsCpu = ms(byRole.get('JS thread (see the split below)') ?? 0);
console.log(
  `\n--cpu-prof run, JS thread: its busy samples (${jsBusy.toFixed(0)} ms of wall clock) as shares of its ${jsCpu.toFixed(0)} CPU ms in the perf run\n`,
);
console.log('| JS thread | CPU ms | share of all threads |\n| --- | ---: | ---: |');
for (const [r, v] of [...js].sort((a, b) => b[1] - a[1])) {
  if (r.startsWith('idle')) continue;
  const cpu = (v / jsBusy) * jsCpu;
  console.log(`| ${r} | ${cpu.toFixed(0)} | ${pct(cpu, ms(total))} |`);
}
if (process.env.PROFILE_THREADS) for (const [tid, t] of threads) console.log(tid, t.comm, t.samples, role(tid, t));
fs.rmSync(tmp, { recursive: true, force: true });
