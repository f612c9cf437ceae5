/**
 * Concepts over a folder: non-negative matrix factorisation of one layer's activations (rows:
 * image x position, columns: channels) into k concepts, A ≈ U W with W (k x C) the concepts'
 * channel profiles and U (rows x k) how much of each concept is at each position (Deep Feature
 * Factorization, Collins et al. 2018; pytorch-grad-cam's DFF, here over many images).
 *
 * The fit is scikit-learn's NMF: init 'nndsvda' (NNDSVD of a randomized SVD, zeros filled with
 * the mean of A), then coordinate descent (sklearn's solver 'cd', i.e. HALS) for a fixed number
 * of iterations. The transform (U with W fixed) is an exact non-negative least-squares solution
 * per position (Lawson-Hanson active set on the k x k normal equations), so a position's weights
 * depend only on its own activations and W: a sharded run gives what one run gives.
 */
import sharp from 'sharp';
import { types } from 'util';
import { FeatscopeError, checkKnownKeys, invalidParameter } from '../errors';
import type { Model } from '../model';
import type { ImageSource, PreprocessedImage } from '../preprocess';
import type { Capture } from '../types';
import { type RgbCanvas, blit, encodePng, fillRect } from '../render/canvas';
import { applyColormap } from '../render/colormaps';
import { resampleMap } from '../render/resample';
import { drawText } from '../render/text';
import { parseColor } from '../render/color';
import { type FailedImage, type ImageBatch, type ImageDecoder, imageBatches, normalisationOf } from './common';
import { withColourBar } from '../render/colour-bar';
import { BANNER_HEIGHT, drawBanner } from '../render/frame';
import { INK, fitText } from '../render/svg';
import { mulberry32 } from './random';

// ---------------------------------------------------------------------------------------------
// Linear algebra on row-major Float32/Float64 arrays.

/** Standard normal numbers from mulberry32 (Box-Muller). */
function gaussian(seed: number, count: number): Float64Array {
  const u = mulberry32(seed);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const t = 2 * Math.PI * u();
    out[i] = r * Math.cos(t);
    if (i + 1 < count) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** out (n x l) = A (n x C) · M (C x l). */
function mulA(A: Float32Array, n: number, C: number, M: Float64Array, l: number): Float64Array {
  const out = new Float64Array(n * l);
  for (let i = 0; i < n; i++) {
    const o = i * l;
    const r = i * C;
    for (let c = 0; c < C; c++) {
      const a = A[r + c];
      if (a === 0) continue;
      const m = c * l;
      for (let t = 0; t < l; t++) out[o + t] += a * M[m + t];
    }
  }
  return out;
}

/** out (C x l) = Aᵀ (C x n) · M (n x l). */
function mulAt(A: Float32Array, n: number, C: number, M: Float64Array, l: number): Float64Array {
  const out = new Float64Array(C * l);
  for (let i = 0; i < n; i++) {
    const r = i * C;
    const m = i * l;
    for (let c = 0; c < C; c++) {
      const a = A[r + c];
      if (a === 0) continue;
      const o = c * l;
      for (let t = 0; t < l; t++) out[o + t] += a * M[m + t];
    }
  }
  return out;
}

/** Orthonormalise the l columns of Q (rows x l) in place (modified Gram-Schmidt, twice). */
function orthonormalise(Q: Float64Array, rows: number, l: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let j = 0; j < l; j++) {
      for (let p = 0; p < j; p++) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += Q[i * l + j] * Q[i * l + p];
        for (let i = 0; i < rows; i++) Q[i * l + j] -= d * Q[i * l + p];
      }
      let s = 0;
      for (let i = 0; i < rows; i++) s += Q[i * l + j] ** 2;
      s = Math.sqrt(s);
      for (let i = 0; i < rows; i++) Q[i * l + j] = s > 0 ? Q[i * l + j] / s : 0;
    }
  }
}

/** Eigen-decomposition of a symmetric m x m matrix (cyclic Jacobi): values descending, vectors as columns. */
function symmetricEigen(S: Float64Array, m: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(S);
  const v = new Float64Array(m * m);
  for (let i = 0; i < m; i++) v[i * m + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < m; j++) {
        total += a[i * m + j] ** 2;
        if (i !== j) off += a[i * m + j] ** 2;
      }
    if (off <= 1e-30 * total || off === 0) break;
    for (let p = 0; p < m - 1; p++)
      for (let q = p + 1; q < m; q++) {
        const apq = a[p * m + q];
        if (apq === 0) continue;
        const theta = (a[q * m + q] - a[p * m + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < m; k++) {
          const akp = a[k * m + p];
          const akq = a[k * m + q];
          a[k * m + p] = c * akp - s * akq;
          a[k * m + q] = s * akp + c * akq;
        }
        for (let k = 0; k < m; k++) {
          const apk = a[p * m + k];
          const aqk = a[q * m + k];
          a[p * m + k] = c * apk - s * aqk;
          a[q * m + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < m; k++) {
          const vkp = v[k * m + p];
          const vkq = v[k * m + q];
          v[k * m + p] = c * vkp - s * vkq;
          v[k * m + q] = s * vkp + c * vkq;
        }
      }
  }
  const order = Array.from({ length: m }, (_, i) => i).sort((x, y) => a[y * m + y] - a[x * m + x]);
  const values = Float64Array.from(order, (i) => a[i * m + i]);
  const vectors = new Float64Array(m * m);
  order.forEach((src, dst) => {
    for (let k = 0; k < m; k++) vectors[k * m + dst] = v[k * m + src];
  });
  return { values, vectors };
}

/**
 * The top k singular triplets of A (n x C) by a randomized SVD (Halko et al., as scikit-learn's
 * randomized_svd: k + 10 columns, 7 power iterations), seeded: U (n x k), S (k), V (k x C).
 */
export function randomizedSvd(
  A: Float32Array,
  n: number,
  C: number,
  k: number,
  seed: number,
): { U: Float64Array; S: Float64Array; V: Float64Array } {
  const l = Math.min(k + 10, n, C);
  let Q = mulA(A, n, C, gaussian(seed, C * l), l);
  orthonormalise(Q, n, l);
  const powerIterations = k < 0.1 * Math.min(n, C) ? 7 : 4;
  for (let it = 0; it < powerIterations; it++) {
    const Z = mulAt(A, n, C, Q, l);
    orthonormalise(Z, C, l);
    Q = mulA(A, n, C, Z, l);
    orthonormalise(Q, n, l);
  }
  // B = Qᵀ A (l x C), kept as Bᵀ (C x l); B Bᵀ = Y diag(S²) Yᵀ.
  const Bt = mulAt(A, n, C, Q, l);
  const BBt = new Float64Array(l * l);
  for (let c = 0; c < C; c++)
    for (let p = 0; p < l; p++) for (let q = 0; q < l; q++) BBt[p * l + q] += Bt[c * l + p] * Bt[c * l + q];
  const { values, vectors } = symmetricEigen(BBt, l);
  const kk = Math.min(k, l);
  const S = new Float64Array(k);
  const U = new Float64Array(n * k);
  const V = new Float64Array(k * C);
  for (let j = 0; j < kk; j++) {
    const s = Math.sqrt(Math.max(0, values[j]));
    S[j] = s;
    for (let i = 0; i < n; i++) {
      let d = 0;
      for (let p = 0; p < l; p++) d += Q[i * l + p] * vectors[p * l + j];
      U[i * k + j] = d;
    }
    if (s > 0)
      for (let c = 0; c < C; c++) {
        let d = 0;
        for (let p = 0; p < l; p++) d += vectors[p * l + j] * Bt[c * l + p];
        V[j * C + c] = d / s;
      }
  }
  return { U, S, V };
}

/** scikit-learn's NNDSVD initialisation with 'nndsvda': U (n x k), Wt (C x k). */
function nndsvda(
  A: Float32Array,
  n: number,
  C: number,
  k: number,
  seed: number,
): { U: Float64Array; Wt: Float64Array } {
  const svd = randomizedSvd(A, n, C, k, seed);
  const U = new Float64Array(n * k);
  const Wt = new Float64Array(C * k);
  const norm = (x: Float64Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0));
  for (let j = 0; j < k; j++) {
    const x = Float64Array.from({ length: n }, (_, i) => svd.U[i * k + j]);
    const y = Float64Array.from({ length: C }, (_, c) => svd.V[j * C + c]);
    if (j === 0) {
      const s = Math.sqrt(svd.S[0]);
      for (let i = 0; i < n; i++) U[i * k] = s * Math.abs(x[i]);
      for (let c = 0; c < C; c++) Wt[c * k] = s * Math.abs(y[c]);
      continue;
    }
    const xp = x.map((v) => Math.max(v, 0));
    const yp = y.map((v) => Math.max(v, 0));
    const xn = x.map((v) => Math.abs(Math.min(v, 0)));
    const yn = y.map((v) => Math.abs(Math.min(v, 0)));
    const mp = norm(xp) * norm(yp);
    const mn = norm(xn) * norm(yn);
    const [u, v, nu, nv, sigma] = mp > mn ? [xp, yp, norm(xp), norm(yp), mp] : [xn, yn, norm(xn), norm(yn), mn];
    const lbd = Math.sqrt(svd.S[j] * sigma);
    for (let i = 0; i < n; i++) U[i * k + j] = nu > 0 ? (lbd * u[i]) / nu : 0;
    for (let c = 0; c < C; c++) Wt[c * k + j] = nv > 0 ? (lbd * v[c]) / nv : 0;
  }
  let mean = 0;
  for (let i = 0; i < A.length; i++) mean += A[i];
  mean /= A.length;
  for (let i = 0; i < U.length; i++) if (U[i] < 1e-6) U[i] = mean;
  for (let i = 0; i < Wt.length; i++) if (Wt[i] < 1e-6) Wt[i] = mean;
  return { U, Wt };
}

/** One sweep of scikit-learn's _update_cdnmf_fast over X (rows x k) given HHt (k x k) and XHt (rows x k). */
function cdSweep(X: Float64Array, rows: number, k: number, HHt: Float64Array, XHt: Float64Array): void {
  for (let t = 0; t < k; t++) {
    const hess = HHt[t * k + t];
    if (hess === 0) continue;
    for (let i = 0; i < rows; i++) {
      const o = i * k;
      let grad = -XHt[o + t];
      for (let r = 0; r < k; r++) grad += HHt[t * k + r] * X[o + r];
      X[o + t] = Math.max(X[o + t] - grad / hess, 0);
    }
  }
}

/** Gram matrix Mᵀ M (k x k) of M (rows x k). */
function gram(M: Float64Array, rows: number, k: number): Float64Array {
  const G = new Float64Array(k * k);
  for (let i = 0; i < rows; i++) {
    const o = i * k;
    for (let p = 0; p < k; p++) {
      const v = M[o + p];
      if (v === 0) continue;
      for (let q = 0; q < k; q++) G[p * k + q] += v * M[o + q];
    }
  }
  return G;
}

export interface NmfOptions {
  /** Coordinate-descent iterations (each updates U, then W); default 200. */
  iterations?: number;
  /** Seed of the randomized SVD in the init; default 0. */
  seed?: number;
}

/**
 * Non-negative matrix factorisation A ≈ U W of A (n x C, non-negative, row-major) into k
 * components: scikit-learn's NMF(init='nndsvda', solver='cd', tol=0) for `iterations`
 * iterations. Returns U (n x k) and W (k x C), row-major Float64.
 */
export function nmf(
  A: Float32Array,
  n: number,
  C: number,
  k: number,
  options: NmfOptions = {},
): { U: Float64Array; W: Float64Array } {
  const iterations = options.iterations ?? 200;
  const seed = options.seed ?? 0;
  if (A.length !== n * C) throw invalidParameter('nmf matrix', `${n} x ${C} values`, A.length);
  const { U, Wt } = nndsvda(A, n, C, k, seed);
  for (let it = 0; it < iterations; it++) {
    // U given W: HHt = W Wᵀ, XHt = A Wᵀ.
    cdSweep(U, n, k, gram(Wt, C, k), mulA(A, n, C, Wt, k));
    // W given U: the transposed problem Aᵀ ≈ Wᵀ Uᵀ.
    cdSweep(Wt, C, k, gram(U, n, k), mulAt(A, n, C, U, k));
  }
  const W = new Float64Array(k * C);
  for (let c = 0; c < C; c++) for (let t = 0; t < k; t++) W[t * C + c] = Wt[c * k + t];
  return { U, W };
}

/**
 * Non-negative least squares for every row of A with W fixed: U (n x k) minimising ‖A − U W‖
 * with U ≥ 0, each row solved exactly (Lawson-Hanson active set on the normal equations).
 */
export function nnlsRows(A: Float32Array, n: number, C: number, W: ArrayLike<number>, k: number): Float64Array {
  const G = new Float64Array(k * k);
  for (let p = 0; p < k; p++)
    for (let q = 0; q < k; q++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += W[p * C + c] * W[q * C + c];
      G[p * k + q] = s;
    }
  const Wt = new Float64Array(C * k);
  for (let t = 0; t < k; t++) for (let c = 0; c < C; c++) Wt[c * k + t] = W[t * C + c];
  const B = mulA(A, n, C, Wt, k);
  const U = new Float64Array(n * k);
  const b = new Float64Array(k);
  const u = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < k; t++) b[t] = B[i * k + t];
    nnlsGram(G, b, k, u);
    U.set(u, i * k);
  }
  return U;
}

/** Solve G[P,P] x = b[P] by Cholesky; false when G[P,P] is not positive definite. */
function solvePassive(G: Float64Array, b: Float64Array, k: number, P: number[], x: Float64Array): boolean {
  const m = P.length;
  const L = new Float64Array(m * m);
  for (let i = 0; i < m; i++)
    for (let j = 0; j <= i; j++) {
      let s = G[P[i] * k + P[j]];
      for (let r = 0; r < j; r++) s -= L[i * m + r] * L[j * m + r];
      if (i === j) {
        if (!(s > 1e-12 * Math.max(1e-300, G[P[i] * k + P[i]]))) return false;
        L[i * m + i] = Math.sqrt(s);
      } else L[i * m + j] = s / L[j * m + j];
    }
  const y = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = b[P[i]];
    for (let r = 0; r < i; r++) s -= L[i * m + r] * y[r];
    y[i] = s / L[i * m + i];
  }
  x.fill(0);
  for (let i = m - 1; i >= 0; i--) {
    let s = y[i];
    for (let r = i + 1; r < m; r++) s -= L[r * m + i] * x[P[r]];
    x[P[i]] = s / L[i * m + i];
  }
  return true;
}

/** min ½uᵀGu − bᵀu, u ≥ 0 (Lawson-Hanson on the normal equations), into u. */
function nnlsGram(G: Float64Array, b: Float64Array, k: number, u: Float64Array): void {
  u.fill(0);
  const passive = new Uint8Array(k);
  const s = new Float64Array(k);
  const w = new Float64Array(k);
  const scale = Math.max(...Array.from({ length: k }, (_, t) => Math.abs(b[t])), 1e-300);
  const tol = 1e-12 * scale;
  for (let outer = 0; outer < 3 * k + 3; outer++) {
    for (let t = 0; t < k; t++) {
      let g = b[t];
      for (let r = 0; r < k; r++) g -= G[t * k + r] * u[r];
      w[t] = g;
    }
    let best = -1;
    for (let t = 0; t < k; t++)
      if (!passive[t] && G[t * k + t] > 0 && w[t] > tol && (best < 0 || w[t] > w[best])) best = t;
    if (best < 0) return;
    passive[best] = 1;
    for (let inner = 0; inner < 3 * k + 3; inner++) {
      const P = [];
      for (let t = 0; t < k; t++) if (passive[t]) P.push(t);
      if (!solvePassive(G, b, k, P, s)) {
        // A concept dependent on the others: leave it out.
        passive[best] = 0;
        return;
      }
      if (P.every((t) => s[t] > 0)) {
        u.set(s);
        break;
      }
      let alpha = Infinity;
      for (const t of P) if (s[t] <= 0) alpha = Math.min(alpha, u[t] / (u[t] - s[t]));
      for (let t = 0; t < k; t++) u[t] += alpha * (s[t] - u[t]);
      for (const t of P)
        if (u[t] <= 1e-15 * scale) {
          u[t] = 0;
          passive[t] = 0;
        }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Concepts of a model's layer.

export interface ConceptMaps {
  layer: string;
  /** [N, k, H, W]: concept t's weight at each position of image n. */
  shape: [number, number, number, number];
  data: Float32Array;
  /** Per image: ‖A − U W‖ / ‖A‖ over its positions (0 when its activations are all zero). */
  relativeError: Float64Array;
  /** Per image: ‖A‖² over its positions (with relativeError, the squared error for sums over images). */
  normSquared: Float64Array;
}

export interface Concepts {
  layer: string;
  k: number;
  /** Channels of the layer. */
  channels: number;
  /** k x C, row-major: concept t's weight on each channel. */
  W: Float32Array;
  /** How W was made: the fit's sample, or given. */
  fit: ConceptFit | { given: string };
  /** The concept weights U of a capture of the layer (W fixed), as maps like the capture's. */
  transform(capture: Pick<Capture, 'shape' | 'data'> & Partial<Pick<Capture, 'name'>>): ConceptMaps;
}

export interface ConceptFit {
  seed: number;
  iterations: number;
  /** Images read for the fit (a seeded sample of at most fitImages of them), and failed among them. */
  images: number;
  failed: FailedImage[];
  /** Rows (image x position) factorised: all of the sample's, or a seeded sample of at most fitRows. */
  rows: number;
  /** ‖A − U W‖ / ‖A‖ on the rows fitted. */
  relativeError: number;
  /** Share of the captured values below zero that were set to 0 (0 for a layer that ends in a ReLU). */
  negativeShare: number;
}

export interface FitConceptsOptions {
  layer: string;
  k: number;
  seed?: number;
  iterations?: number;
  batch?: number;
  resize?: 'squash' | 'crop';
  /** At most this many images are read for the fit: a seeded sample of them past it (default 256). */
  fitImages?: number;
  /** At most this many rows (image x position) are factorised: a seeded sample past it (default 20000). */
  fitRows?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Sorted seeded sample of `m` of 0..n-1 (all when m >= n): a partial Fisher-Yates shuffle. */
export function seededSample(n: number, m: number, seed: number): number[] {
  if (m >= n) return Array.from({ length: n }, (_, i) => i);
  const rand = mulberry32(seed);
  const idx = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(rand() * (n - i));
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return Array.from(idx.subarray(0, m)).sort((a, b) => a - b);
}

/** Rows (image x position) of a capture [N, C, H, W], clamped at 0, into rows x C. */
function captureRows(data: Float32Array, N: number, C: number, HW: number, out: Float32Array, at: number): number {
  let negative = 0;
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const src = (n * C + c) * HW;
      for (let p = 0; p < HW; p++) {
        const v = data[src + p];
        if (v < 0) negative++;
        out[(at + n * HW + p) * C + c] = v > 0 ? v : 0;
      }
    }
  return negative;
}

function checkFeatureMaps(capture: Pick<Capture, 'shape' | 'data'>, layer: string, C: number): number[] {
  const s = capture?.shape;
  if (!Array.isArray(s) || s.length !== 4 || !types.isFloat32Array(capture.data))
    throw new FeatscopeError(
      'NOT_FEATURE_MAPS',
      `concepts need a capture of feature maps [N, C, H, W] of ${layer}, not shape ${JSON.stringify(s)}`,
    );
  if (s[1] !== C)
    throw new FeatscopeError(
      'SHAPE_MISMATCH',
      `the concepts were fitted on ${C} channels of ${layer}; this capture has ${s[1]} (shape ${JSON.stringify(s)}): capture ${layer} of the same model`,
    );
  return s;
}

/** Concepts from a given W (k x C), e.g. read from an earlier run's concepts-W.npy. */
export function conceptsFromWeights(
  W: ArrayLike<number>,
  shape: readonly number[],
  layer: string,
  given = 'given',
): Concepts {
  if (shape.length !== 2 || !(shape[0] >= 1) || !(shape[1] >= 1) || W.length !== shape[0] * shape[1])
    throw invalidParameter('concept weights W', 'a k x C matrix (2-D)', shape);
  const w = Float32Array.from(W);
  if (!w.every((v) => Number.isFinite(v) && v >= 0))
    throw invalidParameter('concept weights W', 'finite non-negative values', 'negative or non-finite values');
  return makeConcepts(layer, shape[0], shape[1], w, { given });
}

function makeConcepts(layer: string, k: number, C: number, W: Float32Array, fit: Concepts['fit']): Concepts {
  return {
    layer,
    k,
    channels: C,
    W,
    fit,
    transform(capture) {
      const [N, , H, Wd] = checkFeatureMaps(capture, layer, C);
      const HW = H * Wd;
      const A = new Float32Array(N * HW * C);
      captureRows(capture.data, N, C, HW, A, 0);
      const U = nnlsRows(A, N * HW, C, W, k);
      const data = new Float32Array(N * k * HW);
      const relativeError = new Float64Array(N);
      const normSquared = new Float64Array(N);
      for (let n = 0; n < N; n++) {
        let err = 0;
        let total = 0;
        for (let p = 0; p < HW; p++) {
          const row = n * HW + p;
          for (let t = 0; t < k; t++) data[(n * k + t) * HW + p] = U[row * k + t];
          for (let c = 0; c < C; c++) {
            let r = 0;
            for (let t = 0; t < k; t++) r += U[row * k + t] * W[t * C + c];
            const a = A[row * C + c];
            err += (a - r) ** 2;
            total += a * a;
          }
        }
        relativeError[n] = total > 0 ? Math.sqrt(err / total) : 0;
        normSquared[n] = total;
      }
      return { layer, shape: [N, k, H, Wd], data, relativeError, normSquared };
    },
  };
}

/** Preprocessed batches of `files` that keep each image's 8-bit RGB (for drawing), the next read ahead. */
export function rgbBatches(
  files: readonly ImageSource[],
  batch: number,
  options: { resize: 'squash' | 'crop'; size: number; mean: readonly number[]; std: readonly number[] },
  decode?: ImageDecoder,
): AsyncGenerator<ImageBatch> {
  return imageBatches(
    files,
    batch,
    {
      resize: options.resize,
      size: options.size,
      mean: [...options.mean] as [number, number, number],
      std: [...options.std] as [number, number, number],
    },
    decode,
  );
}

/**
 * Fit k concepts of `layer` over `images`: W (k x C) by NMF of the post-ReLU activations of a
 * seeded sample of at most `fitImages` images, at most `fitRows` rows of them (memory: fitRows x C
 * float32 for A, plus (rows + C) x k float64). The result's transform() gives U with W fixed.
 */
export async function fitConcepts(
  model: Model,
  images: readonly ImageSource[],
  options: FitConceptsOptions,
): Promise<Concepts> {
  return fitConceptsWith(model, images, options);
}

/**
 * fitConcepts, with each image preprocessed by `decode` when given: the viewer decodes through its
 * own slots and cache (its preprocessing must be the model's, squash-resized: the fit's default).
 */
export async function fitConceptsWith(
  model: Model,
  images: readonly ImageSource[],
  options: FitConceptsOptions,
  decode?: ImageDecoder,
): Promise<Concepts> {
  if (!options || typeof options !== 'object') throw invalidParameter('fitConcepts options', 'an object', options);
  checkKnownKeys('fitConcepts', options, [
    'layer',
    'k',
    'seed',
    'iterations',
    'batch',
    'resize',
    'fitImages',
    'fitRows',
    'onProgress',
  ]);
  if (!Array.isArray(images) || images.length === 0)
    throw invalidParameter('images', 'a non-empty array of image paths or Buffers', images);
  if (typeof options.layer !== 'string' || !options.layer)
    throw invalidParameter('layer', 'a layer name', options.layer);
  const int = (v: unknown, name: string, lo: number, hi: number, d: number) => {
    const x = v ?? d;
    if (!Number.isInteger(x) || (x as number) < lo || (x as number) > hi)
      throw invalidParameter(name, `an integer from ${lo} to ${hi}`, v);
    return x as number;
  };
  const k = int(options.k, 'k', 1, 256, 8);
  const seed = int(options.seed, 'seed', 0, 2 ** 32 - 1, 0);
  const iterations = int(options.iterations, 'iterations', 1, 100000, 200);
  const batch = int(options.batch, 'batch', 1, 1024, 16);
  const fitImages = int(options.fitImages, 'fitImages', 1, 1e9, 256);
  const fitRows = int(options.fitRows, 'fitRows', 1, 1e8, 20000);
  const resize = options.resize ?? 'squash';
  if (resize !== 'squash' && resize !== 'crop') throw invalidParameter('resize', "'squash' or 'crop'", resize);
  const norm = normalisationOf(model);
  const chosen = seededSample(images.length, fitImages, seed);
  const files = chosen.map((i) => images[i]);
  let A: Float32Array | undefined;
  let C = 0;
  let HW = 0;
  let keep: number[] | undefined;
  let rowsRead = 0;
  let negative = 0;
  let values = 0;
  const failed: FailedImage[] = [];
  for await (const b of rgbBatches(files, batch, { resize, size: norm.size, mean: norm.mean, std: norm.std }, decode)) {
    failed.push(...b.failed);
    if (b.files.length > 0) {
      const [cap] = await model.capture({ data: b.data, shape: b.shape }, [options.layer]);
      if (!cap) throw new FeatscopeError('CAPTURE_NOT_FOUND', `${options.layer} gave no capture`);
      const s = cap.shape;
      if (s.length !== 4)
        throw new FeatscopeError(
          'NOT_FEATURE_MAPS',
          `concepts factorise feature maps [N, C, H, W]; ${options.layer} gives shape ${JSON.stringify(s)}: pick a convolutional layer (featscope layers)`,
        );
      if (!A) {
        C = s[1];
        HW = s[2] * s[3];
        const total = files.length * HW;
        if (total > fitRows) keep = seededSample(total, fitRows, seed ^ 0x9e3779b9);
        A = new Float32Array(Math.min(total, fitRows) * C);
      }
      const rows = new Float32Array(s[0] * HW * C);
      negative += captureRows(cap.data, s[0], C, HW, rows, 0);
      values += rows.length;
      // Global row index of the sample: its place in `files` times HW plus the position.
      b.files.forEach((f, j) => {
        for (let p = 0; p < HW; p++) {
          const g = f * HW + p;
          if (keep) {
            // keep is sorted: binary search for g.
            let lo = 0;
            let hi = keep.length;
            while (lo < hi) {
              const mid = (lo + hi) >> 1;
              if (keep[mid] < g) lo = mid + 1;
              else hi = mid;
            }
            if (lo >= keep.length || keep[lo] !== g) continue;
          }
          A!.set(rows.subarray((j * HW + p) * C, (j * HW + p + 1) * C), rowsRead * C);
          rowsRead++;
        }
      });
    }
    options.onProgress?.(Math.min(b.start + batch, files.length), files.length);
  }
  if (!A || rowsRead === 0)
    throw new FeatscopeError(
      'NO_INPUTS',
      `none of the ${files.length} images chosen for the fit could be read; first error: ${failed[0]?.message}`,
    );
  const a = A.subarray(0, rowsRead * C);
  if (k > Math.min(rowsRead, C))
    throw invalidParameter('k', `at most ${Math.min(rowsRead, C)} (the rows and channels fitted)`, k);
  const { U, W } = nmf(a, rowsRead, C, k, { iterations, seed });
  let err = 0;
  let total = 0;
  for (let i = 0; i < rowsRead; i++)
    for (let c = 0; c < C; c++) {
      let r = 0;
      for (let t = 0; t < k; t++) r += U[i * k + t] * W[t * C + c];
      const v = a[i * C + c];
      err += (v - r) ** 2;
      total += v * v;
    }
  return makeConcepts(options.layer, k, C, Float32Array.from(W), {
    seed,
    iterations,
    images: files.length,
    failed,
    rows: rowsRead,
    relativeError: total > 0 ? Math.sqrt(err / total) : 0,
    negativeShare: values > 0 ? negative / values : 0,
  });
}

// ---------------------------------------------------------------------------------------------
// Pictures.

/** One colour per concept: Tableau 10, then evenly spaced hues. */
export function conceptColour(t: number): [number, number, number] {
  const tab = [
    '#1f77b4',
    '#ff7f0e',
    '#2ca02c',
    '#d62728',
    '#9467bd',
    '#8c564b',
    '#e377c2',
    '#7f7f7f',
    '#bcbd22',
    '#17becf',
  ];
  if (t < tab.length) return parseColor(tab[t], 'concept colour');
  const h = ((t * 0.618033988749895) % 1) * 6;
  const f = (n: number) => {
    const x = (n + h) % 6;
    return Math.round(255 * (0.25 + 0.6 * Math.max(0, Math.min(1, Math.abs(x - 3) - 1))));
  };
  return [f(0), f(4), f(2)];
}

/** ‖W_t‖ per concept: U_t · ‖W_t‖ is concept t's share of a position's activation vector, in activation units. */
export function conceptNorms(W: Float32Array, k: number, C: number): Float64Array {
  return Float64Array.from({ length: k }, (_, t) => {
    let s = 0;
    for (let c = 0; c < C; c++) s += W[t * C + c] ** 2;
    return Math.sqrt(s);
  });
}

/**
 * One image's concepts as pytorch-grad-cam's DFF pictures: each position in the colour of its
 * dominant concept (largest U_t·‖W_t‖), opaque in proportion to that contribution (the image's
 * largest is opaque), over the photo; a legend with each concept's share of the image.
 */
export async function renderConceptImage(
  model: Model,
  photo: Pick<PreprocessedImage, 'rgb' | 'width' | 'height'>,
  maps: { k: number; h: number; w: number; data: Float32Array },
  norms: Float64Array,
  title: string,
): Promise<{ png: Buffer; width: number; height: number; max: number }> {
  const { k, h, w } = maps;
  const HW = h * w;
  if (photo.width < 320) {
    const size = 320;
    const rgb = await sharp(photo.rgb, { raw: { width: photo.width, height: photo.height, channels: 3 } })
      .resize(size, Math.round((photo.height * size) / photo.width), { kernel: 'cubic' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    photo = { rgb: rgb.data, width: rgb.info.width, height: rgb.info.height };
  }
  const contrib = Array.from({ length: k }, (_, t) => {
    const m = new Float32Array(HW);
    for (let p = 0; p < HW; p++) m[p] = maps.data[t * HW + p] * norms[t];
    return resampleMap(m, w, h, photo.width, photo.height, 'bilinear');
  });
  const share = Array.from({ length: k }, (_, t) => {
    let s = 0;
    for (let p = 0; p < HW; p++) s += maps.data[t * HW + p] * norms[t];
    return s;
  });
  const total = share.reduce((x, y) => x + y, 0);
  let max = 0;
  for (const m of contrib) for (const v of m) if (v > max) max = v;
  const px = photo.width * photo.height;
  const overlay: RgbCanvas = { data: Buffer.alloc(px * 3), width: photo.width, height: photo.height };
  const colours = Array.from({ length: k }, (_, t) => conceptColour(t));
  for (let i = 0; i < px; i++) {
    let best = 0;
    for (let t = 1; t < k; t++) if (contrib[t][i] > contrib[best][i]) best = t;
    const alpha = max > 0 ? Math.max(0, Math.min(1, contrib[best][i] / max)) * 0.75 : 0;
    for (let ch = 0; ch < 3; ch++)
      overlay.data[i * 3 + ch] = Math.round((1 - alpha) * photo.rgb[i * 3 + ch] + alpha * colours[best][ch]);
  }
  const legendRows = k;
  const width = Math.max(380, photo.width + 20);
  const titleH = 28;
  const rowH = 17;
  const height = BANNER_HEIGHT + titleH + photo.height + 10 + legendRows * rowH + 26;
  const canvas: RgbCanvas = { data: Buffer.alloc(width * height * 3, 255), width, height };
  await drawBanner(canvas, model.metadata);
  const ink = parseColor(INK, 'ink');
  await drawText(canvas, [{ text: fitText(title, 14, width - 16), x: 8, y: BANNER_HEIGHT + 19 }], {
    size: 14,
    colour: ink,
    bold: true,
    anchor: 'start',
  });
  const top = BANNER_HEIGHT + titleH;
  blit(canvas, overlay, Math.floor((width - photo.width) / 2), top);
  const legendTop = top + photo.height + 10;
  const lines: Array<{ text: string; x: number; y: number }> = [];
  for (let t = 0; t < k; t++) {
    const y = legendTop + t * rowH;
    fillRect(canvas, 8, y + 2, 12, 12, colours[t]);
    const pct = total > 0 ? (100 * share[t]) / total : 0;
    lines.push({ text: fitText(`concept ${t}: ${pct.toFixed(1)}% of the image`, 12, width - 40), x: 26, y: y + 13 });
  }
  await drawText(canvas, lines, { size: 12, colour: ink, anchor: 'start' });
  await drawText(
    canvas,
    [
      {
        text: fitText(`colour: dominant concept · opacity: u·‖w‖, 0 to ${max.toPrecision(3)}`, 10, width - 16),
        x: 8,
        y: legendTop + legendRows * rowH + 14,
      },
    ],
    { size: 10, colour: parseColor('#5f6368', 'muted'), anchor: 'start' },
  );
  return { png: await encodePng(canvas), width, height, max };
}

/**
 * Concept t's top images: its contribution U_t·‖W_t‖ over each, as a heatmap on one scale
 * (0 to the largest over these images, colour bar in activation units).
 */
export async function renderConceptTop(
  model: Model,
  t: number,
  tops: Array<{
    photo: Pick<PreprocessedImage, 'rgb' | 'width' | 'height'>;
    map: Float32Array;
    h: number;
    w: number;
    label: string;
  }>,
  norm: number,
  layer: string,
): Promise<{ png: Buffer; width: number; height: number; max: number }> {
  const tile = 160;
  const gap = 8;
  let max = 0;
  for (const e of tops) for (const v of e.map) if (v * norm > max) max = v * norm;
  const cols = Math.max(1, tops.length);
  const gridW = cols * tile + (cols + 1) * gap;
  const labelH = 18;
  const grid: RgbCanvas = {
    data: Buffer.alloc(gridW * (tile + labelH + gap) * 3, 255),
    width: gridW,
    height: tile + labelH + gap,
  };
  const ink = parseColor(INK, 'ink');
  const labels: Array<{ text: string; x: number; y: number }> = [];
  for (const [i, e] of tops.entries()) {
    const photo = await sharp(e.photo.rgb, { raw: { width: e.photo.width, height: e.photo.height, channels: 3 } })
      .resize(tile, tile, { fit: 'fill' })
      .raw()
      .toBuffer();
    const m = Float32Array.from(e.map, (v) => v * norm);
    const up = resampleMap(m, e.w, e.h, tile, tile, 'bilinear');
    const heat = applyColormap(up, 0, max > 0 ? max : 1, 'turbo');
    const data = Buffer.alloc(tile * tile * 3);
    for (let j = 0; j < data.length; j++) data[j] = Math.round(0.5 * photo[j] + 0.5 * heat[j]);
    const x = gap + i * (tile + gap);
    blit(grid, { data, width: tile, height: tile }, x, 0);
    labels.push({ text: fitText(e.label, 10, tile), x: x + tile / 2, y: tile + 13 });
  }
  await drawText(grid, labels, { size: 10, colour: ink });
  const barred = await withColourBar(
    grid,
    'turbo',
    0,
    max,
    `concept ${t}'s contribution u·‖w‖ at ${layer} (activation units)`,
  );
  const titleH = 28;
  const width = barred.canvas.width;
  const height = BANNER_HEIGHT + titleH + barred.canvas.height;
  const canvas: RgbCanvas = { data: Buffer.alloc(width * height * 3, 255), width, height };
  await drawBanner(canvas, model.metadata);
  await drawText(
    canvas,
    [
      {
        text: fitText(`Concept ${t} of ${layer}: its top ${tops.length} images`, 14, width - 16),
        x: 8,
        y: BANNER_HEIGHT + 19,
      },
    ],
    { size: 14, colour: ink, bold: true, anchor: 'start' },
  );
  blit(canvas, barred.canvas, 0, BANNER_HEIGHT + titleH);
  return { png: await encodePng(canvas), width, height, max };
}
