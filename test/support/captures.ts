/** Synthetic captures for the rendering tests. */
import type { Capture } from '../../lib/types';

/** An NCHW capture whose value at (n, c, y, x) is `value(n, c, y, x)`. */
export function makeCapture(
  shape: number[],
  value: (n: number, c: number, y: number, x: number) => number,
  name = 'test.layer',
): Capture {
  const [N, C, H, W] = shape;
  const data = new Float32Array(N * C * H * W);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data[((n * C + c) * H + y) * W + x] = value(n, c, y, x);
  return { name, layer: name, call: 0, shape, data };
}
