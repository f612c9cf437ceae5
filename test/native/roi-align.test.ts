// featscope's torchvision::roi_align (registered where libtorch lacks torchvision's ops) against
// torchvision's own kernel on the same input: adaptive and fixed sampling, aligned or not, boxes
// partly or wholly outside the map, several scales. Hostile boxes are coded errors, not crashes.
import * as path from 'path';
import { loadModel } from '../../lib';
import { maxAbsDiff } from '../support/models';
import { readF32, runOracle, withTempDirAsync, writeF32 } from '../support/oracle';

const N = 2;
const C = 3;
const H = 12;
const W = 16;
const K = 7;

/** Features (a smooth pattern, image- and channel-dependent) with K boxes written into image 0's channel 0. */
function input(boxes: number[][]): { data: Float32Array; shape: number[] } {
  const data = new Float32Array(N * C * H * W);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) + Math.cos(i * 0.011);
  boxes.forEach((b, r) => b.forEach((v, c) => (data[r * W + c] = v)));
  return { data, shape: [N, C, H, W] };
}

const BOXES = [
  [0, 1.5, 2.25, 9.75, 8.5], // inside image 0
  [1, 0, 0, 15, 11], // all of image 1
  [1, -3, -2, 4.5, 3.25], // partly outside
  [0, 14.2, 10.1, 30, 25], // mostly outside
  [0, 5, 5, 5.2, 5.1], // smaller than a pixel
  [1, 80, 80, 96, 90], // wholly outside at every scale here: zeros
  [0, 9, 8, 2, 1], // reversed: with `aligned`, a negative size and no samples
];

test.each([
  ['adaptive sampling, not aligned, scale 1', 1, 2, 2, -1, false],
  ['adaptive sampling, aligned, scale 0.5', 0.5, 3, 4, 0, true],
  ['fixed sampling 2, aligned, scale 1', 1, 7, 7, 2, true],
  ['fixed sampling 3, not aligned, scale 0.25', 0.25, 2, 3, 3, false],
])(
  '%s: equals torchvision.ops.roi_align within 1e-5',
  async (_what, scale, ph, pw, sampling, aligned) => {
    const x = input(BOXES);
    await withTempDirAsync('roi-align-', async (dir) => {
      const file = path.join(dir, 'roi.pt');
      const inPath = path.join(dir, 'in.f32');
      const outPath = path.join(dir, 'out.f32');
      writeF32(inPath, x.data);
      runOracle('roi_align_oracle.py', [
        file,
        inPath,
        x.shape.join(','),
        String(K),
        String(scale),
        String(ph),
        String(pw),
        String(sampling),
        String(aligned),
        outPath,
      ]);
      const want = readF32(outPath);
      const model = await loadModel(file, { device: 'cpu' });
      try {
        const res = await model.forward(x);
        expect(res.output!.shape).toEqual([K, C, ph, pw]);
        expect(maxAbsDiff(res.output!.data, want)).toBeLessThanOrEqual(1e-5);
        // The box wholly outside the map pools zeros; the others do not.
        const per = C * ph * pw;
        expect(res.output!.data.subarray(5 * per, 6 * per).every((v) => v === 0)).toBe(true);
        expect(res.output!.data.subarray(0, per).some((v) => v !== 0)).toBe(true);
      } finally {
        model.dispose();
      }
    });
  },
  60_000,
);

test('hostile boxes (an image outside the batch, NaN, a box far larger than the map) are FORWARD_FAILED naming the box; the model stays usable', async () => {
  await withTempDirAsync('roi-align-hostile-', async (dir) => {
    const file = path.join(dir, 'roi.pt');
    runOracle('roi_align_oracle.py', [file, '-', '', '1', '1', '2', '2', '-1', 'false', '-']);
    const model = await loadModel(file, { device: 'cpu' });
    try {
      for (const [box, message] of [
        [[7, 0, 0, 4, 4], /roi_align: box 0 names image 7 of a batch of 2/],
        [[-1, 0, 0, 4, 4], /roi_align: box 0 names image -1 of a batch of 2/],
        [[0, NaN, 0, 4, 4], /roi_align: box 0 has a coordinate that is not finite/],
        [[0, 0, 0, 1e30, 4], /roi_align: box 0 .* is far larger than the 16 x 12 feature map/],
      ] as const) {
        await expect(model.forward(input([[...box]]))).rejects.toMatchObject({
          code: 'FORWARD_FAILED',
          message: expect.stringMatching(message),
        });
      }
      const ok = await model.forward(input([[1, 0, 0, 4, 4]]));
      expect(ok.output!.shape).toEqual([1, C, 2, 2]);
    } finally {
      model.dispose();
    }
  });
}, 60_000);
