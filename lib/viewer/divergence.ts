/** Per-layer divergence between two forwards (two images, or one image through two models). */
import type { Capture } from '../types';

export interface LayerComparison {
  name: string;
  shape: number[];
  /** 1 - cos(a, b) over the whole layer output (0: same direction; 2: opposite). */
  cosine: number;
  /** ||b - a|| / ||a|| (Infinity when a is all zeros and b is not). */
  relativeL2: number;
}

/** Cosine distance and relative L2 between captures of the same layer; layers missing or shaped differently on one side are left out. */
export function compareCaptures(a: readonly Capture[], b: readonly Capture[]): LayerComparison[] {
  const byName = new Map(b.map((c) => [c.name, c]));
  const out: LayerComparison[] = [];
  for (const ca of a) {
    const cb = byName.get(ca.name);
    if (!cb || cb.shape.join(',') !== ca.shape.join(',')) continue;
    let dot = 0,
      na = 0,
      nb = 0,
      diff = 0;
    for (let i = 0; i < ca.data.length; i++) {
      const x = ca.data[i],
        y = cb.data[i];
      dot += x * y;
      na += x * x;
      nb += y * y;
      diff += (y - x) * (y - x);
    }
    const cosine = na > 0 && nb > 0 ? 1 - dot / Math.sqrt(na * nb) : na === nb ? 0 : 1;
    const relativeL2 = na > 0 ? Math.sqrt(diff / na) : diff > 0 ? Infinity : 0;
    out.push({ name: ca.name, shape: ca.shape, cosine, relativeL2 });
  }
  return out;
}
