/** Resampling of float maps (feature maps, heatmaps) to display size. */

export type UpsampleMode = 'nearest' | 'bilinear';

/** For each of `outSize` output pixels, the nearest of `inSize` source pixels (centres aligned). */
export function nearestIndices(inSize: number, outSize: number): Int32Array {
  const scale = inSize / outSize;
  const out = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) out[i] = Math.min(inSize - 1, Math.floor((i + 0.5) * scale));
  return out;
}

/**
 * Resize a width x height float map to outWidth x outHeight. Pixel centres are aligned
 * (align_corners=False, as F.interpolate and PIL); bilinear clamps at the borders.
 */
export function resampleMap(
  src: ArrayLike<number>,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  mode: UpsampleMode,
): Float32Array {
  const out = new Float32Array(outWidth * outHeight);
  if (mode === 'nearest') {
    const cols = nearestIndices(width, outWidth);
    const rows = nearestIndices(height, outHeight);
    for (let y = 0; y < outHeight; y++) {
      const row = rows[y] * width;
      for (let x = 0; x < outWidth; x++) out[y * outWidth + x] = src[row + cols[x]];
    }
    return out;
  }
  const sx = width / outWidth;
  const sy = height / outHeight;
  const x0s = new Int32Array(outWidth);
  const x1s = new Int32Array(outWidth);
  const fxs = new Float64Array(outWidth);
  for (let x = 0; x < outWidth; x++) {
    const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), width - 1);
    x0s[x] = Math.floor(fx);
    x1s[x] = Math.min(x0s[x] + 1, width - 1);
    fxs[x] = fx - x0s[x];
  }
  for (let y = 0; y < outHeight; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, height - 1);
    const ty = fy - y0;
    for (let x = 0; x < outWidth; x++) {
      const tx = fxs[x];
      const top = src[y0 * width + x0s[x]] * (1 - tx) + src[y0 * width + x1s[x]] * tx;
      const bottom = src[y1 * width + x0s[x]] * (1 - tx) + src[y1 * width + x1s[x]] * tx;
      out[y * outWidth + x] = top * (1 - ty) + bottom * ty;
    }
  }
  return out;
}
