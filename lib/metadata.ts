/** torchvision's ImageNet normalisation, the default when a model file stores none. */
export const IMAGENET_MEAN: readonly number[] = Object.freeze([0.485, 0.456, 0.406]);
export const IMAGENET_STD: readonly number[] = Object.freeze([0.229, 0.224, 0.225]);
/** The featscope.json carried inside model files made by scripts/export-model.py. */
export interface ModelMetadata {
  format?: string;
  architecture?: string;
  export?: 'script' | 'trace' | string;
  weights?: { source: string; trained: boolean };
  input?: { size: [number, number]; mean: [number, number, number]; std: [number, number, number] };
  classes?: string[];
  /** What the model's output is (export-model.py writes it): a classifier's logits, masks or boxes. */
  task?: 'classification' | 'segmentation' | 'detection' | string;
  /**
   * Transformers: how token outputs lie on the image. 'NLD': ViT tokens [N, classTokens + gh*gw, D]
   * (patch tokens row by row on the patch grid); 'NHWC': Swin's channel-last maps on `grids`.
   * featscope shows such outputs as [N, C, H, W] maps (class token dropped, channels = D).
   */
  tokens?: TokenLayout;
  /** Keypoint R-CNN: the names of the keypoints each detection carries, in order (COCO's 17 for people). */
  keypoints?: string[];
  torch?: string;
  torchvision?: string;
  /** Set by the CLI: the fields its --mean/--std/--size/--labels supplied or overrode. */
  commandLine?: Array<'mean' | 'std' | 'size' | 'labels'>;
}

export interface TokenLayout {
  layout: 'NLD' | 'NHWC';
  classTokens: number;
  patchSize?: number;
  /** [rows, columns] of each patch grid the outputs use (ViT: one; Swin: one per stage). */
  grids: Array<[number, number]>;
  /** 'MultiheadAttention': `<path>.weights` captures hold attention weights [N, heads, L, S]. */
  attention?: string;
}

export function parseMetadata(raw: string): ModelMetadata {
  if (!raw) return {};
  try {
    const m = JSON.parse(raw) as ModelMetadata;
    return m && typeof m === 'object' ? m : {};
  } catch {
    return {};
  }
}

/** Whether the weights are known to be trained; unknown (no metadata) counts as not known. */
export function weightsLabel(meta: ModelMetadata): { trained: boolean | undefined; text: string } {
  if (!meta.weights)
    return { trained: undefined, text: 'weights of unknown origin (no featscope metadata in the model file)' };
  return meta.weights.trained
    ? { trained: true, text: `trained weights: ${meta.weights.source}` }
    : {
        trained: false,
        text: `UNTRAINED weights (${meta.weights.source}): pictures show a random network, not learned features`,
      };
}

/** The input a model expects: its stored size and mean/std, ImageNet's when it stores none. */
export function inputNormalisation(meta: ModelMetadata): {
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
} {
  const input = meta.input;
  return {
    size: input?.size?.[0] ?? 224,
    mean: (input?.mean ?? IMAGENET_MEAN) as [number, number, number],
    std: (input?.std ?? IMAGENET_STD) as [number, number, number],
  };
}
