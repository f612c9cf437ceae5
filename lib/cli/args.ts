/** Argument parsing on node's util.parseArgs, with usage errors as FeatscopeError (code USAGE, lib/cli/codes.ts). */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs, type ParseArgsConfig } from 'util';
import { FeatscopeError } from '../errors';
import type { Model } from '../model';
import { MAX_THREADS, packageRoot } from '../native';
import { setNumThreads } from '../threads';
import { COLORMAP_NAMES, type ChannelSelection, type ColormapName } from '../render';
import { REPORT_ASSETS, type ReportAssets } from '../report/shell';
import { cliError, type CliCode, type Code } from './codes';

export type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Codes that mean "fix the command line": exit status 2. PORT_IN_USE and LISTEN_FAILED are the
 * viewer's (`featscope view --port/--host`).
 */
export const USAGE_CODES: ReadonlySet<string> = new Set<Code | 'PORT_IN_USE' | 'LISTEN_FAILED'>([
  'USAGE',
  'INVALID_ARGUMENT',
  'UNKNOWN_OPTION',
  'UNKNOWN_LAYER',
  'DUPLICATE_LAYER',
  'LAYER_NOT_CALLED',
  'NOT_FEATURE_MAPS',
  'NO_INPUTS',
  'MODEL_NOT_FOUND',
  'MODEL_INVALID',
  'MODEL_FROZEN',
  'PORT_IN_USE',
  'LISTEN_FAILED',
  'LAYER_NOT_EXPORTED',
  'FORMAT_UNSUPPORTED',
  'NOT_SUPPORTED_PT2',
]);

export function usage(message: string, command?: string): FeatscopeError<CliCode> {
  return cliError('USAGE', `${message}${command ? ` (see \`featscope ${command} --help\`)` : ''}`);
}

/** An option's parsed value: a switch is a boolean, a value option a string, `multiple` a list. */
type OptionValue<T> = T extends { type: 'boolean' }
  ? T extends { multiple: true }
    ? boolean[]
    : boolean
  : T extends { multiple: true }
    ? string[]
    : string;

/** The values of `O`'s options (each may be absent) and of the common ones. */
export type Values<O extends Options> = { [K in keyof O]?: OptionValue<O[K]> } & { help?: boolean; threads?: string };

export interface Parsed<O extends Options = Options> {
  values: Values<O>;
  positionals: string[];
}

/**
 * Every command's options plus the common ones: -h/--help, and --threads N, which sets libtorch's
 * intra-op thread count for this process (setNumThreads) as soon as the command line is read.
 */
export function parse<const O extends Options>(
  command: string,
  argv: string[],
  options: O,
  allowPositionals: boolean,
): Parsed<O> {
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({
      args: argv,
      options: { help: { type: 'boolean', short: 'h' }, threads: { type: 'string' }, ...options },
      allowPositionals,
      strict: true,
      // parseArgs's own result type is as wide as `Options`; Values<O> narrows it by the options
      // given, which is what parseArgs does at run time (strict: unknown options throw).
    }) as unknown as Parsed<O>;
  } catch (err) {
    const msg = err instanceof Error ? err.message.replace(/\. To specify a positional argument.*$/s, '') : String(err);
    throw usage(msg, command);
  }
  const threads = parsed.values.threads;
  if (threads !== undefined && !parsed.values.help)
    setNumThreads(parsePositiveInt(threads, '--threads', 1, MAX_THREADS, command));
  return parsed;
}

/** --model, then FEATSCOPE_MODEL, then models/resnet18.pt here or in the package (made by set-up). */
export function resolveModel(value: string | undefined): string {
  if (value) return value;
  if (process.env.FEATSCOPE_MODEL) return process.env.FEATSCOPE_MODEL;
  const local = path.join('models', 'resnet18.pt');
  if (fs.existsSync(local)) return local;
  const packaged = path.join(packageRoot, 'models', 'resnet18.pt');
  if (fs.existsSync(packaged)) return packaged;
  throw new FeatscopeError(
    'MODEL_NOT_FOUND',
    `no model given and the default models/resnet18.pt does not exist; run \`bash scripts/setup.sh\` (or \`npm run model\`) once, or pass --model FILE.pt / set FEATSCOPE_MODEL`,
  );
}

export function parseDevice(value: string | undefined, command: string): 'auto' | 'cpu' | 'cuda' | `cuda:${number}` {
  const v = value ?? 'auto';
  if (!/^(auto|cpu|cuda|cuda:\d+)$/.test(v))
    throw usage(`--device must be auto, cpu, cuda or cuda:N, not ${JSON.stringify(v)}`, command);
  return v as 'auto';
}

/**
 * A comma list, the one reader of every list option (--layers, --class, --devices, --mean, ...):
 * items trimmed, and empty items dropped (`a, b,,c` is [a, b, c]) unless `keepEmpty`, where an
 * option that counts its items refuses `a,,b`.
 */
export function parseList(value: string, { keepEmpty = false } = {}): string[] {
  const items = value.split(',').map((s) => s.trim());
  return keepEmpty ? items : items.filter(Boolean);
}

export function parseLayers(value: string | undefined, command: string): string[] {
  const layers = parseList(value ?? 'layer1.0.conv1');
  if (layers.length === 0)
    throw usage('--layers needs at least one layer name (`featscope layers` lists them)', command);
  return layers;
}

/** `16` (first 16), `top:16` or `top:16:mean` (ranked), `3,7,9` (these channels). */
export function parseChannels(value: string | undefined, command: string): ChannelSelection {
  const v = (value ?? '16').trim();
  let m: RegExpExecArray | null;
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    if (n < 1) throw usage('--channels count must be at least 1', command);
    return n;
  }
  if ((m = /^top:(\d+)(?::(max|mean))?$/.exec(v))) {
    const k = Number(m[1]);
    if (k < 1) throw usage('--channels top:k needs k of at least 1', command);
    return { top: k, by: (m[2] as 'max' | 'mean' | undefined) ?? 'max' };
  }
  if (/^\d+(,\d+)+,?$/.test(v)) return parseList(v).map(Number);
  throw usage(
    `--channels takes a count (16), top:k[:max|mean] (top:16) or a list (3,7,9), not ${JSON.stringify(v)}`,
    command,
  );
}

/** --report-assets: inline (default, one self-contained file) or linked (pictures in report_files/ beside it). */
export function parseReportAssets(value: string | undefined, command: string): ReportAssets {
  const v = value ?? 'inline';
  if (!(REPORT_ASSETS as readonly string[]).includes(v))
    throw usage(`--report-assets must be one of ${REPORT_ASSETS.join(', ')}, not ${JSON.stringify(v)}`, command);
  return v as ReportAssets;
}

export function parseColormap(
  value: string | undefined,
  command: string,
  option = '--colormap',
  fallback: ColormapName = 'viridis',
): ColormapName {
  const v = value ?? fallback;
  if (!(COLORMAP_NAMES as readonly string[]).includes(v))
    throw usage(`${option} must be one of ${COLORMAP_NAMES.join(', ')}, not ${JSON.stringify(v)}`, command);
  return v as ColormapName;
}

export function parsePositiveInt(
  value: string | undefined,
  option: string,
  fallback: number,
  max: number,
  command: string,
): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw usage(`${option} must be an integer from 1 to ${max}, not ${JSON.stringify(value)}`, command);
  }
  return Number(value);
}

export function parseResize(value: string | undefined, command: string): 'squash' | 'crop' {
  const v = value ?? 'squash';
  if (v !== 'squash' && v !== 'crop')
    throw usage(
      `--resize must be squash (Resize((224, 224))) or crop (Resize(256) + CenterCrop(224)), not ${JSON.stringify(v)}`,
      command,
    );
  return v;
}

/** The --channels text for manifests and reports: 16, top:16:max, 3,7,9. */
export function describeChannels(sel: ChannelSelection): string {
  if (typeof sel === 'number') return String(sel);
  if (Array.isArray(sel)) return sel.join(',');
  const top = sel as { top: number; by?: string };
  return `top:${top.top}:${top.by ?? 'max'}`;
}

/**
 * Layer names checked before any work (typos get suggestions), with their types and output shapes
 * for one image; `#k` beyond the module's calls is refused here too.
 */
export async function checkLayers(model: Model, layers: string[], size: number): Promise<CheckedLayer[]> {
  model.hook(layers).remove(); // validates the names: UNKNOWN_LAYER with suggestions, DUPLICATE_LAYER, ...
  const info = await model.layers({ inputSize: size });
  return layers.map((name) => {
    const [whole, part] = splitPart(name);
    const [base, call] = whole.split('#');
    const l = info.find((x) => x.name === base)!;
    const k = Number(call ?? 0);
    const parts = l.outputParts?.[k];
    if (part !== undefined) {
      const shape = parts?.[part];
      if (!shape)
        throw new FeatscopeError(
          'CAPTURE_NOT_FOUND',
          `${name} is not a part of ${whole}'s output; its parts: ${
            parts
              ? Object.keys(parts)
                  .map((p) => `${whole}:${p}`)
                  .join(', ')
              : 'none (it returns one tensor)'
          }`,
        );
      return { name, type: l.type, shape, part };
    }
    const shape = l.outputShapes?.[k];
    // A tuple, list or dict output: its parts, each a capture of its own (`layer:key`).
    if (!shape && parts)
      return {
        name,
        type: l.type,
        parts: Object.entries(parts).map(([p, shape]) => ({ name: `${whole}:${p}`, shape })),
      };
    if (!shape) {
      throw new FeatscopeError(
        'LAYER_NOT_CALLED',
        `layer call ${name} does not exist: ${base} is called ${l.calls} time(s) per forward (calls are numbered from #0)`,
      );
    }
    return { name, type: l.type, shape };
  });
}

/** A checked layer: its shape, or the names of its parts when it returns a tuple, list or dict. */
export interface CheckedLayer {
  name: string;
  type?: string;
  shape?: number[];
  /** `layer:key` asked for: the key. */
  part?: string;
  /** A structured output asked for whole: its parts, by capture name. */
  parts?: Array<{ name: string; shape: number[] }>;
}

/** `layer:part` -> [layer, part]; no colon -> [name, undefined]. */
function splitPart(name: string): [string, string | undefined] {
  const colon = name.indexOf(':');
  return colon < 0 ? [name, undefined] : [name.slice(0, colon), name.slice(colon + 1)];
}

/**
 * checkLayers for runs that capture exactly `layers` (render, export): the shapes come from one
 * capture of a black image through the graph the batches will use, so the check builds (and, by
 * default, optimises) that graph once instead of running a second forward with every module
 * hooked. A layer with a structured output stands for its parts: one entry per part, named as its
 * captures are (`backbone.fpn:0`, ...). Falls back to checkLayers where a layer gives no capture.
 */
export async function checkCaptureLayers(
  model: Model,
  layers: string[],
  size: number,
): Promise<Array<{ name: string; type?: string; shape?: number[] }>> {
  model.hook(layers).remove(); // validates the names: UNKNOWN_LAYER with suggestions, DUPLICATE_LAYER, ...
  const info = await model.layers();
  // LAYER_NOT_CALLED for a `#k` beyond the module's calls comes from the capture itself.
  const captures = await model.capture({ data: new Float32Array(3 * size * size), shape: [1, 3, size, size] }, layers);
  const checked = layers.map((name) => {
    const type = info.find((x) => x.name === splitPart(name)[0].split('#')[0])?.type;
    const mine = captures.filter((x) => x.name === name || (!name.includes(':') && x.name.startsWith(`${name}:`)));
    return mine.length > 0 ? mine.map((c) => ({ name: c.name, type, shape: c.shape })) : undefined;
  });
  if (checked.some((c) => !c)) return checkLayers(model, layers, size);
  return checked.flat() as Array<{ name: string; type?: string; shape: number[] }>;
}
