/** A batch of images as one NCHW float tensor. */
export interface TensorInput {
  data: Float32Array;
  shape: [number, number, number, number] | number[];
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
  shape: number[];
  data: Float32Array;
}
