export { FeatscopeError } from './errors';
export type { Capture, ChannelStats, TensorInput } from './types';
export type { ModelMetadata } from './metadata';
export { IMAGENET_MEAN, IMAGENET_STD, weightsLabel } from './metadata';
export { loadModel, cuda, Model } from './model';
export type { LoadOptions, LayerInfo, CaptureOptions, ForwardOptions, ForwardResult, GradCamResult, HookHandle, DeviceSpec, BackwardOptions, BackwardResult, Parameter } from './model';
export { versions } from './versions';
