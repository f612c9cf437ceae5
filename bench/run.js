#!/usr/bin/env node
'use strict';
// featscope next to the Python approach, same machine, same model file, one run: `npm run bench`.
// Starts bench/python_peer.py --serve for the Python side, alternates blocks of samples of each case
// between the two (drift on a shared machine then hits both sides), and prints medians, ratios,
// whether the issue's targets are met, and one `BENCH_JSON {...}` line.
// Plain CommonJS over ../dist so it runs with the compiled package and a carried Node (no ts-node).
//
//   node bench/run.js [--model models/resnet18.pt] [--runs 50] [--rounds 5] [--device auto] [--batch B]
//                     [--photo test/fixtures/images/dog.jpg] [--python python3] [--no-python] [--threads N]
// --threads N: intra-op threads on both sides (default: featscope's, i.e. FEATSCOPE_THREADS or libtorch's).
// --folder N: photos in the folder case (default 44, copies of test/fixtures/images; 0 skips it).
// --only folder: the folder case alone (also prints the CLI's CPU time per run).
// --only staging: the batch-128 staging row alone (a JS array through a global average pool).
// --pt2 FILE.pt2: also time captures from an AOTInductor package of the same model (libtorch >= 2.6;
//   scripts/export-model.py FILE.pt2 --format pt2 --taps all), against the TorchScript path and
//   Python hooks in the same alternating rounds.
// The Python: --python, else the first of BENCH_PYTHON, FEATSCOPE_PYTHON, python3, /usr/bin/python3
// that imports torch and torchvision.
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const { spawn, spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const LAYERS = ['layer1.0.conv1', 'layer2', 'layer3', 'layer4'];

function parseArgs(argv) {
  const o = {
    model: path.join(root, 'models', 'resnet18.pt'),
    runs: 50,
    rounds: 5,
    device: 'auto',
    batch: 0,
    photo: path.join(root, 'test', 'fixtures', 'images', 'dog.jpg'),
    python: null,
    peer: true,
    threads: 0,
    folder: 44,
    only: null,
    pt2: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--model') o.model = path.resolve(next());
    else if (a === '--runs') o.runs = Number(next());
    else if (a === '--rounds') o.rounds = Number(next());
    else if (a === '--device') o.device = next();
    else if (a === '--batch') o.batch = Number(next());
    else if (a === '--photo') o.photo = path.resolve(next());
    else if (a === '--python') o.python = next();
    else if (a === '--no-python') o.peer = false;
    else if (a === '--threads') o.threads = Number(next());
    else if (a === '--folder') o.folder = Number(next());
    else if (a === '--only') o.only = next();
    else if (a === '--pt2') o.pt2 = path.resolve(next());
    else if (a === '--help' || a === '-h') {
      console.log(
        fs
          .readFileSync(__filename, 'utf8')
          .split('\n')
          .slice(2, 14)
          .map((l) => l.replace(/^\/\/ ?/, ''))
          .join('\n'),
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  if (!Number.isInteger(o.runs) || o.runs < 5) throw new Error(`--runs must be an integer >= 5, got ${o.runs}`);
  if (!Number.isInteger(o.rounds) || o.rounds < 1)
    throw new Error(`--rounds must be a positive integer, got ${o.rounds}`);
  if (o.only !== null && o.only !== 'folder' && o.only !== 'staging')
    throw new Error(`--only takes folder or staging, got ${o.only}`);
  if (o.only === 'folder' && o.folder === 0) throw new Error('--only folder needs --folder N above 0');
  if (o.only === 'staging') o.folder = 0;
  if (!Number.isInteger(o.folder) || o.folder < 0)
    throw new Error(`--folder must be a number of photos (0 skips the case), got ${o.folder}`);
  if (!Number.isInteger(o.threads) || o.threads < 0)
    throw new Error(`--threads must be a positive integer, got ${o.threads}`);
  o.python = o.python || findPython();
  return o;
}

/** The first Python that imports torch and torchvision (python3 on PATH is the venv on the GPU machine). */
function findPython() {
  const candidates = [process.env.BENCH_PYTHON, process.env.FEATSCOPE_PYTHON, 'python3', '/usr/bin/python3'].filter(
    Boolean,
  );
  for (const py of [...new Set(candidates)]) {
    const r = spawnSync(py, ['-c', 'import torch, torchvision'], { stdio: 'ignore', timeout: 120000 });
    if (r.status === 0) return py;
  }
  return candidates[0];
}

function loadPackage() {
  try {
    return {
      featscope: require(path.join(root, 'dist')),
      preprocess: require(path.join(root, 'dist', 'preprocess')).preprocess,
      renderChannelGrid: require(path.join(root, 'dist', 'render')).renderChannelGrid,
    };
  } catch (err) {
    console.error(
      `bench: cannot load the compiled package from dist/ (${err.message.split('\n')[0]}).\n` +
        'Build it first: npm run build',
    );
    process.exit(1);
  }
}

function ensureModel(o) {
  if (fs.existsSync(o.model)) return;
  console.log(`bench: exporting ${path.relative(root, o.model)} with ${o.python} scripts/export-model.py`);
  fs.mkdirSync(path.dirname(o.model), { recursive: true });
  const r = spawnSync(o.python, [path.join(root, 'scripts', 'export-model.py'), o.model], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('bench: model export failed; pass --model FILE.pt');
    process.exit(1);
  }
}

/** A scripted global average pool (models/global-avg-pool.pt), exported once with o.python. */
function gapModel(o) {
  const file = path.join(root, 'models', 'global-avg-pool.pt');
  if (fs.existsSync(file)) return file;
  const src = path.join(os.tmpdir(), `featscope-gap-${process.pid}.py`);
  fs.writeFileSync(
    src,
    'import sys, torch\n' +
      'class GlobalAvgPool(torch.nn.Module):\n' +
      '    def forward(self, x):\n' +
      '        return x.mean((2, 3))\n' +
      'torch.jit.script(GlobalAvgPool()).save(sys.argv[1])\n',
  );
  const r = spawnSync(o.python, [src, file], { stdio: 'inherit' });
  fs.rmSync(src, { force: true });
  if (r.status !== 0) throw new Error(`bench: exporting ${file} with ${o.python} failed`);
  return file;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * `n` timed samples (ms) of `fn` after `warm` untimed calls; `.cpu` holds the process CPU time of
 * each (all threads: the forward runs on a pool thread), less sensitive to other processes on a
 * shared machine than the wall clock.
 */
async function samples(fn, n, warm) {
  for (let i = 0; i < warm; i++) await fn();
  const ts = [];
  ts.cpu = [];
  ts.faults = [];
  for (let i = 0; i < n; i++) {
    const c = process.cpuUsage();
    const f = process.resourceUsage().minorPageFault;
    const t = performance.now();
    await fn();
    ts.push(performance.now() - t);
    const d = process.cpuUsage(c);
    ts.cpu.push((d.user + d.system) / 1000);
    ts.faults.push(process.resourceUsage().minorPageFault - f);
  }
  return ts;
}

const med = (ts) => (ts && ts.length ? Math.round(median(ts) * 1000) / 1000 : null);

/** Deterministic N(0,1)-ish input (Box-Muller over a small LCG); Python reads the same bytes. */
function randomInput(n, seed) {
  const data = new Float32Array(n);
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const t = 2 * Math.PI * u();
    data[i] = r * Math.cos(t);
    if (i + 1 < n) data[i + 1] = r * Math.sin(t);
  }
  return data;
}

/** Leaf modules: names no other module lies under, called at least once (ResNet-18: 52). */
function leafLayers(layers) {
  const names = layers.map((l) => l.name);
  return layers.filter((l) => l.calls > 0 && !names.some((n) => n.startsWith(`${l.name}.`))).map((l) => l.name);
}

/** featscope's side of each case, named as in python_peer.py; each function is one timed sample. */
async function featscopeCases(o, pkg, x1) {
  const { featscope, preprocess, renderChannelGrid } = pkg;
  const model = await featscope.loadModel(o.model, { device: o.device });
  const cuda = model.device.startsWith('cuda');
  const batch = o.batch || (cuda ? 128 : 8);
  const input1 = { data: x1, shape: [1, 3, 224, 224] };
  const inputB = { data: randomInput(batch * 3 * 224 * 224, 1), shape: [batch, 3, 224, 224] };
  const leaves = leafLayers(await model.layers());
  const photo = fs.readFileSync(o.photo);
  const info = { device: model.device, batch, n_leaf_modules: leaves.length };

  const four = await model.forward(input1, { layers: LAYERS });
  info.b1_four_layers_sums = four.captures.map((c) => c.data.reduce((acc, v) => acc + v, 0));
  info.b1_all_leaves_captures = (await model.forward(input1, { layers: leaves })).captures.length;
  const photoPng = async () => {
    const x = await preprocess(photo, { resize: 'squash' });
    const [cap] = await model.capture(x, ['layer1.0.conv1']);
    return (await renderChannelGrid(cap, { channels: 16, colormap: 'viridis' })).png;
  };
  info.photo_png_bytes = (await photoPng()).length;
  const x = await preprocess(photo, { resize: 'squash' });
  const [cap] = await model.capture(x, ['layer1.0.conv1']);
  info.optimized = four.optimized;
  const cases = {
    // Floors: the exact scripted graph, as Python's torch.jit.load runs it.
    scripted_forward: () => model.forward(input1, { optimize: false }),
    // The optimised graph with no captures: what capturing costs on top of it stays visible.
    optimized_forward: () => model.forward(input1),
    b1_four_layers: () => model.forward(input1, { layers: LAYERS }),
    b1_all_leaves: () => model.forward(input1, { layers: leaves }),
    batch_layer1: () => model.forward(inputB, { layers: ['layer1'] }),
    // capture() returns only the captures, so its graph stops at layer1 (no output).
    batch_layer1_capture: () => model.capture(inputB, ['layer1']),
    batch_forward: () => model.forward(inputB, { optimize: false }),
    batch_optimized_forward: () => model.forward(inputB),
    photo_png: photoPng,
    // Where the photo case spends its time.
    photo_preprocess: () => preprocess(photo, { resize: 'squash' }),
    photo_capture: () => model.capture(x, ['layer1.0.conv1']),
    photo_render: () => renderChannelGrid(cap, { channels: 16, colormap: 'viridis' }),
  };
  // Batch 128 from a JS array through a global average pool: what staging the input costs (the
  // copy into featscope's memory, and its page faults), with next to no compute after it.
  const gap = await featscope.loadModel(gapModel(o), { device: o.device });
  const input128 = { data: randomInput(128 * 3 * 224 * 224, 2), shape: [128, 3, 224, 224] };
  cases.b128_staging_forward = () => gap.forward(input128);
  return { model, info, cases, extraModels: [gap] };
}

/** python_peer.py --serve as a child process: one request at a time, one answer line each. */
async function startPeer(o, x1, batch, device, tmp, folder) {
  const inputPath = path.join(tmp, 'x1.f32');
  fs.writeFileSync(inputPath, Buffer.from(x1.buffer, x1.byteOffset, x1.byteLength));
  const args = [
    path.join(__dirname, 'python_peer.py'),
    o.model,
    '--serve',
    '--photo',
    o.photo,
    '--input',
    inputPath,
    '--batch',
    String(batch),
    '--runs',
    String(o.runs),
    '--device',
    device.startsWith('cuda') ? device : 'cpu',
    '--threads',
    String(o.threads),
  ];
  if (folder) args.push('--folder', folder);
  const child = spawn(o.python, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  const queued = [];
  lines.on('line', (l) => (waiting.length ? waiting.shift().resolve(l) : queued.push(l)));
  const failed = (why) =>
    new Error(`${o.python} bench/python_peer.py ${why}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
  child.on('error', (e) => waiting.splice(0).forEach((w) => w.reject(failed(e.message))));
  child.on('close', (code) => waiting.splice(0).forEach((w) => w.reject(failed(`exited (${code})`))));
  const next = (prefix) =>
    new Promise((resolve, reject) => {
      const take = (l) =>
        l.startsWith(prefix) ? resolve(JSON.parse(l.slice(prefix.length))) : next(prefix).then(resolve, reject);
      if (queued.length) take(queued.shift());
      else waiting.push({ resolve: take, reject });
    });
  const info = await next('PEER_READY ');
  return {
    info,
    async run(name, n, warm) {
      child.stdin.write(`${name} ${n} ${warm}\n`);
      const r = await next('PEER_TIMES ');
      if (r.error) throw new Error(`python case ${name}: ${r.error}`);
      const ms = r.ms;
      ms.cpu = r.cpu_ms || [];
      return ms;
    },
    close() {
      child.stdin.end('quit\n');
    },
  };
}

/**
 * Alternates blocks of featscope and Python samples of one case (ABBA order), so that drift on a
 * shared or throttling machine lands on both sides instead of on whichever ran second.
 */
async function measure(name, fsFn, peer, n, warm, rounds) {
  const fsTimes = [];
  const pyTimes = [];
  const fsCpu = [];
  const fsFaults = [];
  const pyCpu = [];
  const per = Math.max(1, Math.ceil(n / rounds));
  await samples(fsFn, 0, warm);
  if (peer) await peer.run(name, 0, warm);
  for (let r = 0; r < rounds; r++) {
    const fsBlock = async () => {
      const ts = await samples(fsFn, per, 0);
      fsTimes.push(...ts);
      fsCpu.push(...ts.cpu);
      fsFaults.push(...ts.faults);
    };
    const pyBlock = async () => {
      if (!peer) return;
      const ts = await peer.run(name, per, 0);
      pyTimes.push(...ts);
      pyCpu.push(...ts.cpu);
    };
    if (r % 2 === 0) {
      await fsBlock();
      await pyBlock();
    } else {
      await pyBlock();
      await fsBlock();
    }
  }
  return {
    fs: med(fsTimes),
    py: peer ? med(pyTimes) : null,
    fsCpu: med(fsCpu),
    fsFaults: med(fsFaults),
    pyCpu: peer ? med(pyCpu) : null,
  };
}

const round = (v, d = 2) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v * 10 ** d) / 10 ** d : null);
const ratio = (a, b) => (typeof a === 'number' && typeof b === 'number' && b > 0 ? a / b : null);

/**
 * The folder case: `n` photos (copies of the test fixtures, cycled) in `tmp`/photos, for the CLI
 * (`featscope render DIR`, one whole process: start-up, model load, every photo's decode, forward
 * and PNG grid) and for the blog's loop (python_peer.py's folder_png, timed inside its process).
 */
function makeFolder(n, tmp) {
  const src = path.join(root, 'test', 'fixtures', 'images');
  const photos = fs
    .readdirSync(src)
    .filter((f) => /\.(jpe?g|png)$/i.test(f))
    .sort();
  const dir = path.join(tmp, 'photos');
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const p = photos[i % photos.length];
    fs.copyFileSync(path.join(src, p), path.join(dir, `photo-${String(i).padStart(3, '0')}${path.extname(p)}`));
  }
  return dir;
}

function runCliFolder(o, device, dir, tmp) {
  const out = path.join(tmp, 'cli-out');
  fs.rmSync(out, { recursive: true, force: true });
  const args = [
    path.join(root, 'dist', 'cli', 'main.js'),
    'render',
    dir,
    '--model',
    o.model,
    '--layers',
    'layer1.0.conv1',
    '--device',
    device,
    '--threads',
    String(o.threads),
    '--out',
    out,
  ];
  // The child's CPU time (all its threads), written by a preload when it exits.
  const cpuFile = path.join(tmp, 'cli-cpu.json');
  const preload = path.join(tmp, 'cpu-at-exit.js');
  fs.writeFileSync(
    preload,
    `process.on('exit', () => { const c = process.cpuUsage(); require('fs').writeFileSync(${JSON.stringify(cpuFile)}, String((c.user + c.system) / 1000)); });`,
  );
  fs.rmSync(cpuFile, { force: true });
  const t = performance.now();
  const r = spawnSync(process.execPath, ['-r', preload, ...args], { encoding: 'utf8', timeout: 600000 });
  const ms = performance.now() - t;
  runCliFolder.cpu.push(fs.existsSync(cpuFile) ? Number(fs.readFileSync(cpuFile, 'utf8')) : NaN);
  if (r.status !== 0)
    throw new Error(
      `featscope render over the folder failed (${r.status}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`,
    );
  return ms;
}

runCliFolder.cpu = [];

/** The issue's targets; each is null (not judged) when a side is missing. */
function targets(fs_, py, cuda) {
  const t = [];
  // cpu: the same ratio on process CPU time (shown beside it; the wall clock decides).
  const add = (name, value, ok, want, cpu = null) =>
    t.push({ name, value: round(value, 3), want, met: value === null ? null : ok(value), cpu: round(cpu, 3) });
  if (cuda) {
    // Issue 20's GPU targets (bench/README.md, "GPU targets").
    add(
      `b${fs_.batch} forward from a JS array / python pinned host-to-GPU forward`,
      ratio(fs_.batch_forward_vs_pinned_ms, py.batch_forward_vs_pinned_ms),
      (v) => v <= 1.25,
      '<= 1.25x',
    );
    add(
      `b${fs_.batch} x layer1: python hook + .cpu() / featscope`,
      ratio(py.batch_layer1_ms, fs_.batch_layer1_ms),
      (v) => v >= 5,
      '>= 5x faster',
    );
    add(
      'all leaves: python hooks / featscope',
      ratio(py.b1_all_leaves_ms, fs_.b1_all_leaves_ms),
      (v) => v >= 4,
      '>= 4x faster',
    );
    add(
      'b1 x 4 layers vs python scripted forward, input already on the GPU',
      ratio(fs_.b1_four_layers_ms, py.scripted_forward_ms),
      (v) => v <= 1.0,
      '<= 1.0x',
    );
    add(
      'photo -> PNG: blog script / featscope',
      ratio(py.photo_png_ms, fs_.photo_png_ms),
      (v) => v >= 40,
      '>= 40x faster',
    );
    if (fs_.folder_png_ms)
      add(
        `folder of ${fs_.folder_photos} photos: blog loop / featscope CLI`,
        ratio(py.folder_png_ms, fs_.folder_png_ms),
        (v) => v >= 20,
        '>= 20x faster',
      );
  } else {
    // Issue 12 (optimised capture graphs, same libtorch and thread count both sides).
    add(
      'b1 x 4 layers: featscope / python hooks',
      ratio(fs_.b1_four_layers_ms, py.b1_four_layers_ms),
      (v) => v <= 0.75,
      '<= 0.75x',
      ratio(fs_.b1_four_layers_cpu_ms, py.b1_four_layers_cpu_ms),
    );
    add(
      'all leaves: featscope / python hooks',
      ratio(fs_.b1_all_leaves_ms, py.b1_all_leaves_ms),
      (v) => v <= 0.4,
      '<= 0.40x',
      ratio(fs_.b1_all_leaves_cpu_ms, py.b1_all_leaves_cpu_ms),
    );
    add(
      `b${fs_.batch} x layer1: featscope / python .cpu()`,
      ratio(fs_.batch_layer1_ms, py.batch_layer1_ms),
      (v) => v <= 0.4,
      '<= 0.40x',
      ratio(fs_.batch_layer1_cpu_ms, py.batch_layer1_cpu_ms),
    );
    if (fs_.batch_layer1_capture_ms)
      add(
        `b${fs_.batch} x layer1, capture() (stops at layer1): featscope / python hooks (whole forward)`,
        ratio(fs_.batch_layer1_capture_ms, py.batch_layer1_ms),
        (v) => v <= 0.4,
        '<= 0.40x',
        ratio(fs_.batch_layer1_capture_cpu_ms, py.batch_layer1_cpu_ms),
      );
    add(
      'photo -> PNG: blog script / featscope',
      ratio(py.photo_png_ms, fs_.photo_png_ms),
      (v) => v >= 10,
      '>= 10x faster',
      ratio(py.photo_png_cpu_ms, fs_.photo_png_cpu_ms),
    );
    if (fs_.folder_png_ms) {
      add(
        `folder of ${fs_.folder_photos} photos: blog loop / featscope CLI`,
        ratio(py.folder_png_ms, fs_.folder_png_ms),
        (v) => v >= 6,
        '>= 6x faster',
      );
    } else {
      t.push({
        name: 'folder of 44 photos: blog loop / featscope CLI',
        value: null,
        want: '>= 6x faster',
        met: null,
        note: 'skipped (--folder 0)',
      });
    }
  }
  return t;
}

function printTable(fs_, py) {
  const rows = [
    [
      'floor: scripted forward, batch 1',
      fs_.scripted_forward_ms,
      py.scripted_forward_ms,
      fs_.scripted_forward_ms,
      null,
    ],
    [
      'optimised forward, no captures, batch 1',
      fs_.optimized_forward_ms,
      null,
      fs_.scripted_forward_ms,
      fs_.optimized_forward_ms,
    ],
    [
      'batch 1 x 4 layers -> host',
      fs_.b1_four_layers_ms,
      py.b1_four_layers_ms,
      fs_.scripted_forward_ms,
      fs_.optimized_forward_ms,
    ],
    [
      `batch 1 x all ${fs_.n_leaf_modules} leaf modules -> host`,
      fs_.b1_all_leaves_ms,
      py.b1_all_leaves_ms,
      fs_.scripted_forward_ms,
      fs_.optimized_forward_ms,
    ],
    [
      `batch ${fs_.batch} x layer1 -> host`,
      fs_.batch_layer1_ms,
      py.batch_layer1_ms,
      fs_.batch_forward_ms,
      fs_.batch_optimized_forward_ms,
    ],
    [
      `batch ${fs_.batch} x layer1 -> host, captures only (capture(); Python: hook raises to stop)`,
      fs_.batch_layer1_capture_ms,
      py.batch_layer1_capture_ms,
      fs_.batch_forward_ms,
      fs_.batch_optimized_forward_ms,
    ],
    [`batch ${fs_.batch} forward (floor)`, fs_.batch_forward_ms, py.batch_forward_ms, fs_.batch_forward_ms, null],
    [
      `batch ${fs_.batch} forward from host memory (Python: pageable .cuda())`,
      fs_.batch_forward_vs_pageable_ms,
      py.batch_forward_vs_pageable_ms,
      fs_.batch_forward_ms,
      null,
    ],
    [
      `batch ${fs_.batch} forward from host memory (Python: pinned, .cuda(non_blocking=True))`,
      fs_.batch_forward_vs_pinned_ms,
      py.batch_forward_vs_pinned_ms,
      fs_.batch_forward_ms,
      null,
    ],
    [
      `batch ${fs_.batch} optimised forward, no captures`,
      fs_.batch_optimized_forward_ms,
      null,
      fs_.batch_forward_ms,
      fs_.batch_optimized_forward_ms,
    ],
    ['one photo -> 16-channel viridis PNG', fs_.photo_png_ms, py.photo_png_ms, null, null],
    ...(fs_.folder_png_ms
      ? [[`folder of ${fs_.folder_photos} photos -> PNG grids`, fs_.folder_png_ms, py.folder_png_ms, null, null]]
      : []),
  ];
  const head = [
    'case',
    'featscope ms',
    'python ms',
    'fs/python',
    'python/fs',
    'fs/fs-floor',
    'fs/fs-opt',
    'fs/py-floor',
  ];
  // Cases that did not run (--only) are left out.
  const body = rows
    .filter(([, f, p]) => f != null || p != null)
    .map(([name, f, p, floor, opt]) => {
      const pyFloor = name.startsWith(`batch ${fs_.batch}`)
        ? py.batch_forward_ms
        : /^(one photo|folder)/.test(name)
          ? null
          : py.scripted_forward_ms;
      return [
        name,
        round(f, 2),
        round(p, 2),
        round(ratio(f, p), 3),
        round(ratio(p, f), 2),
        round(ratio(f, floor), 3),
        round(ratio(f, opt), 3),
        round(ratio(f, pyFloor), 3),
      ].map((v) => (v === null || v === undefined ? '-' : String(v)));
    });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const fmt = (r) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  body.forEach((r) => console.log(fmt(r)));
  if (fs_.folder_png_ms)
    console.log(
      'folder: featscope = the whole `featscope render DIR` process (start-up and model load included); python = the blog loop inside its process (imports and model load excluded).',
    );
  console.log(
    'floors: fs-floor = featscope exact forward with no layers (optimize: false; batch rows: same batch); ' +
      'fs-opt = featscope optimised forward with no layers; py-floor = Python torch.jit.load of the same file.',
  );
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const pkg = loadPackage();
  ensureModel(o);
  // Both sides run with the same intra-op thread count: --threads, else featscope's.
  if (o.threads) pkg.featscope.setNumThreads(o.threads);
  else o.threads = pkg.featscope.getNumThreads();
  const v = pkg.featscope.versions();
  const x1 = randomInput(3 * 224 * 224, 0);
  console.log(
    `featscope ${v.featscope} on Node ${v.node}, libtorch ${v.libtorch}, ${v.threads} intra-op thread(s), ` +
      `CUDA ${v.cuda.available ? `yes (${v.cuda.devices})` : 'no'}; ${os.cpus().length} CPUs; model ${path.relative(root, o.model) || o.model}`,
  );

  const { model, info, cases, extraModels } = await featscopeCases(o, pkg, x1);
  let pt2Model = null;
  if (o.pt2) {
    // The same captures from the AOTInductor package: its taps are compiled graph outputs.
    pt2Model = await pkg.featscope.loadModel(o.pt2, { device: 'cpu' });
    const input1 = { data: x1, shape: [1, 3, 224, 224] };
    const sums = (await pt2Model.forward(input1, { layers: LAYERS })).captures.map((c) =>
      c.data.reduce((acc, v) => acc + v, 0),
    );
    info.pt2_max_rel_sum_diff = Math.max(
      ...sums.map(
        (v, i) => Math.abs(v - info.b1_four_layers_sums[i]) / Math.max(1, Math.abs(info.b1_four_layers_sums[i])),
      ),
    );
    cases.pt2_b1_four_layers = () => pt2Model.forward(input1, { layers: LAYERS });
    cases.pt2_forward = () => pt2Model.forward(input1);
  }
  const fsRes = { ...info, runs: o.runs, rounds: o.rounds };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-bench-'));
  const folder = o.folder > 0 ? makeFolder(o.folder, tmp) : null;
  let peer = null;
  let peerError = o.peer ? null : 'skipped (--no-python)';
  if (o.peer) {
    try {
      peer = await startPeer(o, x1, info.batch, info.device, tmp, folder);
    } catch (err) {
      peerError = err.message;
    }
  }
  const py = peer ? { ...peer.info } : {};
  if (peerError) console.log(`python side: ${peerError}`);
  else
    console.log(
      `python ${py.python}, torch ${py.torch}, torchvision ${py.torchvision}, ${py.threads} thread(s), device ${py.device}${py.gpu ? ` (${py.gpu})` : ''}`,
    );
  fsRes.threads = pkg.featscope.getNumThreads();
  console.log(
    `intra-op threads: featscope ${fsRes.threads}, python ${peer ? py.threads : '-'}` +
      (peer && py.threads !== fsRes.threads
        ? '  <-- NOT EQUAL: the ratios compare different thread counts'
        : ' (equal)'),
  );

  const n1 = o.runs;
  const warm1 = Math.max(2, Math.floor(n1 / 5));
  const few = Math.max(o.rounds, Math.floor(n1 / 5));
  const plan = [
    ['scripted_forward', n1, warm1],
    ['optimized_forward', n1, warm1],
    ['b1_four_layers', n1, warm1],
    ['b1_all_leaves', n1, warm1],
    ['batch_layer1', few, 2],
    ['batch_layer1_capture', few, 2, 'batch_layer1_stop'],
    ['batch_forward', few, 2],
    ['batch_optimized_forward', few, 2],
    ['b128_staging_forward', few, 2, null],
    ['photo_png', few, 2],
  ];
  // The .pt2 rows time Python hooks (b1_four_layers) again in their own alternating rounds, and
  // the TorchScript capture beside them, so all three come from the same stretch of time.
  if (pt2Model)
    plan.push(
      ['pt2_b1_four_layers', n1, warm1, 'b1_four_layers'],
      ['pt2_torchscript_b1_four_layers', n1, warm1, null],
      ['pt2_forward', n1, warm1, null],
    );
  if (pt2Model) cases.pt2_torchscript_b1_four_layers = cases.b1_four_layers;
  // Python's batch forward from host memory (pageable .cuda(), pinned .cuda(non_blocking=True)),
  // against featscope's forward from a JS array, which starts in host memory as well. GPU only.
  if (info.device.startsWith('cuda')) {
    cases.batch_forward_vs_pageable = cases.batch_forward;
    cases.batch_forward_vs_pinned = cases.batch_forward;
    plan.push(
      ['batch_forward_vs_pageable', few, 2, 'batch_forward_pageable'],
      ['batch_forward_vs_pinned', few, 2, 'batch_forward_pinned'],
    );
  } else {
    console.log(
      "note: Python's host-to-GPU batch cases (pageable .cuda(), pinned .cuda(non_blocking=True)) need a GPU; skipped on the CPU",
    );
  }
  if (o.only === 'folder') plan.length = 0;
  if (o.only === 'staging') plan.splice(0, plan.length, ...plan.filter(([name]) => name === 'b128_staging_forward'));
  try {
    for (const [name, n, warm, peerCase = name] of plan) {
      const usePeer = peer && peerCase && (py.cases || []).includes(peerCase) ? peer : null;
      const m = await measure(peerCase || name, cases[name], usePeer, n, warm, o.rounds);
      fsRes[`${name}_ms`] = m.fs;
      fsRes[`${name}_cpu_ms`] = m.fsCpu;
      fsRes[`${name}_faults`] = m.fsFaults;
      if (usePeer) {
        py[`${name}_ms`] = m.py;
        py[`${name}_cpu_ms`] = m.pyCpu;
      }
      process.stdout.write(
        `  ${name}: featscope ${m.fs} ms (CPU ${m.fsCpu}, ${m.fsFaults} minor page faults)${usePeer ? `, python ${m.py} ms (CPU ${m.pyCpu})` : ''}\n`,
      );
    }
    if (folder) {
      // One sample per side per round (a long case), alternating as the others.
      const fsT = [];
      const pyT = [];
      const usePeer = peer && (py.cases || []).includes('folder_png');
      for (let r = 0; r < Math.min(o.rounds, 2); r++) {
        const fsRun = () => fsT.push(runCliFolder(o, info.device, folder, tmp));
        const pyRun = async () => {
          if (usePeer) pyT.push(...(await peer.run('folder_png', 1, 0)));
        };
        if (r % 2 === 0) {
          fsRun();
          await pyRun();
        } else {
          await pyRun();
          fsRun();
        }
      }
      fsRes.folder_photos = o.folder;
      fsRes.folder_png_ms = med(fsT);
      fsRes.folder_png_cpu_ms = med(runCliFolder.cpu);
      if (usePeer) py.folder_png_ms = med(pyT);
      process.stdout.write(
        `  folder_png (${o.folder} photos): featscope CLI ${fsRes.folder_png_ms} ms (CPU ${fsRes.folder_png_cpu_ms}, runs ${fsT.map((v) => Math.round(v)).join(', ')})${usePeer ? `, python loop ${py.folder_png_ms} ms` : ''}\n`,
      );
    }
  } finally {
    if (peer) peer.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  fsRes.photo_parts_ms = {};
  for (const part of ['preprocess', 'capture', 'render'])
    fsRes.photo_parts_ms[part] = med(await samples(cases[`photo_${part}`], 5, 1));
  model.dispose();
  for (const m of extraModels) m.dispose();
  if (pt2Model) {
    pt2Model.dispose();
    const r = (a, b) => (fsRes[a] && b ? round(fsRes[a] / b) : null);
    console.log(
      `\n.pt2 (AOTInductor package ${path.relative(root, o.pt2)}), batch 1 x 4 layers: ${fsRes.pt2_b1_four_layers_ms} ms; ` +
        `TorchScript path ${fsRes.pt2_torchscript_b1_four_layers_ms} ms (${r('pt2_b1_four_layers_ms', fsRes.pt2_torchscript_b1_four_layers_ms)}x); ` +
        `Python hooks ${py.pt2_b1_four_layers_ms ?? '-'} ms (${r('pt2_b1_four_layers_ms', py.pt2_b1_four_layers_ms)}x); ` +
        `package forward without taps asked ${fsRes.pt2_forward_ms} ms; same captures: max relative difference of the 4 layer sums = ${info.pt2_max_rel_sum_diff.toExponential(2)}`,
    );
  }
  console.log(
    `device ${fsRes.device}; medians of ${n1} runs (batch and photo cases: ${few}), in ${o.rounds} alternating rounds, after warm-up\n`,
  );
  printTable(fsRes, py);

  if (py.b1_four_layers_sums) {
    const worst = Math.max(
      ...fsRes.b1_four_layers_sums.map(
        (s, i) => Math.abs(s - py.b1_four_layers_sums[i]) / Math.max(1, Math.abs(py.b1_four_layers_sums[i])),
      ),
    );
    fsRes.max_rel_sum_diff = worst;
    console.log(
      `\nsame captures both sides: max relative difference of the 4 layer sums = ${worst.toExponential(2)}` +
        (worst > (fsRes.device.startsWith('cuda') ? 1e-2 : 1e-4)
          ? '  <-- MISMATCH: check the model file and input'
          : ''),
    );
  }
  if (py.b1_all_leaves_captures !== undefined && py.b1_all_leaves_captures !== fsRes.b1_all_leaves_captures) {
    console.log(
      `note: all-leaves captures differ: featscope ${fsRes.b1_all_leaves_captures}, python hooks ${py.b1_all_leaves_captures}`,
    );
  }
  console.log(
    `photo parts (featscope): ${Object.entries(fsRes.photo_parts_ms)
      .map(([k, ms]) => `${k} ${ms} ms`)
      .join(', ')}`,
  );

  const cuda = fsRes.device.startsWith('cuda');
  const t = targets(fsRes, py, cuda);
  console.log(`\ntargets (${cuda ? 'GPU, from issue 20' : 'CPU, from issue 12'}; reported, never asserted):`);
  for (const x of t) {
    console.log(
      `  ${x.met === null ? 'n/a    ' : x.met ? 'met    ' : 'NOT met'}  ${x.name}: ${x.value ?? '-'} (want ${x.want})` +
        `${x.cpu !== null && x.cpu !== undefined ? `; on CPU time ${x.cpu}` : ''}${x.note ? ` [${x.note}]` : ''}`,
    );
  }
  console.log(
    'BENCH_JSON ' +
      JSON.stringify({
        date: new Date().toISOString(),
        host: { cpus: os.cpus().length, platform: `${process.platform}-${process.arch}` },
        versions: v,
        featscope: fsRes,
        python: peerError ? { error: peerError } : py,
        targets: t,
      }),
  );
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
