/**
 * The published types, used as an application would use them: imported by package name, so the
 * package.json `exports` and dist/*.d.ts are what is checked (scripts/lint.sh runs
 * `tsc -p test/types` after the build). Each `@ts-expect-error` is a misuse the types must refuse:
 * if a type loosens, that line stops being an error and the check fails.
 */
import {
  ERROR_CODES,
  FeatscopeError,
  Model,
  channelStats,
  loadModel,
  preprocess,
  renderChannelGrid,
  type Capture,
  type ChannelGrid,
  type ChannelStats,
  type ErrorCode,
  type ForwardResult,
  type LayerInfo,
  type PreprocessResult,
} from 'featscope';

export async function uses(): Promise<void> {
  const model: Model = await loadModel('model.pt', { device: 'cuda:1', precision: 'exact' });
  // @ts-expect-error device is a closed set
  await loadModel('model.pt', { device: 'gpu' });
  // @ts-expect-error precision is 'fast' or 'exact'
  await loadModel('model.pt', { precision: 'fp16' });

  const x: PreprocessResult = await preprocess('photo.jpg', { model });
  const layers: LayerInfo[] = await model.layers();
  const names: string[] = layers.filter((l) => l.calls > 0).map((l) => l.name);

  const r: ForwardResult = await model.forward(x, { layers: names, stats: true, channels: { top: 8, by: 'max' } });
  const c: Capture = r.get('layer1');
  const data: Float32Array = c.data;
  const shape: number[] = c.shape;
  void [data, shape];
  // @ts-expect-error channels.by is 'max' or 'mean'
  await model.forward(x, { channels: { top: 8, by: 'median' } });
  // @ts-expect-error layers is a list of names
  await model.forward(x, { layers: 'layer1' });

  const grid: ChannelGrid = await renderChannelGrid(c, { channels: { top: 4, by: 'mean' }, frame: false });
  // @ts-expect-error frame is a boolean
  await renderChannelGrid(c, { frame: 'no' });
  const perChannel: ChannelStats[] = channelStats(c, 0, [0, 1]);
  const peak: number = perChannel[0].max;
  void [grid, peak];

  const caps: Capture[] = await model.capture(x, ['layer1', 'layer4']);
  void caps;
  const cam = await model.gradcam(x, { layer: 'layer4', classes: [3] });
  // @ts-expect-error gradcam needs a layer
  await model.gradcam(x, { classes: 3 });
  const classes: number[] = cam.classes;
  void classes;
  const seg = await model.gradcam(x, { layer: 'classifier.1', target: { kind: 'segmentation', output: 'out' } });
  const pixels: number[] | undefined = seg.maskPixels;
  void pixels;
  const det = await model.gradcam(x, { layer: 'backbone.body.layer3', target: { kind: 'detection', box: 1 } });
  const boxes: [number, number, number, number][] | undefined = det.boxes;
  void boxes;
  // @ts-expect-error a target kind is 'class', 'segmentation' or 'detection'
  await model.gradcam(x, { layer: 'layer4', target: { kind: 'boxes' } });
  // @ts-expect-error a detection target has no output entry
  await model.gradcam(x, { layer: 'layer4', target: { kind: 'detection', output: 'out' } });

  try {
    model.dispose();
  } catch (err) {
    if (err instanceof FeatscopeError) {
      const code: ErrorCode = err.code;
      // @ts-expect-error codes are a closed list
      const wrong: ErrorCode = 'NOT_A_CODE';
      void [code, wrong];
    }
  }
  const all: readonly ErrorCode[] = ERROR_CODES;
  void all;
  // @ts-expect-error the library's codes only: USAGE is the command line's (NoInfer keeps C the default)
  void new FeatscopeError('USAGE', 'x');
  void new FeatscopeError('INVALID_ARGUMENT', 'x');
}

// The second entry point, and the end of deep imports: anything else under dist/ is not exported.
export type BareRender = typeof import('featscope/dist/render');
// One renderChannelGrid: the second entry point's is the first's.
export const sameGrid: BareRender['renderChannelGrid'] = renderChannelGrid;
// @ts-expect-error deep imports are not part of the API (package.json exports)
export type Deep = typeof import('featscope/dist/model');
