/** `featscope export`: one .npy per image and captured layer, plus manifest.json, for numpy and friends. */
import * as fs from 'fs';
import * as path from 'path';
import { loadModel } from '../model';
import { encodeNpy } from '../npy';
import {
  BATCH_RUN_OPTIONS,
  DEVICE_OPTION,
  checkLayers,
  MODEL_OPTION,
  parse,
  parseDevice,
  parseLayers,
  parsePositiveInt,
  parseResize,
  resolveModel,
  usage,
} from './args';
import { finishedRecords, runBatches, type ImageRecordBase } from './batch';
import { insideOut, layerFileName, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { writeManifest } from './manifest';
import { Progress } from './progress';
import { endBatchRun } from './summary';

export const EXPORT_HELP = `Usage: featscope export <image|folder|glob>... [options]

Save layer outputs as NumPy .npy files (float32, C order): one file per image and layer, with
the capture's shape for that image ([1, C, H, W] for a convolutional layer, [1, 1000] for fc),
plus manifest.json. Load them with numpy.load(path).

Options:
  -m, --model FILE        TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt)
  -l, --layers A,B        layers to save (default: layer1.0.conv1); any layer, not only conv maps
      --resize MODE       squash (default) | crop
      --device DEV        auto (default) | cpu | cuda | cuda:N
      --threads N         libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)
      --batch N           images per forward (default 32)
  -o, --out DIR           output folder (default: ./featscope-out)
      --resume            skip images already exported in --out with the same options
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
      ...DEVICE_OPTION,
      ...BATCH_RUN_OPTIONS,
    },
    true,
  );
  if (values.help) {
    process.stdout.write(EXPORT_HELP);
    return 0;
  }
  if (positionals.length === 0) throw usage('export needs at least one image, folder or glob', 'export');
  const layers = parseLayers(values.layers as string | undefined, 'export');
  const device = parseDevice(values.device as string | undefined, 'export');
  const batch = parsePositiveInt(values.batch as string | undefined, '--batch', 32, 1024, 'export');
  const resize = parseResize(values.resize as string | undefined, 'export');
  const out = path.resolve((values.out as string | undefined) ?? 'featscope-out');
  const inputs = await expandInputs(positionals);
  const model = await loadModel(resolveModel(values.model as string | undefined), { device });
  try {
    const size = model.metadata.input?.size?.[0] ?? 224;
    const layerInfo = (await checkLayers(model, layers, size)).map((l) => ({ ...l, shape: l.shape!.slice(1) }));
    fs.mkdirSync(out, { recursive: true });
    const options = { layers, resize, size, batch };
    const signature = JSON.stringify({ model: model.path, layers, resize, size, export: 1 });
    const progress = new Progress({ total: inputs.length });
    const outcome = await runBatches<ExportRecord>({
      inputs,
      out,
      batch,
      resume: Boolean(values.resume),
      signature,
      model,
      layers,
      preprocess: { resize, model },
      progress,
      async handle(input, dir, _image, captures, b) {
        const saved: ExportRecord['captures'] = [];
        for (const c of captures) {
          const per = c.data.length / c.shape[0];
          const shape = [1, ...c.shape.slice(1)];
          const file = insideOut(dir, `${layerFileName(c.name)}.npy`);
          await writeAtomic(file, encodeNpy(c.data.subarray(b * per, (b + 1) * per), shape));
          saved.push({ name: c.name, layer: c.layer, call: c.call, file: path.relative(out, file).split(path.sep).join('/'), shape, dtype: 'float32' });
        }
        return { source: input.source, name: input.name, signature, captures: saved };
      },
    });
    progress.finish();
    const manifest = path.join(out, 'manifest.json');
    const finished = await writeManifest(manifest, { command: 'export', model, options, layers: layerInfo }, finishedRecords<ExportRecord>(out, inputs, signature), {
      failed: outcome.failed,
      interrupted: outcome.interrupted,
      total: inputs.length,
    });
    return endBatchRun('exported', { json: Boolean(values.json), out, total: inputs.length }, outcome, finished, manifest);
  } finally {
    model.dispose();
  }
}
