/** `featscope predict`: a segmentation or detection model's prediction over each photo, and EigenCAM at a layer. */
import * as fs from 'fs';
import * as path from 'path';
import { eigenCamOverlay, predictionOverlay } from '../analysis/predictions';
import { DEVICE_OPTION, MODEL_OPTION, parse, parseDevice, parsePositiveInt, usage } from './args';
import { layerFileName, safeName } from './files';
import { loadCliModel, modelInputHelp, MODEL_INPUT_OPTIONS } from './model-options';

export const PREDICT_HELP = `Usage: featscope predict <image>... --model FILE [options]

A segmentation or detection model's prediction drawn over each photo: the argmax class per pixel
(Pascal VOC palette, legend with the classes present) or the highest-scoring boxes with their
class names and scores; and, with --eigencam LAYER, EigenCAM at that layer (the first principal
component of its channels, projected on positions: no gradients, any model, .pt2 too; a part
of a dict output is named layer:key, e.g. backbone.fpn:0). Models from scripts/export-model.py
--arch deeplabv3_resnet50|fcn_resnet50|retinanet_resnet50_fpn|... are UNTRAINED: the banner says
so, and their masks and boxes are noise.

Options:
  -m, --model FILE     TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt)
${modelInputHelp(23)}      --top K          detection: boxes drawn, highest scores first (default 10)
      --eigencam LAYER also draw EigenCAM at LAYER (e.g. backbone.fpn:0, backbone:out, layer4);
                       with a classifier, --eigencam alone is drawn
      --device DEV     auto (default) | cpu | cuda | cuda:N
      --threads N      libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)
  -o, --out DIR        output folder (default: ./featscope-out)
      --json           print the results as JSON on stdout
  -h, --help           this help

Output: DIR/<image>.prediction.png, DIR/<image>.eigencam-<layer>.png (--eigencam).

Example:
  featscope predict street.jpg --model retinanet.pt --eigencam backbone.fpn:0 --out out/
`;

export async function predict(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'predict',
    argv,
    {
      ...MODEL_OPTION,
      ...MODEL_INPUT_OPTIONS,
      ...DEVICE_OPTION,
      top: { type: 'string' },
      eigencam: { type: 'string' },
      out: { type: 'string', short: 'o' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(PREDICT_HELP);
    return 0;
  }
  if (positionals.length === 0) throw usage('give at least one image', 'predict');
  const device = parseDevice(values.device, 'predict');
  const top = parsePositiveInt(values.top, '--top', 10, 1000, 'predict');
  const out = values.out ?? 'featscope-out';
  const model = await loadCliModel(values, 'predict', { device });
  try {
    const task = (model.metadata as { task?: string }).task;
    const structured = task === 'segmentation' || task === 'detection';
    if (!structured && !values.eigencam)
      throw usage(
        `${model.path} is not a segmentation or detection model (its metadata has no task); give --eigencam LAYER, or a model from scripts/export-model.py --arch fcn_resnet50|retinanet_resnet50_fpn`,
        'predict',
      );
    fs.mkdirSync(out, { recursive: true });
    const results = [];
    for (const image of positionals) {
      const base = safeName(path.basename(image).replace(/\.[^.]+$/, ''), 'image');
      const record: Record<string, unknown> = { image };
      if (structured) {
        const p = await predictionOverlay(model, image, { top });
        const file = path.join(out, `${base}.prediction.png`);
        fs.writeFileSync(file, p.png);
        Object.assign(record, { kind: p.kind, prediction: file, classes: p.classes, boxes: p.boxes });
        if (!values.json) process.stderr.write(`featscope: ${image}: ${p.kind} -> ${file}\n`);
      }
      if (values.eigencam) {
        const e = await eigenCamOverlay(model, image, { layer: values.eigencam });
        const file = path.join(out, `${base}.eigencam-${layerFileName(values.eigencam)}.png`);
        fs.writeFileSync(file, e.png);
        Object.assign(record, { eigencam: file, explained: e.explained, range: e.range });
        if (!values.json) process.stderr.write(`featscope: ${image}: EigenCAM ${values.eigencam} -> ${file}\n`);
      }
      results.push(record);
    }
    if (values.json)
      process.stdout.write(
        `${JSON.stringify({ model: model.path, weights: model.metadata.weights, results }, null, 2)}\n`,
      );
    return 0;
  } finally {
    model.dispose();
  }
}
