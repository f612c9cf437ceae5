/** Resampling of float maps (feature maps, heatmaps) to display size. */

export type UpsampleMode = 'nearest' | 'bilinear';

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
  const sx = width / outWidth;
  const sy = height / outHeight;
  if (mode === 'nearest') {
    const cols = new Int32Array(outWidth);
    for (let x = 0; x < outWidth; x++) cols[x] = Math.min(width - 1, Math.floor((x + 0.5) * sx));
    for (let y = 0; y < outHeight; y++) {
      const row = Math.min(height - 1, Math.floor((y + 0.5) * sy)) * width;
      for (let x = 0; x < outWidth; x++) out[y * outWidth + x] = src[row + cols[x]];
    }
    return out;
  }
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
