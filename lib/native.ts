/**
 * The raw addon, typed once. Public classes (lib/model.ts) wrap it and keep the handle private.
 * Loading: FEATSCOPE_ADDON when set; else a local build (build/Release, made by `npm rebuild` or
 * scripts/build-native.js); else the prebuild that fits the libtorch found here
 * (prebuilds/<platform>-<arch>-torch<M.m>-<abi>-<cpu|cuda>/, scripts/prebuild.js).
 */
import * as fs from 'fs';
import * as path from 'path';
import { isMainThread } from 'worker_threads';
import { FeatscopeError, describe } from './errors';
import type { Capture } from './types';
import type { OutputValue } from './structured';

/** The addon returns captures in their public form. */
export type NativeCapture = Capture;

export interface NativeForwardResult {
  output: { shape: number[]; data: Float32Array } | null;
  outputType?: string;
  /** The output when it is not a tensor: a dict, a tuple of lists of dicts, ... (lib/structured.ts). */
  outputValue?: OutputValue;
  captures: NativeCapture[];
  /** The frozen, optimised graph ran (else the exact one). */
  optimized: boolean;
  /** Why the exact graph ran although the optimised one was asked for. */
  fallback?: string;
  /** The forward was a CUDA graph replay (native/cuda_graphs.cc); absent on .pt2 packages. */
  cudaGraph?: boolean;
  /** Why this combination cannot be captured into a CUDA graph (it ran eagerly). */
  cudaGraphFallback?: string;
  /** Frees the output and captures now, detaching their arrays. */
  release(): void;
}

/** Bytes of featscope's memory pools (memoryStats()). */
export interface NativeMemoryStats {
  pooledBytes: number;
  inUseBytes: number;
  poolCapBytes: number;
  blocksReused: number;
  blocksAllocated: number;
  pinnedFallbacks: number;
  exportedBytes: number;
  exportedBuffers: number;
}

export interface NativeReduceOptions {
  channels?: number[];
  top?: number;
  by?: 'max' | 'mean';
  maxSize?: number;
  stats?: boolean;
  tokens?: import('./metadata').TokenLayout;
}

export interface NativeModel {
  layers(): { name: string; type: string; calls: number; inLoop?: true }[];
  info(): {
    path: string;
    device: string;
    type: string;
    metadata: string;
    precision: 'fast' | 'exact';
    cachedGraphs: number;
    /** Present on AOTInductor packages: 'pt2', and the --taps flag they were exported with. */
    format?: 'pt2';
    tapsFlag?: string;
  };
  forward(
    data: Float32Array | Uint8Array,
    shape: number[],
    layers: string[],
    reduce: NativeReduceOptions,
    optimize: boolean,
    /** The graph returns null for the output and does not run the layers after the last capture. */
    capturesOnly?: boolean,
    /** Uint8Array pixels only: normalised on the model's device. */
    norm?: { mean: number[]; std: number[] },
    /** CUDA graphs allowed (default true; ignored on the CPU and by .pt2 packages). */
    cudaGraphs?: boolean,
  ): Promise<NativeForwardResult>;
  gradcam(
    data: Float32Array,
    shape: number[],
    layer: string,
    classes: number[],
    tokens?: import('./metadata').TokenLayout,
    target?: { kind: 'class' } | { kind: 'segmentation'; output: string } | { kind: 'detection'; box: number },
  ): Promise<{
    shape: number[];
    data: Float32Array;
    classes: Float32Array;
    probabilities: Float32Array;
    /** Segmentation target only. */
    maskPixels?: Float32Array;
    /** Detection target only: [N * 4], each image's box. */
    boxes?: Float32Array;
  }>;
  backward(
    data: Float32Array,
    shape: number[],
    layers: string[],
    spec: {
      classes: number[];
      loss: 'score' | 'cross-entropy';
      inputGrad: boolean;
      parameterGrads: boolean;
      objectiveLayer?: string;
      objectiveChannels?: number[];
      tokens?: import('./metadata').TokenLayout;
    },
  ): Promise<NativeBackwardResult>;
  parameters(): { name: string; kind: 'parameter' | 'buffer'; shape: number[]; data: Float32Array }[];
  dispose(): void;
  /** .pt2 only: null, or why a module of the model cannot be captured (not exported as a tap). */
  explainLayer?(name: string): string | null;
}

export interface NativeBackwardResult {
  output: { shape: number[]; data: Float32Array };
  classes: Float32Array;
  loss: number;
  inputGrad?: Float32Array;
  objective?: Float32Array;
  layers: {
    name: string;
    layer: string;
    call: number;
    shape: number[];
    activationNorm: number;
    gradNorm: number;
    gradMeanAbs: number;
    /** A transformer output reported as maps: `shape` is [N, C, H, W], `sourceShape` the module's own. */
    layout?: 'tokens' | 'channels-last';
    sourceShape?: number[];
  }[];
  parameters: { name: string; shape: number[]; norm: number; gradNorm: number }[];
}

export interface NativeBinding {
  setErrorClass(cls: typeof FeatscopeError): void;
  load(path: string, device: string, precision: string): Promise<NativeModel>;
  /** A deep copy of a TorchScript model with these parameters/buffers replaced (native/params.cc). */
  withParameters(model: NativeModel, names: string[], arrays: Float32Array[]): Promise<NativeModel>;
  /** AOTInductor packages (.pt2); rejects with FORMAT_UNSUPPORTED where libtorch is older than 2.6. */
  loadPt2(path: string, device: string, precision: string): Promise<NativeModel>;
  /** True when this build has the .pt2 backend (libtorch >= 2.6). */
  pt2Supported: boolean;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  versions(): { libtorch: string; cxx11Abi: boolean; threads: number; parallel: string; jitCpuFusion: boolean };
  /** Storages handed to JS so far: without a copy, and copied (model- or caller-owned memory). */
  exportCounters(): { zeroCopy: number; copied: number };
  /** Pooled and in-use bytes of the staging/arena pool, and bytes JS holds in exported arrays. */
  memoryStats(): NativeMemoryStats;
  /** Tests: how a libtorch exception of `kind` with `message` maps to a featscope code. */
  _classifyError(
    kind: 'OutOfMemoryError' | 'Error' | 'runtime_error',
    message: string,
  ): { code: string; message: string };
  /** The codes the addon may raise (native/error_codes.h). */
  errorCodes(): string[];
  /** When native runs are still busy: end the process with `code` after `ms` if they still are. */
  armExitWatchdog(code: number, ms: number): boolean;
  setNumThreads(n: number): void;
  getNumThreads(): number;
}

/** Default and largest bound (ms) on how long process exit waits for native runs still busy. */
export const EXIT_TIMEOUT_DEFAULT_MS = 10_000;
export const EXIT_TIMEOUT_MAX_MS = 60_000;

/** FEATSCOPE_EXIT_TIMEOUT_MS, clamped to 0..60,000; the default when unset or not a number. */
export function exitTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FEATSCOPE_EXIT_TIMEOUT_MS;
  const v = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(v)) return EXIT_TIMEOUT_DEFAULT_MS;
  return Math.min(EXIT_TIMEOUT_MAX_MS, Math.max(0, v));
}

export const MAX_THREADS = 1024;

/** An intra-op thread count: an integer from 1 to MAX_THREADS, else INVALID_ARGUMENT naming `what`. */
export function checkThreadCount(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_THREADS) {
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `Expected an integer from 1 to ${MAX_THREADS} for ${what} but received ${describe(n)}; libtorch's default is the number of cores (1 thread per core is the usual choice)`,
    );
  }
  return n;
}

export const packageRoot = path.resolve(__dirname, '..');

/** What scripts/prebuild.js's selectPrebuild answers (plain JS, shared with the build and pack scripts). */
export interface PrebuildChoice {
  libtorch: {
    source: string;
    configDir: string | null;
    libDir: string;
    version: string | null;
    cxx11Abi: boolean | null;
    cuda: boolean;
  } | null;
  key: string | null;
  prebuild: string | null;
  preload: string[];
  available: string[];
  reason: string | null;
}

interface PrebuildModule {
  selectPrebuild(root: string, env?: NodeJS.ProcessEnv): PrebuildChoice;
  loadPrebuild(choice: PrebuildChoice): NativeBinding;
}

/** scripts/prebuild.js: the same libtorch search as the build (scripts/find-libtorch.js). */
export function prebuildModule(): PrebuildModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(path.join(packageRoot, 'scripts', 'prebuild.js')) as PrebuildModule;
}

/** The local build, made by `npm rebuild featscope` (the install script) or scripts/build-native.js. */
export const localBuild = path.join(packageRoot, 'build', 'Release', 'featscope.node');

let cached: NativeBinding | undefined;

/** Loads the addon: FEATSCOPE_ADDON, else the local build, else the prebuild that fits this libtorch. */
function loadAddon(): NativeBinding {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const explicit = process.env.FEATSCOPE_ADDON;
  if (explicit) {
    try {
      return require(path.resolve(explicit)) as NativeBinding;
    } catch (err) {
      throw loadFailure(err);
    }
  }
  let localError: unknown;
  if (fs.existsSync(localBuild)) {
    try {
      return require(localBuild) as NativeBinding;
    } catch (err) {
      localError = err;
    }
  }
  let choice: PrebuildChoice;
  try {
    choice = prebuildModule().selectPrebuild(packageRoot);
  } catch (err) {
    throw loadFailure(localError ?? err);
  }
  if (!choice.prebuild) {
    if (localError) throw loadFailure(localError);
    throw noPrebuild(choice);
  }
  try {
    return prebuildModule().loadPrebuild(choice);
  } catch (err) {
    throw loadFailure(localError ?? err);
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
}

/** The addon, loaded on first use so that pure-TS helpers work without it. */
export function binding(): NativeBinding {
  if (cached) return cached;
  const b = loadAddon();
  b.setErrorClass(FeatscopeError);
  if (isMainThread) {
    // process.exit joins libuv's thread pool, which would wait for a forward that never ends.
    // Bound that wait: after exitTimeoutMs() the addon ends the process with the same code.
    process.on('exit', (code) => {
      b.armExitWatchdog(typeof code === 'number' ? code : Number(process.exitCode ?? 0) || 0, exitTimeoutMs());
    });
  }
  // FEATSCOPE_THREADS: libtorch's intra-op thread count for this process, set once at load.
  const env = process.env.FEATSCOPE_THREADS;
  if (env !== undefined && env !== '') {
    const n = /^\d+$/.test(env.trim()) ? Number(env.trim()) : env;
    b.setNumThreads(checkThreadCount(n, 'FEATSCOPE_THREADS'));
  }
  cached = b;
  return b;
}

const WAYS_OUT =
  'Ways out:\n' +
  '  - build the addon for this libtorch: `npm rebuild featscope` (needs a C++17 compiler and cmake; install scripts allowed for featscope)\n' +
  '  - point featscope at a libtorch a prebuild fits: LIBTORCH, FEATSCOPE_PYTHON (README "How libtorch is found")\n' +
  '  - see what was found and why: `npx featscope doctor`';

/** No local build, and no prebuild fits the libtorch found (or none was found). */
function noPrebuild(choice: PrebuildChoice): FeatscopeError {
  return new FeatscopeError(
    'NATIVE_LOAD_FAILED',
    `featscope could not load its native addon: there is no local build, and ${choice.reason}.\n${WAYS_OUT}`,
  );
}

function loadFailure(err: unknown): FeatscopeError {
  const msg = err instanceof Error ? err.message : String(err);
  const causes: string[] = [];
  if (/lib(torch|c10|torch_cpu|torch_cuda)[^ ]*\.so/.test(msg)) {
    causes.push(
      'the libtorch it was built against is gone or moved: reinstall it, or rebuild with `npm rebuild featscope` against the libtorch you have now',
    );
  }
  if (/GLIBCXX|CXXABI|undefined symbol/.test(msg)) {
    causes.push(
      'a C++ ABI or version mismatch between the addon and the libtorch it finds (e.g. built against one PyTorch, run with another): rebuild with `npm rebuild featscope`',
    );
  }
  if (/cuda|cudart|cudnn|nvrtc/i.test(msg)) {
    causes.push(
      "a CUDA library mismatch: the addon was built against a CUDA libtorch whose CUDA runtime is not found; use the matching container or rebuild against this machine's libtorch",
    );
  }
  if (causes.length === 0)
    causes.push('rebuild with `npm rebuild featscope` and check its output for which libtorch it used');
  return new FeatscopeError(
    'NATIVE_LOAD_FAILED',
    `featscope could not load its native addon (${msg.split('\n')[0]}).\nLikely cause:\n  - ${causes.join('\n  - ')}\n${WAYS_OUT}`,
    { cause: err },
  );
}
