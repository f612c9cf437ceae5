/**
 * The raw addon, typed once. Public classes (lib/model.ts) wrap it and keep the handle private.
 * Loading goes through node-gyp-build: a local build (build/Release) first, then prebuilds/<platform>-<arch>/.
 */
import * as path from 'path';
import { isMainThread } from 'worker_threads';
import { FeatscopeError, describe } from './errors';
import type { Capture } from './types';

/** The addon returns captures in their public form. */
export type NativeCapture = Capture;

export interface NativeForwardResult {
  output: { shape: number[]; data: Float32Array } | null;
  outputType?: string;
  captures: NativeCapture[];
  /** The frozen, optimised graph ran (else the exact one). */
  optimized: boolean;
  /** Why the exact graph ran although the optimised one was asked for. */
  fallback?: string;
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
  ): Promise<NativeForwardResult>;
  gradcam(
    data: Float32Array,
    shape: number[],
    layer: string,
    classes: number[],
  ): Promise<{
    shape: number[];
    data: Float32Array;
    classes: Float32Array;
    probabilities: Float32Array;
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
  }[];
  parameters: { name: string; shape: number[]; norm: number; gradNorm: number }[];
}

export interface NativeBinding {
  setErrorClass(cls: typeof FeatscopeError): void;
  load(path: string, device: string, precision: string): Promise<NativeModel>;
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

let cached: NativeBinding | undefined;

/** The addon, loaded on first use so that pure-TS helpers work without it. */
export function binding(): NativeBinding {
  if (cached) return cached;
  let b: NativeBinding;
  try {
    // FEATSCOPE_ADDON: an explicit addon file (the sanitizer build); else node-gyp-build's search.
    const explicit = process.env.FEATSCOPE_ADDON;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    b = (explicit ? require(path.resolve(explicit)) : require('node-gyp-build')(packageRoot)) as NativeBinding;
  } catch (err) {
    throw loadFailure(err);
  }
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

function loadFailure(err: unknown): FeatscopeError {
  const msg = err instanceof Error ? err.message : String(err);
  const causes: string[] = [];
  if (/No native build was found|Cannot find module/i.test(msg)) {
    causes.push(
      'the addon has not been built here: run `npm run build:native` (or `npm rebuild featscope`); it needs libtorch, see README "How libtorch is found"',
    );
  }
  if (/lib(torch|c10|torch_cpu|torch_cuda)[^ ]*\.so/.test(msg)) {
    causes.push(
      'the libtorch it was built against is gone or moved: reinstall it, or rebuild with `npm run build:native` against the libtorch you have now',
    );
  }
  if (/GLIBCXX|CXXABI|undefined symbol/.test(msg)) {
    causes.push(
      'a C++ ABI or version mismatch between the addon and the libtorch it finds (e.g. built against one PyTorch, run with another): rebuild with `npm run build:native`',
    );
  }
  if (/cuda|cudart|cudnn|nvrtc/i.test(msg)) {
    causes.push(
      "a CUDA library mismatch: the addon was built against a CUDA libtorch whose CUDA runtime is not found; use the matching container or rebuild against this machine's libtorch",
    );
  }
  if (causes.length === 0)
    causes.push('rebuild with `npm run build:native` and check its output for which libtorch it used');
  return new FeatscopeError(
    'NATIVE_LOAD_FAILED',
    `featscope could not load its native addon (${msg.split('\n')[0]}).\nLikely cause:\n  - ${causes.join('\n  - ')}`,
    { cause: err },
  );
}
