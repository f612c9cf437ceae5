export { IMAGENET_MEAN, IMAGENET_STD } from './preprocess';
/** The featscope.json carried inside model files made by scripts/export-model.py. */
export interface ModelMetadata {
  format?: string;
  architecture?: string;
  export?: 'script' | 'trace' | string;
  weights?: { source: string; trained: boolean };
  input?: { size: [number, number]; mean: [number, number, number]; std: [number, number, number] };
  classes?: string[];
  torch?: string;
  torchvision?: string;
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
  if (!meta.weights) return { trained: undefined, text: 'weights of unknown origin (no featscope metadata in the model file)' };
  return meta.weights.trained
    ? { trained: true, text: `trained weights: ${meta.weights.source}` }
    : { trained: false, text: `UNTRAINED weights (${meta.weights.source}): pictures show a random network, not learned features` };
}
