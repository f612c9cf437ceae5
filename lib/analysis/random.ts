/** Seeded random numbers: the noise of SmoothGrad and the start and jitter of feature visualisation. */

/** Uniform numbers in [0, 1) from a seeded generator (mulberry32). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal numbers from a seeded generator (mulberry32 and Box-Muller): the noise of smoothgrad. */
export function gaussianNoise(seed: number, count: number): Float32Array {
  const uniform = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = 1 - uniform(); // (0, 1]: log stays finite
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}
