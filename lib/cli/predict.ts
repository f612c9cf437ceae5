/** `featscope predict`: a segmentation or detection model's prediction over each photo, and EigenCAM at a layer. */
import * as fs from 'fs';
import * as path from 'path';
import { eigenCamOverlay, predictionOverlay } from '../analysis/predictions';
import { parseDevice, parsePositiveInt, usage } from './args';
import { layerFileName, safeName } from './files';
import { loadCliModel } from './model-options';
import { parseCommand, printHelp } from './command';
import { PREDICT_COMMAND } from './commands';

export async function predict(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(PREDICT_COMMAND, argv);
  if (values.help) return printHelp(PREDICT_COMMAND);
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
