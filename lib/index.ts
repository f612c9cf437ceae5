export { FeatscopeError, ERROR_CODES } from './errors';
export type { ErrorCode } from './errors';
export type { Capture, CaptureStats, TensorInput } from './types';
export type { ModelMetadata } from './metadata';
export { weightsLabel } from './metadata';
export { preprocess, IMAGENET_MEAN, IMAGENET_STD, DEFAULT_MAX_INPUT_PIXELS } from './preprocess';
export type {
  ImageSource,
  PreprocessOptions,
  PreprocessResult,
  PreprocessedImage,
  PixelPreprocessResult,
} from './preprocess';
export * from './render';
export { loadModel, cuda, Model } from './model';
export type {
  LoadOptions,
  LayerInfo,
  CaptureOptions,
  ForwardOptions,
  ForwardResult,
  GradCamResult,
  GradCamTarget,
  HookHandle,
  DeviceSpec,
  BackwardOptions,
  BackwardResult,
  Parameter,
} from './model';
export { versions } from './versions';
export { memoryStats } from './memory';
export type { MemoryStats } from './memory';
export { setNumThreads, getNumThreads } from './threads';
export { visualize, layerStatistics, renderImageLayers } from './visualize';
export type {
  VisualizeOptions,
  VisualizeResult,
  VisualizedLayer,
  LayerStatistics,
  ChannelColumns,
  TopChannel,
  RenderedLayer,
} from './visualize';
export { showGrid, showOverlay, showPng } from './notebook';
export { decodeNpy, encodeNpy, writeNpy } from './npy';
export type { NpyArray } from './npy';
export { writeReport } from './report';
export type { ReportData, ReportImage, ReportLayer } from './report';
export * from './analysis';
export * from './structured';
