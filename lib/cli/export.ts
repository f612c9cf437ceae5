/** `featscope export`: one .npy per image and captured layer, plus manifest.json, for numpy and friends. */
import * as fs from 'fs';
import * as path from 'path';
import type { Model } from '../model';
import { encodeNpy } from '../npy';
import {
  BATCH_RUN_OPTIONS,
  DEVICE_OPTION,
  checkCaptureLayers,
  MODEL_OPTION,
  parse,
  parseLayers,
  parsePositiveInt,
  parseResize,
  usage,
} from './args';
import { inputSignature, loadCliModel, modelInputHelp, MODEL_INPUT_OPTIONS } from './model-options';
import { finishedRecords, runBatches, type ImageRecordBase } from './batch';
import { insideOut, layerFileNames, modelFingerprint, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { writeManifest } from './manifest';
import { Progress } from './progress';
import { DEVICES_OPTION, devicesHelp, loadMoreModels, parseDevices } from './devices';
import { announceShard, parseShard, selectShard, SHARD_OPTIONS, shardHelp, shardOut, shardRecord } from './shard';
import { endBatchRun } from './summary';

export const EXPORT_HELP = `Usage: featscope export <image|folder|glob>... [options]

Save layer outputs as NumPy .npy files (float32, C order): one file per image and layer, with
the capture's shape for that image ([1, C, H, W] for a convolutional layer, [1, 1000] for fc),
plus manifest.json. Load them with numpy.load(path).

Options:
  -m, --model FILE        TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt)
${modelInputHelp(26)}  -l, --layers A,B        layers to save (default: layer1.0.conv1); any layer, not only conv maps
      --resize MODE       squash (default) | crop
      --device DEV        auto (default) | cpu | cuda | cuda:N
${devicesHelp(26)}      --threads N         libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)
      --batch N           images per forward (default 32)
  -o, --out DIR           output folder (default: ./featscope-out)
${shardHelp(26)}      --resume            skip images already exported in --out with the same options
      --json              print a JSON summary on stdout
  -h, --help              this help

Output: DIR/<image>/<layer>.npy and DIR/manifest.json (files, shapes, dtype, model metadata).
Exit status: 0 all done, 1 some inputs failed, 2 usage error, 130 interrupted.

Example:
  featscope export photo.jpg --layers layer1.0.conv1,layer4,fc --out features/
  python3 -c "import numpy; print(numpy.load('features/photo/layer4.npy').shape)"
`;

interface ExportRecord extends ImageRecordBase {
  captures: Array<{ name: string; layer: string; call: number; file: string; shape: number[]; dtype: 'float32' }>;
}

export async function exportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'export',
    argv,
    {
      ...MODEL_OPTION,
      ...MODEL_INPUT_OPTIONS,
      ...DEVICE_OPTION,
      ...DEVICES_OPTION,
      ...BATCH_RUN_OPTIONS,
      ...SHARD_OPTIONS,
    },
    true,
  );
  if (values.help) {
    process.stdout.write(EXPORT_HELP);
    return 0;
  }
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
    return endBatchRun(
      'exported',
      { json: Boolean(values.json), out, total: inputs.length },
      outcome,
      finished,
      manifest,
    );
  } finally {
    model.dispose();
    for (const m of more) m.dispose();
  }
}
