/**
 * The streaming loop behind the image commands (render and its clips, export, gradcam, attack,
 * attention, stats, similarity, …): images go through in batches (each image preprocessed on its
 * own, a few at a time, so one bad file fails alone), one forward per batch, then each image's
 * files are written (temporary name, rename) and its record.json last — the mark that it is
 * finished, which --resume trusts (stats and similarity, over the whole set, keep no records).
 * The next batch is decoded and run through the model while the current one is written. Ctrl-C
 * stops taking new images; a second Ctrl-C quits at once.
 */
import * as fs from 'fs';
import * as path from 'path';
import { FeatscopeError } from '../errors';
import type { Model } from '../model';
import { preprocessEach, type ImageSource, type PreprocessOptions, type PreprocessedImage } from '../preprocess';
import type { Capture } from '../types';
import { captureWithBackoff, newBackoff, type Backoff } from '../backoff';
import { insideOut, removeStaleTemps, writeAtomic } from './files';
import type { InputImage } from './inputs';
import type { Progress } from './progress';
import { asCode, type Code } from './codes';
import { interruptible } from './interrupt';

/** An input that failed, with the code of its error (the one failure type of the CLI's runs, records and merges). */
export interface Failure {
  source: string;
  code: Code;
  message: string;
}

export interface ImageRecordBase {
  source: string;
  name: string;
  signature: string;
}

/** One batch as the runner hands it to a custom `forward`: the readable images, stacked. */
export interface ForwardBatch {
  inputs: InputImage[];
  images: PreprocessedImage[];
  /** [inputs.length, 3, H, W], normalised as `preprocess` asked. */
  data: Float32Array;
  shape: [number, number, number, number];
}

/** Where an image's record.json (the mark that it is finished) lives; `out/<name>/record.json` by default. */
export type RecordPath = (out: string, input: InputImage) => string;

/** One streamed item (a video frame): its name for records and failures, and its pixels. */
export interface StreamItem {
  input: InputImage;
  image: ImageSource;
}

export interface BatchJob<R extends ImageRecordBase, B = Capture[]> {
  inputs: InputImage[];
  /**
   * Items pulled one batch at a time as the pipeline has room, after `inputs` (video frames
   * decoded as they are needed, so a long clip is never all in memory). Under --resume an item
   * whose record is finished is skipped as it arrives. If the stream throws, it ends there and
   * the error is returned as the outcome's `streamError`.
   */
  stream?: AsyncIterator<StreamItem>;
  out: string;
  batch: number;
  resume: boolean;
  /** Options that change the outputs; a --resume only skips records made with the same. */
  signature: string;
  model: Model;
  /** With --devices: one model per device; batches go to them in turn, one in flight on each. */
  models?: Model[];
  layers: string[];
  preprocess: PreprocessOptions;
  progress: Progress;
  /**
   * Instead of capturing `layers` in one forward: run the batch through the model yourself (the
   * analyses with gradients: gradcam, saliency, attack). What it returns reaches `handle` in place
   * of the captures. An error fails the batch's images, unless `fatal` says it ends the run.
   */
  forward?: (model: Model, batch: ForwardBatch) => Promise<B>;
  /** Errors (from `forward` or `handle`) that are the command line's fault: the run stops and rethrows. */
  fatal?: (err: unknown) => boolean;
  /**
   * Where each image's record goes (default `out/<name>/record.json`); its folder is made as needed.
   * null: no records (a statistic over the whole set: nothing to --resume); what `handle` returns is dropped.
   */
  recordPath?: RecordPath | null;
  /** The folder handed to `handle` (default `out/<name>`, made before `handle` runs). */
  imageDir?: (out: string, input: InputImage) => string;
  /** Write this image's files into `dir` and return its record (paths relative to --out). */
  handle(input: InputImage, dir: string, image: PreprocessedImage, captures: B, batchIndex: number): Promise<R>;
}

export interface BatchOutcome {
  done: number;
  skipped: number;
  failed: Failure[];
  interrupted: boolean;
  /** Each time a CUDA_OOM halved the batch (lib/backoff.ts). */
  backoff: Backoff['events'];
  /** Per model (device), the batches and images it ran. */
  devices: Array<{ device: string; batches: number; images: number }>;
  /** What the job's `stream` threw (it ended there). */
  streamError?: unknown;
}

export function recordPath(out: string, input: InputImage): string {
  return insideOut(out, input.name, 'record.json');
}

/** The record of a finished image, or undefined when it is missing, unreadable or from other options. */
export async function readRecord<R extends ImageRecordBase>(
  out: string,
  input: InputImage,
  signature?: string,
  where: RecordPath = recordPath,
): Promise<R | undefined> {
  try {
    const r = JSON.parse(await fs.promises.readFile(where(out, input), 'utf8')) as R;
    if (r.source !== input.source) return undefined;
    if (signature !== undefined && r.signature !== signature) return undefined;
    return r;
  } catch {
    return undefined;
  }
}

/** The failure of `source` that `err` describes (INTERNAL for an error without a known code). */
export function failureOf(source: string, err: unknown): Failure {
  if (err instanceof FeatscopeError) return { source, code: asCode(err.code), message: err.message };
  return { source, code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

interface Prepared {
  input: InputImage;
  data: Float32Array;
  image: PreprocessedImage;
}

interface Captured<B> {
  ready: Prepared[];
  captures: B;
}

export async function runBatches<R extends ImageRecordBase, B = Capture[]>(job: BatchJob<R, B>): Promise<BatchOutcome> {
  const { progress } = job;
  const where = job.recordPath === null ? undefined : (job.recordPath ?? recordPath);
  const dirOf = job.imageDir ?? ((out: string, input: InputImage) => insideOut(out, input.name));
  let fatalError: { err: unknown } | undefined;
  const models = job.models?.length ? job.models : [job.model];
  const outcome: BatchOutcome = {
    done: 0,
    skipped: 0,
    failed: [],
    interrupted: false,
    backoff: [],
    devices: models.map((m) => ({ device: m.device, batches: 0, images: 0 })),
  };
  const backoff = newBackoff(job.batch);
  // Without a custom forward, B is Capture[] (its default type argument: only the jobs that pass a
  // forward set B), so the captures are what handle() receives; TypeScript cannot tie the two.
  const runForward =
    job.forward ??
    ((model: Model, b: ForwardBatch) =>
      captureWithBackoff(model, b.data, b.shape, job.layers, backoff) as Promise<unknown> as Promise<B>);
  const interrupt = interruptible(progress, {
    stopping: 'stopping after the current image (Ctrl-C again to quit at once)',
    ...(where ? { quit: '\nfeatscope: stopped at once; finished files are complete, rerun with --resume\n' } : {}),
  });
  // An error the job calls fatal stops the run like Ctrl-C; runBatches rethrows it at the end.
  const isFatal = (err: unknown) => {
    if (!job.fatal?.(err)) return false;
    fatalError ??= { err };
    interrupt.stop();
    return true;
  };
  try {
    let pending = job.inputs;
    if (job.resume && where) {
      const todo: InputImage[] = [];
      for (const input of job.inputs) {
        if (await readRecord(job.out, input, job.signature, where)) outcome.skipped++;
        else todo.push(input);
      }
      progress.skip(outcome.skipped);
      pending = todo;
    }
    const fail = (source: string, err: unknown) => {
      const f = failureOf(source, err);
      outcome.failed.push(f);
      progress.tick(source, `${f.message} [${f.code}]`);
    };
    const slices: InputImage[][] = [];
    for (let start = 0; start < pending.length; start += job.batch)
      slices.push(pending.slice(start, start + job.batch));
    // The stream (if any) after the inputs: pulled only when a batch is prepared, in order.
    let streamDone = !job.stream;
    let streamSkipped = 0;
    const takeSlice = async (k: number): Promise<StreamItem[]> => {
      if (k < slices.length) return slices[k].map((input) => ({ input, image: input.source }));
      const items: StreamItem[] = [];
      while (job.stream && items.length < job.batch && !streamDone && !interrupt.stopping) {
        let next: IteratorResult<StreamItem>;
        try {
          next = await job.stream.next();
        } catch (err) {
          outcome.streamError = err;
          streamDone = true;
          break;
        }
        if (next.done) {
          streamDone = true;
          break;
        }
        if (job.resume && where && (await readRecord(job.out, next.value.input, job.signature, where))) {
          outcome.skipped++;
          streamSkipped++;
          continue;
        }
        items.push(next.value);
      }
      return items;
    };
    // A three-stage pipeline, in input order at every stage:
    //   prepare (decode on sharp's threads, resize and normalise here), one batch at a time;
    //   forward on the addon's worker thread, one batch in flight per model (--devices: batch k
    //   runs on model k mod M);
    //   write (grids drawn here, PNGs encoded on sharp's threads, files renamed into place).
    // While batch k runs through the model, batch k+1 is decoded and batch k-1 written. At most
    // M + 1 batches are decoded or captured and not yet written, so memory stays bounded by --batch.
    const prepare = async (k: number): Promise<Prepared[]> => {
      const items = await takeSlice(k);
      const slice = items.map((it) => it.input);
      const ready: Prepared[] = [];
      // An old record must not survive an attempt: an image that fails now is listed as failed,
      // not also as rendered by an earlier run.
      if (where) await Promise.all(slice.map((input) => fs.promises.rm(where(job.out, input), { force: true })));
      const results = await preprocessEach(
        items.map((it) => it.image),
        job.preprocess,
      );
      // Stopped meanwhile (Ctrl-C): these images are dropped, neither done nor failed.
      if (interrupt.stopping) return [];
      results.forEach((r, i) =>
        'error' in r
          ? fail(slice[i].source, r.error)
          : ready.push({ input: slice[i], data: r.data, image: r.images[0] }),
      );
      return ready;
    };
    const forward = async (ready: Prepared[], m: number): Promise<Captured<B> | undefined> => {
      if (ready.length === 0 || interrupt.stopping) return undefined;
      const per = ready[0].data.length;
      // One image: its own array (the addon copies its input anyway); else one array for the batch.
      let data = ready[0].data;
      if (ready.length > 1) {
        data = new Float32Array(per * ready.length);
        ready.forEach((r, i) => data.set(r.data, i * per));
      }
      const { height, width } = ready[0].image;
      try {
        const captures = await runForward(models[m], {
          inputs: ready.map((r) => r.input),
          images: ready.map((r) => r.image),
          data,
          shape: [ready.length, 3, height, width],
        });
        outcome.devices[m].batches++;
        outcome.devices[m].images += ready.length;
        return { ready, captures };
      } catch (err) {
        if (!interrupt.stopping && !isFatal(err)) for (const r of ready) fail(r.input.source, err);
        return undefined;
      }
    };
    // From here on Ctrl-C and SIGTERM are ours (a supervisor can wait for this line).
    if (job.stream) progress.note('running the model on the frames as they are decoded…');
    else if (slices.length > 0)
      progress.note(`running the model on ${pending.length} image${pending.length === 1 ? '' : 's'}…`);
    const inflight: Array<Promise<Captured<B> | undefined>> = [];
    // The tails of the stages: the next batch is prepared after the previous one, and runs on a
    // model after that model's previous forward (whether it succeeded or not).
    let prepTail: Promise<unknown> = Promise.resolve();
    const modelTail: Array<Promise<unknown>> = models.map(() => Promise.resolve());
    const cleaned = new Set<string>(); // folders whose stale temporary files are removed
    let launched = 0;
    const launch = () => {
      if ((launched >= slices.length && streamDone) || interrupt.stopping) return;
      const k = launched++;
      const m = k % models.length;
      const prepared = prepTail.then(() => prepare(k));
      prepTail = prepared.catch(() => undefined);
      const afterModel = modelTail[m];
      const captured = Promise.all([prepared, afterModel]).then(([ready]) => forward(ready, m));
      modelTail[m] = captured.catch(() => undefined);
      inflight.push(captured);
    };
    for (let j = 0; j <= models.length; j++) launch();
    while (inflight.length > 0 && !interrupt.stopping) {
      const current = await inflight.shift()!;
      launch();
      if (!current) continue;
      const { ready, captures } = current;
      for (let i = 0; i < ready.length; i++) {
        if (interrupt.stopping) break;
        const { input, image } = ready[i];
        try {
          const dir = dirOf(job.out, input);
          await fs.promises.mkdir(dir, { recursive: true });
          // Once per folder and run: flat layouts (gradcam, attack) put every image in --out.
          if (!cleaned.has(dir)) {
            cleaned.add(dir);
            await removeStaleTemps(dir);
          }
          // An old record must not vouch for files that are about to be replaced.
          const recordFile = where?.(job.out, input);
          if (recordFile) await fs.promises.rm(recordFile, { force: true });
          const record = await job.handle(input, dir, image, captures, i);
          if (recordFile) {
            await fs.promises.mkdir(path.dirname(recordFile), { recursive: true });
            await writeAtomic(recordFile, JSON.stringify(record));
          }
          outcome.done++;
          progress.tick(input.source);
        } catch (err) {
          if (isFatal(err)) break;
          fail(input.source, err);
        }
      }
    }
    // Batches prepared ahead when Ctrl-C came are dropped unwritten; wait for their forwards to end.
    await Promise.all(inflight);
    if (streamSkipped > 0) progress.skip(streamSkipped);
    if (fatalError) throw fatalError.err;
    outcome.interrupted = interrupt.stopping;
    outcome.backoff = backoff.events;
    // Failures in input order, however the stages interleaved them.
    const order = new Map(job.inputs.map((input, i) => [input.source, i]));
    outcome.failed.sort((a, b) => (order.get(a.source) ?? 0) - (order.get(b.source) ?? 0));
    return outcome;
  } finally {
    interrupt.dispose();
  }
}

/** Finished records of `inputs`, read back one at a time (for the manifest and the report). */
export async function* finishedRecords<R extends ImageRecordBase>(
  out: string,
  inputs: InputImage[],
  signature: string,
  where: RecordPath = recordPath,
): AsyncGenerator<R> {
  for (const input of inputs) {
    const r = await readRecord<R>(out, input, signature, where);
    if (r) yield r;
  }
}
