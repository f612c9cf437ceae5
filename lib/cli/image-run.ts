/**
 * What the analysis commands over images (gradcam, attack; stats and similarity) share on top of
 * the batch runner (lib/cli/batch.ts): where their per-image records live, which errors end a run,
 * the signature that --resume compares, the `<command>.json` a run ends with, and the run of a
 * statistic over the whole set.
 */
import { FeatscopeError } from '../errors';
import type { Model } from '../model';
import { USAGE_CODES } from './args';
import type { Code } from './codes';
import {
  finishedRecords,
  runBatches,
  type BatchOutcome,
  type ForwardBatch,
  type ImageRecordBase,
  type RecordPath,
} from './batch';
import { insideOut, modelFingerprint, writeAtomic } from './files';
import type { InputImage } from './inputs';
import { modelSummary } from './manifest';
import type { Progress } from './progress';
import { inputSignature } from './model-options';

/**
 * The pictures of these commands lie flat in --out (`<image>.gradcam-layer4.png`); each image's
 * record (the mark that it is finished, which --resume trusts) goes to `.featscope/<command>/`
 * (input names never start with a dot, so this cannot collide with an image's files).
 */
export function flatRecordPath(command: string): RecordPath {
  return (out, input) => insideOut(out, '.featscope', command, `${input.name}.json`);
}

/** Errors that are the command line's or the model's fault, not one image's: the run stops (exit 2 or 1). */
const RUN_ENDING = new Set<Code>(['NOT_A_CLASSIFIER', 'MODEL_OUTPUT_NOT_LOGITS']);

export function endsRun(err: unknown): boolean {
  return err instanceof FeatscopeError && (USAGE_CODES.has(err.code) || RUN_ENDING.has(err.code));
}

/**
 * A statistic over the whole set (stats, similarity) on the batch runner: no records and no
 * --resume (the result is written at the end). `add(result, i, file)` takes image i of a batch's
 * `forward` result, `file` its index in `inputs`; a bad image fails alone.
 */
export function runOverSet<B>(job: {
  inputs: InputImage[];
  out: string;
  batch: number;
  model: Model;
  layers: string[];
  resize: 'squash' | 'crop';
  progress: Progress;
  forward: (model: Model, batch: ForwardBatch) => Promise<B>;
  add: (result: B, batchIndex: number, file: number) => void;
}): Promise<BatchOutcome> {
  const fileOf = new Map(job.inputs.map((input, i) => [input.source, i]));
  return runBatches<ImageRecordBase, B>({
    inputs: job.inputs,
    out: job.out,
    batch: job.batch,
    resume: false,
    signature: '',
    model: job.model,
    layers: job.layers,
    preprocess: { resize: job.resize, model: job.model },
    progress: job.progress,
    recordPath: null,
    imageDir: (dir) => dir,
    fatal: endsRun,
    forward: job.forward,
    async handle(input, _dir, _image, result, i) {
      job.add(result, i, fileOf.get(input.source)!);
      return { source: input.source, name: input.name, signature: '' };
    },
  });
}

/** What --resume compares: the model (path and content), the input options, and the options that change the outputs. */
export async function runSignature(model: Model, options: Record<string, unknown>): Promise<string> {
  return JSON.stringify({
    model: model.path,
    modelFile: await modelFingerprint(model.path),
    input: inputSignature(model),
    ...options,
  });
}

/**
 * The end of a run: every finished image's record (this run's and, under --resume, an earlier
 * one's), written with the run's options and outcome to `<command>.json` in --out.
 */
export async function writeRunSummary<R extends ImageRecordBase>(
  command: string,
  model: Model,
  options: Record<string, unknown>,
  run: { out: string; inputs: InputImage[]; signature: string; recordPath: RecordPath },
  outcome: BatchOutcome,
): Promise<{ records: R[]; summary: Record<string, unknown>; json: string }> {
  const records: R[] = [];
  for await (const r of finishedRecords<R>(run.out, run.inputs, run.signature, run.recordPath)) records.push(r);
  const summary = {
    command,
    model: modelSummary(model),
    options,
    images: records.map(({ signature: _s, name: _n, ...rest }) => rest),
    failed: outcome.failed,
    interrupted: outcome.interrupted,
  };
  const json = insideOut(run.out, `${command}.json`);
  await writeAtomic(json, `${JSON.stringify(summary, null, 2)}\n`);
  return { records, summary, json };
}
