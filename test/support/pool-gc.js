'use strict';
// Pool accounting with the garbage collector in the loop (test/native/staging.test.ts), in a child
// process run with --expose-gc. The model returns its input, so the output array JS gets is the
// pooled staging block itself: it returns to the pool when V8 collects the array, or at once on
// release(). Prints one JSON line with memoryStats() at each step.
//   node --expose-gc pool-gc.js IDENTITY_MODEL
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

(async () => {
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
