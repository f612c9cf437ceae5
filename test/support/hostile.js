'use strict';
// Hostile-use scenarios for test/native/workers.test.ts and inputs.test.ts, each run in a child
// process of its own so that a crash, an abort or a hang shows as that child's exit, not as a
// dead test runner. Uses the raw addon (FEATSCOPE_ADDON, else node-gyp-build's search), on the
// main thread and in worker threads alike. Prints one JSON line with what it saw.
//   node hostile.js SCENARIO MODEL [SPIN_MODEL]
const path = require('path');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

const root = path.resolve(__dirname, '..', '..');
function addon() {
  const explicit = process.env.FEATSCOPE_ADDON;
  const b = explicit ? require(path.resolve(explicit)) : require('node-gyp-build')(root);
  class EnvError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }
  b.setErrorClass(EnvError);
  return { b, EnvError };
}

function input(n, h, w, seed) {
  const data = new Float32Array(n * 3 * h * w);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 32 - 0.5;
  }
  return data;
}

// A native error raised in this environment: must be this environment's class, with its code.
async function nativeError(b, EnvError) {
  try {
    await b.load(__filename, 'cpu', 'fast'); // a JS file, not a model
    return { ok: false };
  } catch (e) {
    return { code: e.code, ownClass: e instanceof EnvError };
  }
}

const sum = (a) => a.reduce((s, v) => s + v, 0);

async function workerMain() {
  const { b, EnvError } = addon();
  const { model, mode } = workerData;
  const m = await b.load(model, 'cpu', 'fast');
  const x = input(1, 64, 64, 7);
  if (mode === 'forward') {
    const out = [];
    for (let i = 0; i < 3; i++) out.push(sum((await m.forward(x, [1, 3, 64, 64], ['layer1'], {})).captures[0].data));
    parentPort.postMessage({ sums: out, error: await nativeError(b, EnvError) });
  } else {
    // 'terminate' | 'exit': a long forward, then the main thread terminates us or we exit.
    const p = m.forward(input(16, 224, 224, 3), [16, 3, 224, 224], ['layer4'], {});
    parentPort.postMessage({ started: true });
    if (mode === 'exit') setTimeout(() => process.exit(0), 100);
    await p;
    parentPort.postMessage({ finished: true });
  }
}

function runWorker(model, mode, onMessage) {
  const w = new Worker(__filename, { workerData: { model, mode } });
  w.on('message', (msg) => onMessage && onMessage(msg, w));
  return w;
}
const exited = (w) => new Promise((resolve) => w.once('exit', resolve));

async function main() {
  const [scenario, model] = process.argv.slice(2);
  const { b, EnvError } = addon();
  const m = await b.load(model, 'cpu', 'fast');
  const x = input(1, 64, 64, 7);
  const mainSum = async () => sum((await m.forward(x, [1, 3, 64, 64], ['layer1'], {})).captures[0].data);
  const gc = global.gc || (() => {});
  const result = { scenario };
  if (scenario === 'beside') {
    // Two workers load and run their own models while the main thread runs forwards too.
    const messages = [];
    const ws = [0, 1].map(() => runWorker(model, 'forward', (msg) => messages.push(msg)));
    const wsExit = ws.map(exited);
    const mainSums = [];
    for (let i = 0; i < 4; i++) mainSums.push(await mainSum());
    result.workerExits = await Promise.all(wsExit);
    result.workers = messages;
    result.mainSums = mainSums;
  } else if (scenario === 'terminate' || scenario === 'exit') {
    // A worker's environment ends (terminate() or its own process.exit) while its forward runs.
    let started;
    const startedP = new Promise((r) => (started = r));
    const w = runWorker(model, scenario, (msg) => msg.started && started());
    const wExit = exited(w);
    const running = mainSum();
    await startedP;
    if (scenario === 'terminate') {
      await new Promise((r) => setTimeout(r, 100));
      await w.terminate();
    }
    result.workerExits = [await wExit];
    result.mainSums = [await running];
    // Another environment, started after the first one ended, works too.
    const messages = [];
    await exited(runWorker(model, 'forward', (msg) => messages.push(msg)));
    result.workers = messages;
  } else if (scenario === 'transfer' || scenario === 'resize') {
    // The caller's input is taken away while the forward runs: transferred and collected, or a
    // resizable buffer shrunk to nothing. The forward must still see the input as it was at the call.
    const n = 4 * 3 * 112 * 112;
    const shape = [4, 3, 112, 112];
    const values = input(4, 112, 112, 11);
    const reference = await m.forward(values.slice(), shape, ['layer1', 'fc'], {});
    let arg;
    if (scenario === 'transfer') arg = values.slice();
    else {
      const rab = new ArrayBuffer(n * 4, { maxByteLength: n * 4 });
      arg = new Float32Array(rab); // length-tracking
      arg.set(values);
    }
    // With UV_THREADPOOL_SIZE=1 (set by the test) a forward queued first holds the only pool
    // thread, so ours starts only after the input is gone.
    const blocker = m.forward(input(8, 224, 224, 5), [8, 3, 224, 224], ['fc'], {});
    const running = m.forward(arg, shape, ['layer1', 'fc'], {});
    if (scenario === 'transfer') structuredClone(arg.buffer, { transfer: [arg.buffer] });
    else arg.buffer.resize(0);
    result.detachedLength = arg.length;
    // Collect the old memory and hand it out again, filled with garbage.
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 30)); // let V8 free the backing store
    }
    const junk = [];
    for (let i = 0; i < 8; i++) junk.push(new Float32Array(n).fill(5.6e29));
    gc();
    await blocker;
    const got = await running;
    const diff = (a, b) => a.reduce((d, v, i) => Math.max(d, Math.abs(v - b[i])), 0);
    result.maxDiff = Math.max(
      diff(got.output.data, reference.output.data),
      diff(got.captures[0].data, reference.captures[0].data),
    );
    result.junk = junk.length;
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  // The main environment is untouched by the others' ends: forwards, its own error class.
  gc();
  await new Promise((r) => setTimeout(r, 20));
  gc();
  result.mainAfter = await mainSum();
  result.mainError = await nativeError(b, EnvError);
  console.log(JSON.stringify(result));
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exit(3);
  });
} else {
  workerMain();
}
