'use strict';
// Pool accounting with the garbage collector in the loop (test/native/staging.test.ts), in a child
// process run with --expose-gc. The model returns its input, so the output array JS gets is the
// pooled staging block itself: it returns to the pool when V8 collects the array, or at once on
// release(). Prints one JSON line with memoryStats() at each step.
//   node --expose-gc pool-gc.js IDENTITY_MODEL
// With FEATSCOPE_ARENA_ON_CPU=1 and `arena RESNET OUT.bin`: one forward whose output and captures
// (with stats) are copied into one arena; writes their bytes to OUT.bin for the parent to compare
// with its own forward, and prints memoryStats() around release().
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const explicit = process.env.FEATSCOPE_ADDON;
const b = explicit ? require(path.resolve(explicit)) : require('node-gyp-build')(root);
class EnvError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}
b.setErrorClass(EnvError);

const settle = () => new Promise((r) => setImmediate(r));
async function collect() {
  for (let i = 0; i < 4; i++) {
    global.gc();
    await settle();
  }
}

async function arena(file, out) {
  const model = await b.load(file, 'cpu', 'fast');
  const shape = [4, 3, 112, 112];
  const x = new Float32Array(4 * 3 * 112 * 112);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37);
  const res = { start: b.memoryStats() };
  const r = await model.forward(x, shape, ['conv1', 'layer1', 'layer1.1', 'layer4'], { stats: true }, false, false);
  await settle();
  res.held = b.memoryStats();
  const arrays = [r.output.data];
  for (const c of r.captures) arrays.push(c.data, c.stats.max, c.stats.mean);
  res.names = r.captures.map((c) => c.name);
  res.lengths = arrays.map((a) => a.length);
  res.sameBuffer = r.captures[1].data.buffer === r.captures[2].data.buffer;
  require('fs').writeFileSync(out, Buffer.concat(arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))));
  r.release();
  res.releasedLengths = arrays.map((a) => a.length);
  res.released = b.memoryStats();
  console.log(JSON.stringify(res));
}

(async () => {
  if (process.argv[2] === 'arena') return arena(process.argv[3], process.argv[4]);
  const model = await b.load(process.argv[2], 'cpu', 'fast');
  const shape = [2, 3, 224, 224];
  const x = new Float32Array(2 * 3 * 224 * 224);
  for (let i = 0; i < x.length; i++) x[i] = (i % 1000) / 1000 - 0.5;
  const run = () => model.forward(x, shape, [], {}, false, false);
  const out = { bytes: x.byteLength };
  out.start = b.memoryStats();
  let r = await run();
  await settle();
  out.held = b.memoryStats();
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff = Math.max(diff, Math.abs(r.output.data[i] - x[i]));
  out.maxDiff = diff;
  r = null;
  await collect();
  out.collected = b.memoryStats();
  r = await run();
  await settle();
  out.again = b.memoryStats();
  r.release();
  out.releasedLength = r.output.data.length;
  out.released = b.memoryStats();
  r.release(); // a second call does nothing
  r = null;
  await collect();
  out.end = b.memoryStats();
  console.log(JSON.stringify(out));
})().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
