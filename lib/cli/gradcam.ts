/** `featscope gradcam`: Grad-CAM overlays per image (and, with --flow, gradient-flow charts), JSON and report. */
import * as fs from 'fs';
import * as path from 'path';
import {
  analysisPage,
  gradCamOverlays,
  gradientFlow,
  renderFlowChart,
  saliencyOverlays,
  type AnalysisSection,
  type SaliencyMethod,
  writeAnalysisReport,
} from '../analysis';
import { normalisationOf } from '../analysis/common';
import { preprocess } from '../preprocess';
import {
  DEVICE_OPTION,
  MODEL_OPTION,
  parse,
  parseColormap,
  parseDevice,
  parsePositiveInt,
  parseResize,
  usage,
  parseReportAssets,
} from './args';
import { loadCliModel, modelInputHelp, MODEL_INPUT_OPTIONS } from './model-options';
import { insideOut, layerFileNames, writeAtomic } from './files';
import { expandInputs } from './inputs';
import { modelSummary } from './manifest';

export const GRADCAM_HELP = `Usage: featscope gradcam <image|folder|glob>... [options]

Grad-CAM: where in the photo the evidence for a class lies, at one layer. Gradients of the class
score flow back to the layer's output through the TorchScript graph; the map ReLU(Σ_k α_k A_k)
(α_k: spatial mean of channel k's gradient) is normalised to its maximum and drawn over the photo.

Options:
  -m, --model FILE     TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt)
${modelInputHelp(23)}  -l, --layer NAME     layer with [N, C, H, W] output (default: layer4)
      --class N[,N]    target class (one for all, or one per image); default: each image's top-1
      --top K          predictions listed under the picture (default 3)
      --colormap NAME  heatmap colours (default turbo)
      --flow           also chart the gradient flow (per-layer and per-weight gradient norms)
      --saliency M     also draw an input saliency map: gradient | smoothgrad | ig
                       (integrated gradients, from the mean colour)
      --samples N      noisy copies (smoothgrad, default 16) or path steps (ig, default 32)
      --report         also write report.html
      --report-assets HOW inline (default) | linked: the pictures in report_files/ beside it
      --resize MODE    squash (default) | crop
      --device DEV     auto (default) | cpu | cuda | cuda:N
      --threads N      libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)
      --batch N        images per forward and backward (default 8)
  -o, --out DIR        output folder (default: ./featscope-out)
      --json           print the results as JSON on stdout
  -h, --help           this help

Output: DIR/<image>.gradcam-<layer>.png, DIR/<image>.flow.png (--flow),
DIR/<image>.saliency-<M>.png (--saliency), DIR/gradcam.json, DIR/report.html.

Example:
  featscope gradcam photo.jpg --layer layer4 --flow --report --out out/
`;

export function parseClasses(value: string | undefined, command: string): number[] | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+(,\d+)*$/.test(value.trim()))
    throw usage(
      `--class takes a class index or a comma-separated list (207 or 207,281), not ${JSON.stringify(value)}`,
      command,
    );
  return value.trim().split(',').map(Number);
}

const SALIENCY: Record<string, SaliencyMethod> = {
  gradient: 'gradient',
  smoothgrad: 'smoothgrad',
  ig: 'integrated-gradients',
};

function parseSaliency(value: string | undefined): SaliencyMethod | undefined {
  if (value === undefined) return undefined;
  const m = SALIENCY[value.trim()];
  if (!m) throw usage(`--saliency takes gradient, smoothgrad or ig, not ${JSON.stringify(value)}`, 'gradcam');
  return m;
}

export async function gradcam(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'gradcam',
    argv,
    {
      ...MODEL_OPTION,
      ...MODEL_INPUT_OPTIONS,
      ...DEVICE_OPTION,
      layer: { type: 'string', short: 'l' },
      class: { type: 'string' },
      top: { type: 'string' },
      colormap: { type: 'string' },
      flow: { type: 'boolean' },
      saliency: { type: 'string' },
      samples: { type: 'string' },
      report: { type: 'boolean' },
      'report-assets': { type: 'string' },
      resize: { type: 'string' },
      batch: { type: 'string' },
      out: { type: 'string', short: 'o' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(GRADCAM_HELP);
    return 0;
  }
  const reportAssets = parseReportAssets(values['report-assets'] as string | undefined, 'gradcam');
  if (positionals.length === 0) throw usage('gradcam needs at least one image, folder or glob', 'gradcam');
  const layer = ((values.layer as string | undefined) ?? 'layer4').trim();
  const classes = parseClasses(values.class as string | undefined, 'gradcam');
  const top = parsePositiveInt(values.top as string | undefined, '--top', 3, 20, 'gradcam');
  const colormap = parseColormap(values.colormap as string | undefined, 'gradcam', '--colormap', 'turbo');
  const resize = parseResize(values.resize as string | undefined, 'gradcam');
  const batch = parsePositiveInt(values.batch as string | undefined, '--batch', 8, 256, 'gradcam');
  const saliencyMethod = parseSaliency(values.saliency as string | undefined);
  const samples =
    values.samples === undefined
      ? undefined
      : parsePositiveInt(values.samples as string, '--samples', 16, 1024, 'gradcam');
  const device = parseDevice(values.device as string | undefined, 'gradcam');
  const out = path.resolve((values.out as string | undefined) ?? 'featscope-out');
  const inputs = await expandInputs(positionals, { skip: out });
  if (classes && classes.length > 1 && classes.length !== inputs.length) {
    throw usage(
      `--class lists ${classes.length} classes for ${inputs.length} images; give one for all or one per image`,
      'gradcam',
    );
  }
  const model = await loadCliModel(values, 'gradcam', { device });
  try {
    fs.mkdirSync(out, { recursive: true });
    const records: Record<string, unknown>[] = [];
    const sections: AnalysisSection[] = [];
    const failed: { source: string; message: string }[] = [];
    for (let start = 0; start < inputs.length; start += batch) {
      const chunk = inputs.slice(start, start + batch);
      const chunkClasses = classes && classes.length > 1 ? classes.slice(start, start + batch) : classes;
      let results;
      let saliencies;
      try {
        results = await gradCamOverlays(
          model,
          chunk.map((c) => c.source),
          { layer, classes: chunkClasses, resize, colormap, top },
        );
        if (saliencyMethod) {
          saliencies = await saliencyOverlays(
            model,
            chunk.map((c) => c.source),
            { method: saliencyMethod, samples, classes: chunkClasses, resize, top },
          );
        }
      } catch (err) {
        // Layer and class errors are the command line's fault: stop. Image errors fail the batch's images.
        if ((err as { code?: string }).code?.startsWith('IMAGE_')) {
          for (const c of chunk) failed.push({ source: c.source, message: (err as Error).message });
          continue;
        }
        throw err;
      }
      for (let i = 0; i < chunk.length; i++) {
        const r = results[i];
        const file = insideOut(out, `${chunk[i].name}.gradcam-${layerFileNames([layer]).get(layer)!}.png`);
        await writeAtomic(file, r.png);
        const record: Record<string, unknown> = {
          source: chunk[i].source,
          layer,
          file: path.basename(file),
          target: r.target,
          predictions: r.predictions,
          camMax: r.rawMax,
        };
        const images = [{ png: r.png, caption: `Grad-CAM at ${layer} for ${r.target.name} (class ${r.target.class})` }];
        if (saliencies) {
          const sal = saliencies[i];
          const salFile = insideOut(out, `${chunk[i].name}.saliency-${values.saliency as string}.png`);
          await writeAtomic(salFile, sal.png);
          record.saliency = {
            file: path.basename(salFile),
            method: sal.method,
            clipValue: sal.clipValue,
            completeness: sal.completeness,
          };
          images.push({
            png: sal.png,
            caption: `Input saliency (${sal.method}) for ${sal.target.name} (class ${sal.target.class})`,
          });
        }
        if (values.flow) {
          const norm = normalisationOf(model);
          const x = await preprocess(chunk[i].source, { resize, size: norm.size, mean: norm.mean, std: norm.std });
          const flow = await gradientFlow(model, x, { classes: r.target.class });
          const chart = await renderFlowChart(model, flow, { subject: path.basename(chunk[i].source) });
          const flowFile = insideOut(out, `${chunk[i].name}.flow.png`);
          await writeAtomic(flowFile, chart.png);
          record.flow = {
            file: path.basename(flowFile),
            loss: flow.lossValue,
            layers: flow.layers,
            parameters: flow.parameters,
          };
          images.push({
            png: chart.png,
            caption: 'Gradient flow: per-layer and per-weight gradient norms (log scale)',
          });
        }
        records.push(record);
        sections.push({
          heading: path.basename(chunk[i].source),
          note: chunk[i].source,
          images,
          table: {
            head: ['class', 'probability'],
            rows: r.predictions.map((p) => [`${p.name} (${p.class})`, p.probability]),
          },
        });
      }
      process.stderr.write(`gradcam: ${Math.min(start + batch, inputs.length)}/${inputs.length} images\n`);
    }
    const summary = {
      command: 'gradcam',
      model: modelSummary(model),
      options: { layer, classes, resize, colormap, saliency: saliencyMethod, samples },
      images: records,
      failed,
    };
    await writeAtomic(insideOut(out, 'gradcam.json'), `${JSON.stringify(summary, null, 2)}\n`);
    let report: string | undefined;
    if (values.report) {
      report = insideOut(out, 'report.html');
      await writeAnalysisReport(
        report,
        analysisPage(model, 'featscope Grad-CAM', { layer, images: inputs.length, resize }, sections),
        reportAssets,
      );
    }
    if (values.json) process.stdout.write(`${JSON.stringify({ out, report, ...summary }, null, 2)}\n`);
    for (const f of failed) process.stderr.write(`featscope: ${f.source}: ${f.message}\n`);
    process.stderr.write(
      `gradcam: wrote ${records.length} overlay(s) to ${out}${report ? `, report ${report}` : ''}\n`,
    );
    return failed.length ? 1 : 0;
  } finally {
    model.dispose();
  }
}
