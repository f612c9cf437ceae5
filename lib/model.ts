/**
 * The public model API: load a TorchScript model, list its layers, hook any of them and run
 * forwards off the event loop. All validation happens here, before the addon is called.
 */
import * as fs from 'fs';
import { types } from 'util';
import { binding, NativeBackwardResult, NativeModel, NativeReduceOptions } from './native';
import { FeatscopeError, checkKnownKeys, describe, invalidParameter } from './errors';
import { Capture, TensorInput } from './types';
import { ModelMetadata, parseMetadata } from './metadata';
import { deviceSelection, markCaptureOrigin } from './provenance';
import { closest } from './suggest';
import { debug } from './debug';
import { checkArchiveInflation } from './archive';
import type { OutputValue } from './structured';

export type DeviceSpec = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;

export interface LoadOptions {
  /** 'auto' (default) takes CUDA when libtorch sees a GPU, else the CPU. */
  device?: DeviceSpec;
  /** CUDA only: 'fast' (default) lets cuDNN/cuBLAS use TF32; 'exact' keeps full fp32. */
  precision?: 'fast' | 'exact';
  /**
   * CUDA only: true (default) replays a CUDA graph for a forward whose layers, options and input
   * shape were seen before (captured on the second such call); false always runs the forward
   * eagerly. A forward's own `cudaGraphs` overrides this.
   */
  cudaGraphs?: boolean;
}

export interface LayerInfo {
  /** Qualified module name, as in Python's named_modules(). */
  name: string;
  /** Class name: Conv2d, BatchNorm2d, ReLU, BasicBlock, Sequential, ... */
  type: string;
  /**
   * How many times one forward calls it (ResNet's shared ReLU: 2; an unused module: 0). For a
   * module called inside a loop, the number of places that call it: each loop iteration is a
   * call, so a forward may give more captures (`name`, `name#1`, ... in the order they ran).
   */
  calls: number;
  /** Present (true) when a call sits inside a loop, so the number of calls varies per forward. */
  inLoop?: true;
  /** With `inputSize`: the output shape of each call, for a batch of one. */
  outputShapes?: number[][];
  /**
   * With `inputSize`, for a module whose output is a tuple, list or dict of tensors (an FPN): per
   * call, each part's shape by key (`{ '0': [1, 256, 32, 32], pool: [1, 256, 4, 4] }`); capture
   * one as `<layer>:<key>`.
   */
  outputParts?: Record<string, number[]>[];
  /**
   * With `inputSize`, for a transformer's token outputs (model.metadata.tokens): 'tokens'
   * ([N, 1+N', D]) or 'channels-last' ([N, H, W, C]), and the [N, C, H, W] maps captures show.
   */
  layout?: 'tokens' | 'channels-last';
  mapShapes?: number[][];
}

/** Reductions done on the model's device before the copy to JS (CPU too). */
export interface CaptureOptions {
  /** Keep only these channels (a list), or the top k per image by spatial max or mean. */
  channels?: number[] | { top: number; by?: 'max' | 'mean' };
  /** Area-downsample maps so that max(height, width) <= maxSize. */
  maxSize?: number;
  /** Per-channel max, mean and argmax over the full maps (before channel selection). */
  stats?: boolean;
  /**
   * true (default): run a frozen, optimised copy of the hooked graph (libtorch's
   * optimize_for_inference on the CPU: conv-BN folding, fusion, MKLDNN; freeze on CUDA), built once
   * per set of layers. Captures are graph outputs, so no folding crosses them; only float rounding
   * changes (within 1e-4 of the largest value, checked against Python hooks). Where a graph cannot
   * be frozen (a module called in a loop is captured, forward writes a module attribute) the
   * exact graph runs, noted once on the debug channel (FEATSCOPE_DEBUG=1).
   * false: the exact graph, as Python hooks compute it.
   */
  optimize?: boolean;
  /**
   * CUDA only (ignored on the CPU): true (the model's default, see LoadOptions) captures the hooked
   * forward into a CUDA graph the second time these layers, options and input shape are seen, and
   * replays it from then on (static input and outputs; each replay's results are copied out before
   * the next). A forward that cannot be captured (a host sync, a CPU op, data-dependent control
   * flow) runs eagerly, noted once on the debug channel (FEATSCOPE_DEBUG=1). false: no graph.
   */
  cudaGraphs?: boolean;
}

export interface ForwardOptions extends CaptureOptions {
  /** Layers to capture in this call, in addition to those of active hooks. */
  layers?: string[];
}

export interface ForwardResult {
  /** The model's own output, or null when its forward returns something other than a tensor. */
  output: { shape: number[]; data: Float32Array } | null;
  /**
   * The output, typed, whatever its structure: a tensor, or the dict of a segmentation model
   * ({ out, aux? }), the (losses, detections) tuple of a scripted detection model, ...; tensors
   * inside carry their dtype. lib/structured.ts: detectionsOf, segmentationLogitsOf.
   */
  value: OutputValue;
  /** Captures in graph (call) order. */
  captures: Capture[];
  /** The frozen, optimised graph ran (`optimize`, the default); false: the exact graph. */
  optimized: boolean;
  /** This forward was a replay of a captured CUDA graph (`cudaGraphs`); false: it ran eagerly. */
  cudaGraph: boolean;
  /** The capture named `name` (e.g. `layer4`, `layer1.0.relu#1`); throws if absent. */
  get(name: string): Capture;
  /**
   * Frees the output and all captures now instead of when their arrays are collected: the arrays
   * are detached (length 0) and their memory (pooled pinned arenas on CUDA) goes back at once.
   * Calling it again does nothing. Also `[Symbol.dispose]`, so `using r = await model.forward(x)`
   * frees at the end of the block.
   */
  release(): void;
  [Symbol.dispose](): void;
}

/**
 * What Grad-CAM differentiates. `{ kind: 'class' }` (the default): the class logit of a classifier's
 * [N, classes] output. `{ kind: 'segmentation' }`: a segmentation model's class logit summed over
 * the pixels predicted as that class (its mask: argmax over classes == the class, from the same
 * forward), read from the output dict's entry `output` (default 'out', torchvision's
 * [N, classes, H, W] logits). Without `classes`, each image's class is the one predicted on the
 * most pixels. `{ kind: 'detection' }`: a detection model's score of each image's `box`-th
 * detection (default 0, the top-scoring one; torchvision sorts them by score), summed over the
 * batch; `classes` does not apply.
 */
export type GradCamTarget =
  { kind: 'class' } | { kind: 'segmentation'; output?: string } | { kind: 'detection'; box?: number };

export interface GradCamResult {
  /** [N, h, w] at the layer's resolution: ReLU(sum_k alpha_k A_k), not normalised. */
  shape: number[];
  data: Float32Array;
  /**
   * The target class of each image and its softmax probability (segmentation: the class's mean
   * probability over its mask, 0 when the mask is empty).
   */
  classes: number[];
  probabilities: number[];
  /** Segmentation target only: the pixels in each image's mask (0: the class is predicted nowhere, the CAM is 0). */
  maskPixels?: number[];
  /** Detection target only: each image's target box, x1, y1, x2, y2 in input pixels (`classes`: its label, `probabilities`: its score). */
  boxes?: [number, number, number, number][];
}

export interface BackwardOptions {
  /**
   * Layers whose activation and gradient norms to report (gradient flow). A transformer's token
   * layer is reported as its maps, as captures are (`layout`, `sourceShape`): the norms cover the
   * patch tokens, not the class token.
   */
  layers?: string[];
  /** Target class per image, one for all, or omitted for each image's top-1 prediction. */
  classes?: number | number[];
  /** 'score' (default): the sum of the target logits; 'cross-entropy': summed over the batch (attacks). */
  loss?: 'score' | 'cross-entropy';
  /** Also return d loss / d input, same shape as the input (FGSM, PGD, saliency). */
  inputGrad?: boolean;
  /** Also return the norm of each parameter's gradient (parameters saved with requires_grad). */
  parameterGrads?: boolean;
  /**
   * Differentiate a layer's mean activation instead of a class score: one channel's (a number for
   * every image, or one per image), or all channels' when `channel` is omitted; per image, summed
   * over the batch. The layer must be called once per forward; the model need not be a classifier
   * (`classes` and `loss` do not apply). A transformer's token layer counts as its maps (as
   * captures show it): channel = the embedding dimension, the mean over the patch tokens.
   */
  objective?: { layer: string; channel?: number | number[] };
}

export interface BackwardResult {
  output: { shape: number[]; data: Float32Array };
  classes: number[];
  loss: number;
  /** With an `objective`: its value per image (the loss is their sum). */
  objective?: Float32Array;
  inputGrad?: Float32Array;
  layers: NativeBackwardResult['layers'];
  parameters: NativeBackwardResult['parameters'];
}

export interface Parameter {
  name: string;
  kind: 'parameter' | 'buffer';
  shape: number[];
  /** A copy: changing it does not change the model. */
  data: Float32Array;
}

export interface HookHandle {
  readonly layers: readonly string[];
  remove(): void;
}

const LOAD_KEYS = ['device', 'precision', 'cudaGraphs'] as const;
const CAPTURE_KEYS = ['channels', 'maxSize', 'stats', 'optimize', 'cudaGraphs'] as const;
const FORWARD_KEYS = ['layers', ...CAPTURE_KEYS] as const;

/** Loads a TorchScript model file (scripted or traced), or an AOTInductor package (.pt2, libtorch >= 2.6; forward and captures only). Only load model files you trust: TorchScript can run arbitrary operations. */
export async function loadModel(path: string, options: LoadOptions = {}): Promise<Model> {
  if (typeof path !== 'string' || path.length === 0)
    throw invalidParameter('path', 'a path to a TorchScript .pt file', path);
  checkOptionsObject('loadModel options', options, LOAD_KEYS);
  const device = options.device ?? 'auto';
  if (typeof device !== 'string' || !/^(auto|cpu|cuda|cuda:\d+)$/.test(device)) {
    throw invalidParameter('device', "'auto', 'cpu', 'cuda' or 'cuda:N'", device);
  }
  const precision = options.precision ?? 'fast';
  if (precision !== 'fast' && precision !== 'exact')
    throw invalidParameter('precision', "'fast' or 'exact'", precision);
  if (options.cudaGraphs !== undefined && typeof options.cudaGraphs !== 'boolean')
    throw invalidParameter('cudaGraphs', 'a boolean', options.cudaGraphs);
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(path);
  } catch {
    throw new FeatscopeError(
      'MODEL_NOT_FOUND',
      `model file ${JSON.stringify(path)} does not exist; export one with \`npm run model\` or scripts/export-model.py`,
    );
  }
  if (stat.isDirectory()) {
    throw new FeatscopeError(
      'MODEL_INVALID',
      `model path ${JSON.stringify(path)} is a directory; give the TorchScript .pt file inside it`,
    );
  }
  // Before libtorch allocates what the archive's records declare.
  checkArchiveInflation(path);
  // AOTInductor packages (scripts/export-model.py --format pt2) go to the second backend.
  const b = binding();
  const native = await withStack(
    path.toLowerCase().endsWith('.pt2') ? b.loadPt2(path, device, precision) : b.load(path, device, precision),
  );
  return new Model(native, { cudaGraphs: options.cudaGraphs ?? true });
}

/** CUDA as libtorch sees it. */
export const cuda = {
  available: (): boolean => binding().cudaAvailable(),
  deviceCount: (): number => binding().cudaDeviceCount(),
};

export class Model {
  readonly #native: NativeModel;
  readonly #hooks = new Set<HookHandle>();
  readonly #layers: LayerInfo[];
  readonly #layerNames: Set<string>;
  readonly #shapeCache = new Map<string, Promise<LayerInfo[]>>();
  readonly #fallbacksNoted = new Set<string>();
  readonly #cudaGraphs: boolean;
  #disposed = false;
  readonly #pixelsNative: boolean;
  #running = 0;
  /** Path, device ('cpu', 'cuda:0'), root module type and TF32 policy. */
  readonly path: string;
  readonly device: string;
  readonly type: string;
  readonly precision: 'fast' | 'exact';
  /** 'torchscript' (.pt), or 'pt2': an AOTInductor package whose layers are the taps fixed at export. */
  readonly format: 'torchscript' | 'pt2';
  /** What scripts/export-model.py wrote into the file: architecture, weights and whether trained, mean/std, classes. */
  readonly metadata: ModelMetadata;

  /** @internal Use loadModel(). */
  constructor(native: NativeModel, defaults: { cudaGraphs?: boolean } = {}) {
    this.#native = native;
    this.#cudaGraphs = defaults.cudaGraphs ?? true;
    const info = native.info();
    this.path = info.path;
    this.device = info.device;
    this.type = info.type;
    this.precision = info.precision;
    this.format = info.format ?? 'torchscript';
    // TorchScript models take Uint8Array pixels natively; .pt2 packages get them normalised in JS.
    this.#pixelsNative = this.format === 'torchscript';
    this.metadata = parseMetadata(info.metadata);
    this.#layers = native.layers();
    this.#layerNames = new Set(this.#layers.map((l) => l.name));
  }

  /** True once dispose() was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Forwards in flight. */
  get running(): number {
    return this.#running;
  }

  /** Hooked graphs built and cached (one per set of layers, the 32 most recent). */
  get cachedGraphs(): number {
    return this.#disposed ? 0 : this.#native.info().cachedGraphs;
  }

  /**
   * Every submodule in call order, with its type and call count. With `inputSize` (a number or
   * [height, width]) one forward on zeros also gives each call's output shape.
   */
  async layers(options: { inputSize?: number | [number, number] } = {}): Promise<LayerInfo[]> {
    this.#alive();
    checkOptionsObject('layers options', options, ['inputSize']);
    if (options.inputSize === undefined) return this.#layers.map((l) => ({ ...l }));
    const [h, w] =
      typeof options.inputSize === 'number' ? [options.inputSize, options.inputSize] : (options.inputSize ?? []);
    if (!isPositiveInt(h) || !isPositiveInt(w))
      throw invalidParameter('inputSize', 'a positive integer or [height, width]', options.inputSize);
    const key = `${h}x${w}`;
    let p = this.#shapeCache.get(key);
    if (!p) {
      p = this.#layerShapes(h, w);
      this.#shapeCache.set(key, p);
      p.catch(() => this.#shapeCache.delete(key));
    }
    return (await p).map((l) => ({
      ...l,
      outputShapes: l.outputShapes?.map((s) => [...s]),
      ...(l.outputParts ? { outputParts: l.outputParts.map((p) => ({ ...p })) } : {}),
      ...(l.mapShapes ? { mapShapes: l.mapShapes.map((s) => [...s]) } : {}),
    }));
  }

  async #layerShapes(h: number, w: number): Promise<LayerInfo[]> {
    const called = this.#layers.filter((l) => l.calls > 0).map((l) => l.name);
    // One forward of all layers: the exact graph (freezing it for a single run costs more than it saves).
    const res = await this.#run({ data: new Float32Array(3 * h * w), shape: [1, 3, h, w] }, called, {
      optimize: false,
    });
    const shapes = new Map<string, number[][]>();
    const parts = new Map<string, Record<string, number[]>[]>();
    const maps = new Map<string, { layout: 'tokens' | 'channels-last'; shapes: number[][] }>();
    for (const c of res.captures) {
      const colon = c.name.indexOf(':');
      if (colon >= 0) {
        // A tuple, list or dict output: the shape of each part, by key.
        const list = parts.get(c.layer) ?? [];
        (list[c.call] ??= {})[c.name.slice(colon + 1)] = c.sourceShape ?? c.shape;
        parts.set(c.layer, list);
        continue;
      }
      const list = shapes.get(c.layer) ?? [];
      list[c.call] = c.sourceShape ?? c.shape;
      shapes.set(c.layer, list);
      if (c.layout) {
        const m = maps.get(c.layer) ?? { layout: c.layout, shapes: [] };
        m.shapes[c.call] = c.shape;
        maps.set(c.layer, m);
      }
    }
    return this.#layers.map((l) => {
      const m = maps.get(l.name);
      return {
        ...l,
        outputShapes: shapes.get(l.name) ?? [],
        ...(parts.has(l.name) ? { outputParts: parts.get(l.name) } : {}),
        ...(m ? { layout: m.layout, mapShapes: m.shapes } : {}),
      };
    });
  }

  /**
   * Hooks layers: every later forward() also returns their outputs. A name may pick one call of
   * a module called several times: `layer1.0.relu#1`. Returns a handle whose remove() unhooks.
   */
  hook(names: string | string[]): HookHandle {
    this.#alive();
    const layers = Object.freeze(this.#resolve(typeof names === 'string' ? [names] : names, 'hook'));
    const hooks = this.#hooks;
    const handle: HookHandle = {
      layers,
      remove() {
        hooks.delete(handle);
      },
    };
    hooks.add(handle);
    return handle;
  }

  /** Runs the model once and returns its output plus the captures of active hooks and `options.layers`. */
  async forward(input: TensorInput, options: ForwardOptions = {}): Promise<ForwardResult> {
    this.#alive();
    checkOptionsObject('forward options', options, FORWARD_KEYS);
    const names = new Set<string>();
    for (const h of this.#hooks) h.layers.forEach((n) => names.add(n));
    if (options.layers !== undefined)
      this.#resolve(options.layers, 'forward layers', true).forEach((n) => names.add(n));
    return this.#run(input, [...names], options);
  }

  /**
   * One forward that returns only the captures of `names` (hooks are not involved). It stops at the
   * last captured layer: what only the model's output needs is not run (TorchScript's dead-code
   * pass; ops with side effects stay), so an input the later layers would reject still gives the
   * captures. `forward()` runs the whole model.
   */
  async capture(input: TensorInput, names: string | string[], options: CaptureOptions = {}): Promise<Capture[]> {
    this.#alive();
    checkOptionsObject('capture options', options, CAPTURE_KEYS);
    const layers = this.#resolve(typeof names === 'string' ? [names] : names, 'capture');
    // Only the captures are returned, so the forward stops at the last of them: the layers after it
    // are dead code in the hooked graph and do not run (AOTInductor packages run whole).
    return (await this.#run(input, layers, options, true)).captures;
  }

  /**
   * Grad-CAM for one layer: gradients of the target class score with respect to the layer's
   * output, through the hooked graph with autograd on. `classes`: one per image, one for all,
   * or omitted for each image's top-1 prediction. `target`: a segmentation model's class over its
   * predicted mask, or a detection model's box score, instead of a classifier's class (GradCamTarget).
   */
  async gradcam(
    input: TensorInput,
    options: { layer: string; classes?: number | number[]; target?: GradCamTarget },
  ): Promise<GradCamResult> {
    this.#alive();
    if (!options || typeof options !== 'object')
      throw invalidParameter('gradcam options', 'an object with a layer', options);
    checkOptionsObject('gradcam options', options, ['layer', 'classes', 'target']);
    const target = checkGradCamTarget(options.target);
    const [layer] = this.#resolve([options.layer], 'gradcam layer');
    if (layer.includes('#')) throw invalidParameter('gradcam layer', 'a layer called once per forward (no #k)', layer);
    const classes = checkClasses(options.classes, 'gradcam classes');
    const { data, shape } = checkInput(input);
    this.#running++;
    try {
      const r = await withStack(this.#native.gradcam(data, shape, layer, classes, this.metadata.tokens, target));
      return {
        shape: r.shape,
        data: r.data,
        classes: Array.from(r.classes),
        probabilities: Array.from(r.probabilities),
        ...(r.maskPixels ? { maskPixels: Array.from(r.maskPixels) } : {}),
        ...(r.boxes
          ? {
              boxes: Array.from(
                { length: r.boxes.length / 4 },
                (_, i) => Array.from(r.boxes!.subarray(i * 4, i * 4 + 4)) as [number, number, number, number],
              ),
            }
          : {}),
      };
    } finally {
      this.#running--;
    }
  }

  /**
   * One forward and backward with autograd on, through the hooked graph: the loss's gradient
   * with respect to the input, the named layers' outputs and the parameters, as asked.
   */
  async backward(input: TensorInput, options: BackwardOptions = {}): Promise<BackwardResult> {
    this.#alive();
    checkOptionsObject('backward options', options, [
      'layers',
      'classes',
      'loss',
      'inputGrad',
      'parameterGrads',
      'objective',
    ]);
    const layers = options.layers === undefined ? [] : this.#resolve(options.layers, 'backward layers', true);
    const objective = options.objective;
    if (objective !== undefined) {
      if (objective === null || typeof objective !== 'object')
        throw invalidParameter('objective', '{ layer, channel? }', objective);
      checkOptionsObject('objective', objective, ['layer', 'channel']);
      const [layer] = this.#resolve([objective.layer], 'objective layer');
      if (layer.includes('#'))
        throw invalidParameter('objective layer', 'a layer called once per forward (no #k)', layer);
      const chs =
        objective.channel === undefined
          ? []
          : Array.isArray(objective.channel)
            ? objective.channel
            : [objective.channel];
      if ((Array.isArray(objective.channel) && chs.length === 0) || !chs.every((c) => Number.isInteger(c) && c >= 0)) {
        throw invalidParameter(
          'objective channel',
          'a channel index (an integer >= 0) or one per image',
          objective.channel,
        );
      }
    }
    // A part (`backbone:out`) is captured with its module; the native side picks the part.
    const objectiveModule = objective?.layer.split(':')[0];
    const nativeLayers = objectiveModule && !layers.includes(objectiveModule) ? [...layers, objectiveModule] : layers;
    if (layers.some((l) => l.includes('#')))
      throw invalidParameter('backward layers', 'layer names without #k (all calls are reported)', options.layers);
    const classes = checkClasses(options.classes, 'backward classes');
    const loss = options.loss ?? 'score';
    if (loss !== 'score' && loss !== 'cross-entropy')
      throw invalidParameter('loss', "'score' or 'cross-entropy'", loss);
    for (const k of ['inputGrad', 'parameterGrads'] as const) {
      if (options[k] !== undefined && typeof options[k] !== 'boolean')
        throw invalidParameter(k, 'a boolean', options[k]);
    }
    const { data, shape } = checkInput(input);
    this.#running++;
    try {
      const r = await withStack(
        this.#native.backward(data, shape, nativeLayers, {
          classes,
          loss,
          inputGrad: options.inputGrad ?? false,
          parameterGrads: options.parameterGrads ?? false,
          tokens: this.metadata.tokens,
          ...(objective
            ? {
                objectiveLayer: objective.layer,
                objectiveChannels: objective.channel === undefined ? [] : [objective.channel].flat(),
              }
            : {}),
        }),
      );
      // The objective's layer is reported only when asked for in `layers`.
      const reported = nativeLayers === layers ? r.layers : r.layers.filter((l) => layers.includes(l.layer));
      return { ...r, layers: reported, classes: Array.from(r.classes) };
    } finally {
      this.#running--;
    }
  }

  /**
   * A new Model: a deep copy of this TorchScript model with the named parameters or buffers
   * (names as in parameters()) replaced by `values` (row-major, one value per element). This model
   * is not changed; dispose() the copy when done. Not for .pt2 packages (their weights are compiled in).
   */
  async withParameters(values: Record<string, Float32Array> | Map<string, Float32Array>): Promise<Model> {
    this.#alive();
    if (this.format !== 'torchscript')
      throw new FeatscopeError(
        'INVALID_ARGUMENT',
        `withParameters needs a TorchScript model; ${this.path} is an AOTInductor package (.pt2), whose weights are compiled in`,
      );
    const entries =
      values instanceof Map
        ? [...values.entries()]
        : values && typeof values === 'object' && !Array.isArray(values)
          ? Object.entries(values)
          : undefined;
    if (!entries) throw invalidParameter('withParameters values', 'an object or Map of name -> Float32Array', values);
    for (const [name, v] of entries)
      if (!types.isFloat32Array(v)) throw invalidParameter(`withParameters value of ${name}`, 'a Float32Array', v);
    const native = await withStack(
      binding().withParameters(
        this.#native,
        entries.map(([n]) => n),
        entries.map(([, v]) => v),
      ),
    );
    return new Model(native);
  }

  /** Copies of every floating-point parameter and buffer (weights, biases, BatchNorm statistics). */
  parameters(): Parameter[] {
    this.#alive();
    return this.#native.parameters();
  }

  /**
   * Frees the model. Calls after it throw MODEL_DISPOSED. Forwards already running finish and
   * resolve normally; the native module is freed when the last of them is done.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#hooks.clear();
    this.#native.dispose();
  }

  async #run(
    input: TensorInput,
    names: string[],
    options: CaptureOptions,
    capturesOnly = false,
  ): Promise<ForwardResult> {
    const { data, shape, norm } = checkInput(input, this.#pixelsNative);
    const reduce = checkCaptureOptions(options);
    // Transformer outputs become [N, C, H, W] maps on the device, before any reduction.
    if (this.metadata.tokens) reduce.tokens = this.metadata.tokens;
    if (options.optimize !== undefined && typeof options.optimize !== 'boolean')
      throw invalidParameter('optimize', 'a boolean', options.optimize);
    const optimize = options.optimize ?? true;
    if (options.cudaGraphs !== undefined && typeof options.cudaGraphs !== 'boolean')
      throw invalidParameter('cudaGraphs', 'a boolean', options.cudaGraphs);
    const cudaGraphs = options.cudaGraphs ?? this.#cudaGraphs;
    // `layer#k` asks for one call: capture the module, keep that call; `layer:part` one part of
    // a structured output (`layer#k:part` of call k).
    const base = [...new Set(names.map((n) => n.split(':')[0].split('#')[0]))];
    const wantedCalls = new Set(names);
    const whole = (name: string) => name.split(':')[0];
    this.#running++;
    let res;
    try {
      res = await withStack(
        this.#native.forward(data, shape, base, reduce, optimize, capturesOnly, norm, cudaGraphs),
        (msg) => `input of shape [${shape.join(', ')}] does not fit model ${this.path}: ${msg}`,
      );
    } finally {
      this.#running--;
    }
    if (res.fallback && !this.#fallbacksNoted.has(res.fallback)) {
      this.#fallbacksNoted.add(res.fallback);
      debug(
        `model ${this.path}: the exact graph runs instead of the optimised one for layers [${base.join(', ')}]: ${res.fallback}`,
      );
    }
    if (res.cudaGraphFallback) {
      const note = `model ${this.path}: no CUDA graph for layers [${base.join(', ')}] at input [${shape.join(', ')}], the forward runs eagerly: ${res.cudaGraphFallback}`;
      if (!this.#fallbacksNoted.has(note)) {
        this.#fallbacksNoted.add(note);
        debug(note);
      }
    }
    for (const c of res.captures) {
      const colon = c.name.indexOf(':');
      if (colon >= 0) c.part = c.name.slice(colon + 1);
    }
    const captures: Capture[] = res.captures.filter(
      (c) => wantedCalls.has(c.name) || wantedCalls.has(c.layer) || wantedCalls.has(whole(c.name)),
    );
    const selection = deviceSelection(options.channels);
    for (const c of captures) markCaptureOrigin(c.data, { metadata: this.metadata, selection });
    const missing = names.filter(
      (n) => (n.includes('#') || n.includes(':')) && !captures.some((c) => c.name === n || whole(c.name) === n),
    );
    if (missing.length && missing[0].includes(':')) {
      const layer = whole(missing[0]);
      throw new FeatscopeError(
        'CAPTURE_NOT_FOUND',
        `${missing[0]} is not a part of ${layer}'s output; its parts: ${
          res.captures
            .filter((c) => whole(c.name) === layer)
            .map((c) => c.name)
            .join(', ') || 'none (its output is a single tensor)'
        }`,
      );
    }
    if (missing.length) {
      throw new FeatscopeError(
        'LAYER_NOT_CALLED',
        `layer call ${missing[0]} does not exist: ${missing[0].split('#')[0]} is called ${res.captures.filter((c) => c.layer === missing[0].split('#')[0]).length} time(s) per forward (calls are numbered from #0)`,
      );
    }
    const nativeRelease = res.release;
    const release = () => nativeRelease();
    return {
      output: res.output,
      value: res.outputValue ?? res.output,
      captures,
      optimized: res.optimized,
      cudaGraph: res.cudaGraph ?? false,
      release,
      [Symbol.dispose]: release,
      get(name: string): Capture {
        const c = captures.find((x) => x.name === name);
        if (!c)
          throw new FeatscopeError(
            'CAPTURE_NOT_FOUND',
            `no capture named ${JSON.stringify(name)} in this result; it has: ${captures.map((x) => x.name).join(', ') || 'none'}`,
          );
        return c;
      },
    };
  }

  /** Validates layer names (with optional #k), suggesting close ones for typos. */
  #resolve(names: unknown, what: string, allowEmpty = false): string[] {
    if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) {
      throw invalidParameter(what, 'a layer name or an array of layer names', names);
    }
    if (names.length === 0 && !allowEmpty) {
      throw new FeatscopeError(
        'INVALID_ARGUMENT',
        `Expected at least one layer name for ${what}; \`featscope layers\` lists them`,
      );
    }
    if (this.#layers.length === 0 && names.length > 0) {
      throw new FeatscopeError(
        'MODEL_FROZEN',
        `model ${this.path} has no submodules to hook: it was frozen (torch.jit.freeze or optimize_for_inference inline every module call) or defines none; export it without freezing (scripts/export-model.py)`,
      );
    }
    const seen = new Set<string>();
    for (const n of names as string[]) {
      const m = /^(.*?)(?:#(\d+))?(?::.+)?$/s.exec(n)!; // s: a name with a line break is still one name
      const layer = m[1];
      if (!this.#layerNames.has(layer)) {
        const notExported = this.#native.explainLayer?.(layer);
        if (notExported) throw new FeatscopeError('LAYER_NOT_EXPORTED', notExported);
        const near = closest(layer, [...this.#layerNames], 5);
        throw new FeatscopeError(
          'UNKNOWN_LAYER',
          `unknown layer ${JSON.stringify(n)}; closest: ${near.join(', ')} (\`featscope layers\` or model.layers() lists all)`,
        );
      }
      const info = this.#layers.find((l) => l.name === layer)!;
      if (info.calls === 0) {
        throw new FeatscopeError(
          'LAYER_NOT_CALLED',
          `layer ${layer} exists but the model's forward never calls it, so it has no output to capture`,
        );
      }
      if (seen.has(n))
        throw new FeatscopeError('DUPLICATE_LAYER', `layer ${JSON.stringify(n)} is listed twice for ${what}`);
      seen.add(n);
    }
    return [...seen];
  }

  #alive(): void {
    if (this.#disposed)
      throw new FeatscopeError('MODEL_DISPOSED', `model ${this.path} was disposed; load it again with loadModel()`);
  }
}

function checkClasses(value: unknown, what: string): number[] {
  const classes = value === undefined ? [] : typeof value === 'number' ? [value] : value;
  if (!Array.isArray(classes) || !classes.every((c) => Number.isInteger(c) && c >= 0)) {
    throw invalidParameter(what, 'a class index or an array of them (non-negative integers)', value);
  }
  return classes as number[];
}

function checkGradCamTarget(
  value: unknown,
): { kind: 'class' } | { kind: 'segmentation'; output: string } | { kind: 'detection'; box: number } | undefined {
  if (value === undefined) return undefined;
  const what = "{ kind: 'class' }, { kind: 'segmentation', output?: string } or { kind: 'detection', box?: number }";
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalidParameter('gradcam target', what, value);
  const kind = (value as { kind?: unknown }).kind;
  if (kind === 'class') {
    checkOptionsObject('gradcam target', value, ['kind']);
    return { kind };
  }
  if (kind === 'detection') {
    checkOptionsObject('gradcam target', value, ['kind', 'box']);
    const box = (value as { box?: unknown }).box ?? 0;
    if (typeof box !== 'number' || !Number.isInteger(box) || box < 0 || box > 100_000)
      throw invalidParameter('gradcam target.box', 'a detection rank from 0 (the top-scoring one)', box);
    return { kind, box };
  }
  if (kind !== 'segmentation')
    throw invalidParameter('gradcam target.kind', "'class', 'segmentation' or 'detection'", kind);
  checkOptionsObject('gradcam target', value, ['kind', 'output']);
  const output = (value as { output?: unknown }).output ?? 'out';
  if (typeof output !== 'string' || output.length === 0)
    throw invalidParameter('gradcam target.output', "the name of an output dict entry (e.g. 'out')", output);
  return { kind, output };
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

function checkOptionsObject(where: string, options: unknown, known: readonly string[]): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw invalidParameter(where, 'an object', options);
  checkKnownKeys(where, options as object, known);
}

/**
 * Validates `{ data: Float32Array, shape: [N, C, H, W] }`, or pixels `{ data: Uint8Array, shape,
 * mean, std }`. Pixels stay pixels when `pixels` is true (the addon normalises them on the model's
 * device); otherwise they are normalised here, in the same float32 steps as preprocess().
 */
export function checkInput(
  input: unknown,
  pixels: true,
): { data: Float32Array | Uint8Array; shape: number[]; norm?: { mean: number[]; std: number[] } };
export function checkInput(input: unknown, pixels?: false): { data: Float32Array; shape: number[] };
export function checkInput(
  input: unknown,
  pixels: boolean,
): { data: Float32Array | Uint8Array; shape: number[]; norm?: { mean: number[]; std: number[] } };
export function checkInput(
  input: unknown,
  pixels = false,
): { data: Float32Array | Uint8Array; shape: number[]; norm?: { mean: number[]; std: number[] } } {
  if (!input || typeof input !== 'object')
    throw new FeatscopeError(
      'INVALID_INPUT',
      `Expected { data: Float32Array, shape: [N, C, H, W] } for input but received ${describe(input)}`,
    );
  const { data, shape, mean, std } = input as TensorInput;
  const isPixels = types.isUint8Array(data);
  if (!types.isFloat32Array(data) && !isPixels) {
    const fix = Array.isArray(data) || ArrayBuffer.isView(data) ? ' (wrap it: new Float32Array(values))' : '';
    throw new FeatscopeError(
      'INVALID_INPUT',
      `Expected a Float32Array for input.data but received ${describe(data)}${fix}; or pixels: a Uint8Array with input.mean and input.std (preprocess(..., { output: 'uint8' }))`,
    );
  }
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isInteger(d))) {
    throw new FeatscopeError(
      'INVALID_INPUT',
      `Expected input.shape to be [N, C, H, W] (4 integers) but received ${Array.isArray(shape) ? `[${shape.join(', ')}]` : describe(shape)}`,
    );
  }
  if (shape[0] < 1)
    throw new FeatscopeError(
      'INVALID_INPUT',
      `input.shape [${shape.join(', ')}] has batch size ${shape[0]}; it must be at least 1`,
    );
  if (!shape.every((d) => d > 0))
    throw new FeatscopeError('INVALID_INPUT', `input.shape [${shape.join(', ')}] has a dimension that is not positive`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) {
    throw new FeatscopeError(
      'INVALID_INPUT',
      `input.data has ${data.length} values but input.shape [${shape.join(', ')}] needs ${n}`,
    );
  }
  if (!isPixels) {
    if (mean !== undefined || std !== undefined)
      throw new FeatscopeError(
        'INVALID_INPUT',
        'input.mean and input.std go with a Uint8Array of pixels (preprocess(..., { output: "uint8" })); a Float32Array input is already normalised: drop them',
      );
    return { data: data as Float32Array, shape: [...shape] };
  }
  const norm = {
    mean: checkChannelValues('mean', mean, shape[1], false),
    std: checkChannelValues('std', std, shape[1], true),
  };
  if (pixels) return { data: data as Uint8Array, shape: [...shape], norm };
  return { data: normalisePixels(data as Uint8Array, shape, norm), shape: [...shape] };
}

function checkChannelValues(what: 'mean' | 'std', v: unknown, channels: number, positive: boolean): number[] {
  if (
    !Array.isArray(v) ||
    v.length !== channels ||
    !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))
  ) {
    throw new FeatscopeError(
      'INVALID_INPUT',
      `Expected input.${what} to be ${channels} finite number(s)${positive ? ' above 0' : ''}, one per channel of a Uint8Array input, but received ${describe(v)}; preprocess(..., { output: 'uint8' }) sets it`,
    );
  }
  return [...v];
}

/** (x / 255 - mean) / std in float32, as preprocess() computes the float input. */
export function normalisePixels(
  data: Uint8Array,
  shape: number[],
  norm: { mean: number[]; std: number[] },
): Float32Array {
  const out = new Float32Array(data.length);
  const c = shape[1];
  const plane = data.length / (shape[0] * c);
  const table = new Float32Array(c * 256);
  for (let k = 0; k < c; k++) {
    const m = Math.fround(norm.mean[k]);
    const sd = Math.fround(norm.std[k]);
    for (let v = 0; v < 256; v++) table[k * 256 + v] = Math.fround(Math.fround(Math.fround(v / 255) - m) / sd);
  }
  for (let i = 0; i < data.length; i++) out[i] = table[(Math.floor(i / plane) % c) * 256 + data[i]];
  return out;
}

function checkCaptureOptions(o: CaptureOptions): NativeReduceOptions {
  const r: NativeReduceOptions = {};
  if (o.channels !== undefined) {
    if (Array.isArray(o.channels)) {
      if (o.channels.length === 0 || !o.channels.every((c) => Number.isInteger(c) && c >= 0)) {
        throw invalidParameter('channels', 'a non-empty array of channel indices (non-negative integers)', o.channels);
      }
      r.channels = o.channels;
    } else if (o.channels && typeof o.channels === 'object') {
      checkKnownKeys('channels', o.channels, ['top', 'by']);
      if (!isPositiveInt(o.channels.top)) throw invalidParameter('channels.top', 'a positive integer', o.channels.top);
      const by = o.channels.by ?? 'max';
      if (by !== 'max' && by !== 'mean') throw invalidParameter('channels.by', "'max' or 'mean'", by);
      r.top = o.channels.top;
      r.by = by;
    } else {
      throw invalidParameter('channels', 'an array of channel indices or { top: k, by }', o.channels);
    }
  }
  if (o.maxSize !== undefined) {
    if (!isPositiveInt(o.maxSize)) throw invalidParameter('maxSize', 'a positive integer', o.maxSize);
    r.maxSize = o.maxSize;
  }
  if (o.stats !== undefined) {
    if (typeof o.stats !== 'boolean') throw invalidParameter('stats', 'a boolean', o.stats);
    r.stats = o.stats;
  }
  return r;
}

/** Awaits a native promise; a rejection gets this call site's stack (sharp's is.nativeError). */
async function withStack<T>(p: Promise<T>, reword?: (message: string) => string): Promise<T> {
  const here = new Error();
  try {
    return await p;
  } catch (err) {
    if (err instanceof Error) {
      if (reword && err instanceof FeatscopeError && err.code === 'FORWARD_FAILED') err.message = reword(err.message);
      err.stack = `${err.name}: ${err.message}\n${here.stack?.split('\n').slice(1).join('\n') ?? ''}`;
    }
    throw err;
  }
}
