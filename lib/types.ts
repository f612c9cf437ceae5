/**
 * A batch of images as one NCHW float tensor; or as NCHW pixels (a Uint8Array, 0..255, from
 * preprocess(..., { output: 'uint8' })) with the per-channel `mean` and `std` the model applies on
 * its device: (x / 255 - mean) / std.
 */
export interface TensorInput {
  data: Float32Array | Uint8Array;
  shape: [number, number, number, number] | number[];
  /** Uint8Array input only: one value per channel. */
  mean?: readonly number[];
  /** Uint8Array input only: one value per channel, each above 0. */
  std?: readonly number[];
}

/** Per-channel statistics computed on the model's device, over each channel's full map. */
export interface CaptureStats {
  /** [N, C] row-major: max of each channel's map. */
  max: Float32Array;
  /** [N, C]: mean of each channel's map. */
  mean: Float32Array;
  /** [N, C]: flat index (y * W + x) of each channel's maximum. */
  argmax: Int32Array;
  shape: number[];
}

/**
 * The output of one call of one submodule during a forward pass.
 * `name` is the layer's qualified name for its first call and `name#k` for call k (0-based), e.g.
 * `layer1.0.relu` and `layer1.0.relu#1`.
 */
export interface Capture {
  name: string;
  layer: string;
  call: number;
  /**
   * A part of a module output that is a tuple, list or dict of tensors (an FPN's OrderedDict):
   * its key or position, e.g. `pool` or `0` (`a:b` when nested); the name is then
   * `<layer>:<part>` (`backbone.fpn:pool`, `layer#1:0`).
   */
  part?: string;
  shape: number[];
  data: Float32Array;
  /** When channels were selected (explicit list or top-k): [N, k] original channel indices. */
  channels?: Int32Array;
  /** With `stats: true`. */
  stats?: CaptureStats;
  /**
   * A transformer output shown as maps (model.metadata.tokens): 'tokens' ([N, 1+N', D] with the
   * class token dropped and the patch tokens on the patch grid) or 'channels-last' ([N, H, W, C]);
   * `shape` is then [N, C, H, W] and `sourceShape` the module's own output shape.
   */
  layout?: 'tokens' | 'channels-last';
  sourceShape?: number[];
}
