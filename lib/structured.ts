/**
 * Structured model outputs: what a segmentation or detection model's forward returns, typed.
 * Segmentation (torchvision): `{ out: [N, K, H, W] logits, aux?: ... }`. Detection, scripted:
 * `[losses, detections]`, detections one `{ boxes: [D, 4], labels: [D], scores: [D] }` per image
 * (boxes as x1, y1, x2, y2 in input pixels). Tensors arrive as float32 data with their dtype's name.
 */
import { types } from 'util';
import { FeatscopeError } from './errors';

/** A tensor of a structured output: its data converted to float32 (`dtype` names the original). */
export interface TensorValue {
  shape: number[];
  data: Float32Array;
  /** The tensor's dtype in the model ('float32', 'int64', ...); absent for a plain tensor output. */
  dtype?: string;
}

/** A model's output: a tensor, a list or tuple (an array), a dict (an object), a number, ... */
export type OutputValue =
  TensorValue | OutputValue[] | { [key: string]: OutputValue } | number | boolean | string | null;

/** One image's detections. */
export interface Detections {
  /** [D, 4]: x1, y1, x2, y2 in input pixels. */
  boxes: TensorValue;
  /** [D]: class indices (int64 in the model). */
  labels: TensorValue;
  /** [D]: scores in [0, 1]. */
  scores: TensorValue;
  /** Mask R-CNN: [D, 1, H, W] mask probabilities in input pixels (torchvision draws them at >= 0.5). */
  masks?: TensorValue;
  /** Keypoint R-CNN: [D, K, 3] x, y (input pixels) and visibility per keypoint. */
  keypoints?: TensorValue;
  /** Keypoint R-CNN: [D, K] each keypoint's heatmap score. */
  keypoints_scores?: TensorValue;
}

export function isTensorValue(v: unknown): v is TensorValue {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    Array.isArray((v as TensorValue).shape) &&
    types.isFloat32Array((v as TensorValue).data)
  );
}

function isDetections(v: unknown): v is Detections {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  return isTensorValue(o.boxes) && isTensorValue(o.labels) && isTensorValue(o.scores);
}

/**
 * The per-image detections in a model's output (the list of {boxes, labels, scores} dicts, found at
 * any depth: torchvision's scripted (losses, detections) tuple, or the list alone), or null.
 */
export function detectionsOf(value: OutputValue | undefined): Detections[] | null {
  if (Array.isArray(value)) {
    if (value.length > 0 && value.every(isDetections)) return value as unknown as Detections[];
    for (const v of value) {
      const d = detectionsOf(v);
      if (d) return d;
    }
  }
  return null;
}

/** The indices of one image's detections scoring at least `minScore`, highest score first (ties: by index). */
export function detectionOrder(d: Detections, minScore = 0): number[] {
  return [...d.scores.data.keys()]
    .filter((i) => d.scores.data[i] >= minScore)
    .sort((a, b) => d.scores.data[b] - d.scores.data[a]);
}

/** The [N, K, H, W] class logits of a segmentation output: the `out` entry of its dict, or null. */
export function segmentationLogitsOf(value: OutputValue | undefined): TensorValue | null {
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && !isTensorValue(value)) {
    const out = (value as Record<string, OutputValue>).out;
    if (isTensorValue(out) && out.shape.length === 4) return out;
  }
  return null;
}

/** Per-pixel argmax over classes of [N, K, H, W] logits, for image `n`: [H * W] class indices. */
export function argmaxMask(logits: TensorValue, n = 0): { mask: Int32Array; height: number; width: number } {
  if (logits.shape.length !== 4)
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `segmentation logits must be [N, K, H, W], got [${logits.shape.join(', ')}]`,
    );
  const [N, K, H, W] = logits.shape;
  if (!(n >= 0 && n < N))
    throw new FeatscopeError('INVALID_ARGUMENT', `image ${n} does not exist: the batch has ${N} image(s)`);
  const mask = new Int32Array(H * W);
  const base = n * K * H * W;
  for (let p = 0; p < H * W; p++) {
    let best = 0;
    let bestV = logits.data[base + p];
    for (let k = 1; k < K; k++) {
      const v = logits.data[base + k * H * W + p];
      if (v > bestV) {
        bestV = v;
        best = k;
      }
    }
    mask[p] = best;
  }
  return { mask, height: H, width: W };
}
