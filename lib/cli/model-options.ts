/**
 * --mean/--std/--size/--labels: supply or override what a model file says about its input and
 * classes (featscope.json, docs/api.md "Model metadata"), and the once-per-run warning for a model
 * that stores no normalisation, where ImageNet's is assumed.
 */
import * as fs from 'fs';
import { IMAGENET_MEAN, IMAGENET_STD } from '../metadata';
import { loadModel, type LoadOptions, type Model } from '../model';
import { resolveModel, usage, parseList } from './args';
import { shown } from './term';
import { cliError } from './codes';

let warned = false;

/** For tests that run several commands in one process. */
export function resetMetadataWarning(): void {
  warned = false;
}

/** loadModel, with a progress line first: loading a large model takes seconds before any other output. */
export function loadNoted(file: string, options: LoadOptions): Promise<Model> {
  process.stderr.write(`featscope: loading model ${shown(file)}…\n`);
  return loadModel(file, options);
}

/** The values loadCliModel reads: --model and the input options above. */
type Values = { model?: string; mean?: string; std?: string; size?: string; labels?: string };

/** loadModel(--model) with --mean/--std/--size/--labels applied. */
export async function loadCliModel(
  values: Values,
  command: string,
  options: LoadOptions,
  file?: string,
): Promise<Model> {
  const input = parseInputOptions(values, command);
  const model = await loadNoted(file ?? resolveModel(values.model), options);
  try {
    await applyInputOptions(model, input, command);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}

export interface InputOptions {
  mean?: [number, number, number];
  std?: [number, number, number];
  size?: number;
  labels?: { file: string; names: string[] };
}

export function parseInputOptions(values: Values, command: string): InputOptions {
  const o: InputOptions = {};
  if (values.mean !== undefined) o.mean = parseTriple(values.mean, '--mean', IMAGENET_MEAN, false, command);
  if (values.std !== undefined) o.std = parseTriple(values.std, '--std', IMAGENET_STD, true, command);
  if (values.size !== undefined) {
    const v = values.size;
    if (!/^\d+$/.test(v) || Number(v) < 8 || Number(v) > 8192)
      throw usage(
        `--size must be the input side in pixels, an integer from 8 to 8192, not ${JSON.stringify(v)}`,
        command,
      );
    o.size = Number(v);
  }
  if (values.labels !== undefined) o.labels = { file: values.labels, names: readLabels(values.labels, command) };
  return o;
}

/**
 * Writes the options into `model.metadata` (so pictures, reports, manifests and preprocessing all
 * see them) and lists them in `metadata.commandLine`; warns once per run when the normalisation
 * is neither stored in the model nor given.
 */
export async function applyInputOptions(model: Model, o: InputOptions, command: string): Promise<void> {
  const meta = model.metadata;
  const stored = meta.input;
  const given = (['mean', 'std', 'size', 'labels'] as const).filter((k) => o[k] !== undefined);
  if (o.labels) {
    const size = o.size ?? stored?.size?.[0] ?? 224;
    const out = await model.forward({ data: new Float32Array(3 * size * size), shape: [1, 3, size, size] });
    const classes = out.output && out.output.shape.length === 2 ? out.output.shape[1] : undefined;
    if (classes !== o.labels.names.length) {
      throw usage(
        `--labels ${JSON.stringify(o.labels.file)} has ${o.labels.names.length} names but the model ${classes === undefined ? `outputs shape [${out.output?.shape.join(', ') ?? 'not a tensor'}], not class scores [N, K]` : `has ${classes} classes`}; give one name per line, in class-index order`,
        command,
      );
    }
    meta.classes = o.labels.names;
  }
  if (o.mean || o.std || o.size) {
    const size = o.size ?? stored?.size?.[0] ?? 224;
    meta.input = {
      ...stored,
      size: [size, size],
      mean: o.mean ?? stored?.mean ?? ([...IMAGENET_MEAN] as [number, number, number]),
      std: o.std ?? stored?.std ?? ([...IMAGENET_STD] as [number, number, number]),
    };
  }
  if (given.length) meta.commandLine = [...new Set([...(meta.commandLine ?? []), ...given])];
  const assumed = [!stored?.mean && !o.mean ? 'mean' : '', !stored?.std && !o.std ? 'std' : ''].filter(Boolean);
  if (assumed.length && !warned) {
    warned = true;
    process.stderr.write(
      `featscope: warning: ${model.path} stores no input normalisation (no featscope.json), so ImageNet's is assumed ` +
        `(mean ${IMAGENET_MEAN.join(',')}, std ${IMAGENET_STD.join(',')}, ${o.size ?? stored?.size?.[0] ?? 224} px)` +
        `${meta.classes ? '' : ' and classes are named "class N"'}; pass --mean/--std/--size${meta.classes ? '' : '/--labels'} ` +
        `or export the model with scripts/export-model.py (docs/api.md, "Model metadata")\n`,
    );
  }
}

function parseTriple(
  text: string,
  option: string,
  example: readonly number[],
  positive: boolean,
  command: string,
): [number, number, number] {
  const parts = parseList(text, { keepEmpty: true });
  const values = parts.map((s) => (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s) ? Number(s) : NaN));
  if (values.length !== 3 || values.some((v) => !Number.isFinite(v) || (positive && v <= 0))) {
    throw usage(
      `${option} takes three ${positive ? 'positive ' : ''}numbers for R,G,B (e.g. ${example.join(',')}), not ${JSON.stringify(text)}`,
      command,
    );
  }
  return values as [number, number, number];
}

/** One class name per line; trailing blank lines ignored, blank lines inside refused. */
export function readLabels(file: string, command: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw cliError(
      'USAGE',
      `--labels ${JSON.stringify(file)}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder' : `cannot read it (${code})`}; give a text file with one class name per line (see \`featscope ${command} --help\`)`,
    );
  }
  const lines = text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .map((l) => l.trim());
  while (lines.length && !lines[lines.length - 1]) lines.pop();
  if (!lines.length) throw usage(`--labels ${JSON.stringify(file)} is empty; give one class name per line`, command);
  const blank = lines.findIndex((l) => !l);
  if (blank >= 0)
    throw usage(
      `--labels ${JSON.stringify(file)}: line ${blank + 1} is blank; give one class name per line, in class-index order`,
      command,
    );
  return lines;
}

/**
 * What --mean/--std/--size/--labels changed, for --resume signatures: a rerun with other values
 * redoes the images; undefined (left out of the JSON) when none was given, so runs without them
 * keep their signatures.
 */
export function inputSignature(model: Model): unknown {
  const m = model.metadata;
  if (!m.commandLine?.length) return undefined;
  return { input: m.input, classes: m.commandLine.includes('labels') ? m.classes : undefined };
}
