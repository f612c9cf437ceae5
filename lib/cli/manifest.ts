/**
 * manifest.json: what a run produced — files, shapes, per-channel statistics — with the model's
 * metadata (not its 1000 class names) and whether its weights are trained. Written as a stream,
 * one image record at a time, so 10,000 images do not have to sit in memory.
 */
import { once } from 'events';
import type { Model } from '../model';
import { weightsLabel } from '../metadata';
import { versions } from '../versions';
import { atomicStream } from './files';
import type { Failure, ImageRecordBase } from './batch';

export function modelSummary(model: Model): Record<string, unknown> {
  const { classes, ...meta } = model.metadata;
  const label = weightsLabel(model.metadata);
  return {
    path: model.path,
    device: model.device,
    type: model.type,
    ...meta,
    classes: classes ? classes.length : undefined,
    trained: label.trained ?? null,
    weightsLabel: label.text,
  };
}

export function featscopeVersion(): string {
  try {
    return versions().featscope;
  } catch {
    return 'unknown';
  }
}

export interface ManifestHeader {
  command: string;
  model: Model;
  options: Record<string, unknown>;
  layers: Array<{ name: string; type?: string; shape?: number[] }>;
}

/** Write `<out>/manifest.json` from the finished records. */
export async function writeManifest<R extends ImageRecordBase>(
  file: string,
  header: ManifestHeader,
  records: AsyncIterable<R>,
  outcome: {
    failed: Failure[];
    interrupted: boolean;
    total: number;
    backoff?: Array<Record<string, unknown>>;
    devices?: Array<Record<string, unknown>>;
  },
): Promise<number> {
  const out = atomicStream(file);
  const write = async (text: string) => {
    if (!out.stream.write(text)) await once(out.stream, 'drain');
  };
  try {
    const model = modelSummary(header.model);
    const head = {
      featscope: featscopeVersion(),
      created: new Date().toISOString(),
      command: header.command,
      trained: model.trained,
      model,
      options: header.options,
      layers: header.layers,
    };
    const text = JSON.stringify(head, null, 1);
    await write(`${text.slice(0, -2)},\n "images": [`);
    let n = 0;
    for await (const record of records) {
      const { signature: _signature, ...rest } = record;
      await write(`${n === 0 ? '\n' : ',\n'}  ${JSON.stringify(rest)}`);
      n++;
    }
    await write(`\n ],\n "failed": ${JSON.stringify(outcome.failed)},\n`);
    await write(` "counts": ${JSON.stringify({ inputs: outcome.total, done: n, failed: outcome.failed.length })},\n`);
    if (outcome.backoff?.length) await write(` "backoff": ${JSON.stringify(outcome.backoff)},\n`);
    if (outcome.devices?.length) await write(` "devices": ${JSON.stringify(outcome.devices)},\n`);
    await write(` "interrupted": ${outcome.interrupted}\n}\n`);
    await out.commit();
    return n;
  } catch (err) {
    await out.abort();
    throw err;
  }
}

/** Round to 6 significant digits: enough for statistics, half the bytes. */
export function round6(v: number): number | null {
  return Number.isFinite(v) ? Number(v.toPrecision(6)) : null;
}
