/** `featscope export`: one .npy per image and captured layer, plus manifest.json, for numpy and friends. */
import * as fs from 'fs';
import * as path from 'path';
import type { Model } from '../model';
import { encodeNpy } from '../npy';
import { checkCaptureLayers, parseLayers, parsePositiveInt, parseResize, usage } from './args';
import { inputSignature, loadCliModel } from './model-options';
import { finishedRecords, runBatches, type ImageRecordBase } from './batch';
import { insideOut, layerFileNames, modelFingerprint, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { writeManifest } from './manifest';
import { Progress } from './progress';
import { loadMoreModels, parseDevices } from './devices';
import { announceShard, parseShard, selectShard, shardOut, shardRecord } from './shard';
import { endRun } from './summary';
import { parseCommand, printHelp } from './command';
import { EXPORT_COMMAND } from './commands';

interface ExportRecord extends ImageRecordBase {
  captures: Array<{ name: string; layer: string; call: number; file: string; shape: number[]; dtype: 'float32' }>;
}

export async function exportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(EXPORT_COMMAND, argv);
  if (values.help) return printHelp(EXPORT_COMMAND);
  if (positionals.length === 0) throw usage('export needs at least one image, folder or glob', 'export');
  const layers = parseLayers(values.layers, 'export');
  const devices = parseDevices(values, 'export');
  const device = devices[0];
  const batch = parsePositiveInt(values.batch, '--batch', 32, 1024, 'export');
  const resize = parseResize(values.resize, 'export');
  const shard = parseShard(values, 'export');
  const outBase = path.resolve(values.out ?? 'featscope-out');
  const out = shardOut(outBase, shard);
  const all = await expandInputs(positionals, { skip: outBase });
  const { inputs } = selectShard(positionals, all, shard);
  announceShard('export', shard, all.length, inputs.length, out);
  const shardInfo = shard ? { shard: shardRecord(shard, all.length, inputs.length) } : {};
  const model = await loadCliModel(values, 'export', { device });
  let more: Model[] = [];
  // The model file's hash (for --resume) is read while the other models load and the layer check runs.
  const fingerprint = modelFingerprint(model.path);
  fingerprint.catch(() => undefined); // awaited below; an earlier error must not leave it unhandled
  try {
    more = await loadMoreModels(values, 'export', devices);
    const size = model.metadata.input?.size?.[0] ?? 224;
    const layerInfo = (await checkCaptureLayers(model, layers, size)).map((l) => ({ ...l, shape: l.shape!.slice(1) }));
    fs.mkdirSync(out, { recursive: true });
    const options = { layers, resize, size, batch };
    const signature = JSON.stringify({
      model: model.path,
      modelFile: await fingerprint,
      layers,
      resize,
      size,
      export: 1,
      input: inputSignature(model),
    });
    const progress = new Progress({ total: inputs.length });
    const outcome = await runBatches<ExportRecord>({
      inputs,
      out,
      batch,
      resume: Boolean(values.resume),
      signature,
      model,
      models: [model, ...more],
      layers,
      preprocess: { resize, model },
      progress,
      async handle(input, dir, _image, captures, b) {
        const saved: ExportRecord['captures'] = [];
        const fileBase = layerFileNames(captures.map((c) => c.name));
        for (const c of captures) {
          const per = c.data.length / c.shape[0];
          const shape = [1, ...c.shape.slice(1)];
          const file = insideOut(dir, `${fileBase.get(c.name)!}.npy`);
          await writeAtomic(file, encodeNpy(c.data.subarray(b * per, (b + 1) * per), shape));
          saved.push({
            name: c.name,
            layer: c.layer,
            call: c.call,
            file: path.relative(out, file).split(path.sep).join('/'),
            shape,
            dtype: 'float32',
          });
        }
        return { source: input.source, name: input.name, signature, captures: saved };
      },
    });
    progress.finish();
    const manifest = path.join(out, 'manifest.json');
    const finished = await writeManifest(
      manifest,
      { command: 'export', model, options: { ...options, ...shardInfo }, layers: layerInfo },
      finishedRecords<ExportRecord>(out, inputs, signature),
      {
        failed: outcome.failed,
        interrupted: outcome.interrupted,
        total: inputs.length,
        backoff: outcome.backoff,
        devices: more.length ? outcome.devices : undefined,
      },
    );
    return endRun({
      command: 'export',
      verb: 'exported',
      json: Boolean(values.json),
      out,
      total: inputs.length,
      outcome,
      finished,
      manifest,
    });
  } finally {
    model.dispose();
    for (const m of more) m.dispose();
  }
}
