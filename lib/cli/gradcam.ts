/** `featscope gradcam`: Grad-CAM overlays per image (and, with --flow, gradient-flow charts), JSON and report. */
import * as fs from 'fs';
import * as path from 'path';
import {
  analysisPage,
  gradientFlow,
  renderFlowChart,
  type AnalysisSection,
  type SaliencyMethod,
  writeAnalysisReport,
} from '../analysis';
import { normalisationOf, type Prediction } from '../analysis/common';
import { gradCamOverlaysOf, type GradCamOverlay } from '../analysis/gradcam';
import { saliencyOverlaysOf, type SaliencyOverlay } from '../analysis/saliency';
import { FeatscopeError } from '../errors';
import type { Model } from '../model';
import type { ReportAssets } from '../report';
import { preprocess } from '../preprocess';
import type { ColormapName } from '../render';
import {
  checkLayers,
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
import { runBatches, type ImageRecordBase } from './batch';
import { insideOut, layerFileNames, writeAtomic } from './files';
import { endsRun, flatRecordPath, runSignature, writeRunSummary } from './image-run';
import { expandInputs, type InputImage } from './inputs';
import { loadCliModel, modelInputHelp, MODEL_INPUT_OPTIONS } from './model-options';
import { Progress } from './progress';
import { endAnalysisRun } from './summary';

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
      --report-assets HOW
                       inline (default) | linked: the pictures in report_files/ beside it
      --resize MODE    squash (default) | crop
      --device DEV     auto (default) | cpu | cuda | cuda:N
      --threads N      libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)
      --batch N        images per forward and backward (default 8)
  -o, --out DIR        output folder (default: ./featscope-out)
      --resume         skip images already finished in --out with the same model and options
      --json           print the results as JSON on stdout (progress stays on stderr)
  -h, --help           this help

Output: DIR/<image>.gradcam-<layer>.png, DIR/<image>.flow.png (--flow),
DIR/<image>.saliency-<M>.png (--saliency), DIR/gradcam.json, DIR/report.html;
DIR/.featscope/gradcam/<image>.json marks each finished image for --resume.

Exit status: 0 all done, 1 some images failed (listed at the end, each with its [CODE]),
2 usage error, 130 interrupted (Ctrl-C; finished files are complete, rerun with --resume).

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
      resume: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(GRADCAM_HELP);
    return 0;
  }
  const reportAssets = parseReportAssets(values['report-assets'], 'gradcam');
  if (positionals.length === 0) throw usage('gradcam needs at least one image, folder or glob', 'gradcam');
  const layer = (values.layer ?? 'layer4').trim();
  const classes = parseClasses(values.class, 'gradcam');
  const top = parsePositiveInt(values.top, '--top', 3, 20, 'gradcam');
  const colormap = parseColormap(values.colormap, 'gradcam', '--colormap', 'turbo');
  const resize = parseResize(values.resize, 'gradcam');
  const batch = parsePositiveInt(values.batch, '--batch', 8, 256, 'gradcam');
  const saliencyMethod = parseSaliency(values.saliency);
  const samples =
    values.samples === undefined ? undefined : parsePositiveInt(values.samples, '--samples', 16, 1024, 'gradcam');
  const device = parseDevice(values.device, 'gradcam');
  const out = path.resolve(values.out ?? 'featscope-out');
  const inputs = await expandInputs(positionals, { skip: out });
  if (classes && classes.length > 1 && classes.length !== inputs.length) {
    throw usage(
      `--class lists ${classes.length} classes for ${inputs.length} images; give one for all or one per image`,
      'gradcam',
    );
  }
  const model = await loadCliModel(values, 'gradcam', { device });
  try {
    return await gradcamWith(model, {
      inputs,
      layer,
      classes,
      top,
      colormap,
      resize,
      batch,
      saliency: saliencyMethod,
      saliencyName: values.saliency?.trim(),
      samples,
      flow: Boolean(values.flow),
      report: Boolean(values.report),
      reportAssets,
      resume: Boolean(values.resume),
      json: Boolean(values.json),
      out,
    });
  } finally {
    model.dispose();
  }
}

interface GradcamRecord extends ImageRecordBase {
  layer: string;
  file: string;
  target: Prediction;
  predictions: Prediction[];
  camMax: number;
  saliency?: { file: string; method: SaliencyMethod; clipValue: number; completeness?: unknown };
  flow?: { file: string; loss: number; layers: unknown; parameters: unknown };
}

async function gradcamWith(
  model: Model,
  o: {
    inputs: InputImage[];
    layer: string;
    classes: number[] | undefined;
    top: number;
    colormap: ColormapName;
    resize: 'squash' | 'crop';
    batch: number;
    saliency: SaliencyMethod | undefined;
    saliencyName: string | undefined;
    samples: number | undefined;
    flow: boolean;
    report: boolean;
    reportAssets: ReportAssets;
    resume: boolean;
    json: boolean;
    out: string;
  },
): Promise<number> {
  const { layer, resize, colormap, top, out } = o;
  const size = model.metadata.input?.size?.[0] ?? 224;
  // The layer is checked before any work: a typo or a layer without feature maps is a usage error.
  const [info] = await checkLayers(model, [layer], size);
  if (info.shape!.length !== 4)
    throw new FeatscopeError(
      'NOT_FEATURE_MAPS',
      `layer ${layer} outputs shape [${info.shape!.join(', ')}], not feature maps [N, C, H, W]; Grad-CAM needs a convolutional layer (\`featscope layers\` shows shapes)`,
    );
  fs.mkdirSync(out, { recursive: true });
  const options = { layer, classes: o.classes, resize, colormap, saliency: o.saliency, samples: o.samples };
  const signature = await runSignature(model, { ...options, top, flow: o.flow });
  const indexOf = new Map(o.inputs.map((input, i) => [input.source, i]));
  const classOf = (source: string) =>
    o.classes && (o.classes.length > 1 ? o.classes[indexOf.get(source)!] : o.classes[0]);
  const recordPath = flatRecordPath('gradcam');
  const picture = (input: InputImage, suffix: string) => insideOut(out, `${input.name}.${suffix}`);
  const camSuffix = `gradcam-${layerFileNames([layer]).get(layer)!}.png`;
  const progress = new Progress({ total: o.inputs.length });
  const outcome = await runBatches<GradcamRecord, { cams: GradCamOverlay[]; sals?: SaliencyOverlay[] }>({
    inputs: o.inputs,
    out,
    batch: o.batch,
    resume: o.resume,
    signature,
    model,
    layers: [layer],
    preprocess: { resize, model },
    progress,
    recordPath,
    imageDir: (dir) => dir,
    fatal: endsRun,
    async forward(m, b) {
      const sources = b.inputs.map((i) => i.source);
      const classes = o.classes && sources.map((s) => classOf(s)!);
      const cams = await gradCamOverlaysOf(m, b, sources, { layer, classes, resize, colormap, top });
      const sals = o.saliency
        ? await saliencyOverlaysOf(m, b, sources, { method: o.saliency, samples: o.samples, classes, resize, top })
        : undefined;
      return { cams, sals };
    },
    async handle(input, _dir, _image, { cams, sals }, i) {
      const r = cams[i];
      const file = picture(input, camSuffix);
      await writeAtomic(file, r.png);
      const record: GradcamRecord = {
        source: input.source,
        name: input.name,
        signature,
        layer,
        file: path.basename(file),
        target: r.target,
        predictions: r.predictions,
        camMax: r.rawMax,
      };
      if (sals) {
        const sal = sals[i];
        const salFile = picture(input, `saliency-${o.saliencyName}.png`);
        await writeAtomic(salFile, sal.png);
        record.saliency = {
          file: path.basename(salFile),
          method: sal.method,
          clipValue: sal.clipValue,
          completeness: sal.completeness,
        };
      }
      if (o.flow) {
        const norm = normalisationOf(model);
        const x = await preprocess(input.source, { resize, size: norm.size, mean: norm.mean, std: norm.std });
        const flow = await gradientFlow(model, x, { classes: r.target.class });
        const chart = await renderFlowChart(model, flow, { subject: path.basename(input.source) });
        const flowFile = picture(input, 'flow.png');
        await writeAtomic(flowFile, chart.png);
        record.flow = {
          file: path.basename(flowFile),
          loss: flow.lossValue,
          layers: flow.layers,
          parameters: flow.parameters,
        };
      }
      return record;
    },
  });
  progress.finish();

  progress.note('writing report…');
  const { records, summary, json } = await writeRunSummary<GradcamRecord>(
    'gradcam',
    model,
    options,
    { out, inputs: o.inputs, signature, recordPath },
    outcome,
  );
  const files = records.flatMap((r) =>
    [r.file, r.saliency?.file, r.flow?.file].filter((f): f is string => f !== undefined).map((f) => path.join(out, f)),
  );
  files.push(json);
  let report: string | undefined;
  if (o.report) {
    const sections: AnalysisSection[] = [];
    for (const r of records) {
      const images = [
        {
          png: await fs.promises.readFile(path.join(out, r.file)),
          caption: `Grad-CAM at ${layer} for ${r.target.name} (class ${r.target.class})`,
        },
      ];
      if (r.saliency)
        images.push({
          png: await fs.promises.readFile(path.join(out, r.saliency.file)),
          caption: `Input saliency (${r.saliency.method}) for ${r.target.name} (class ${r.target.class})`,
        });
      if (r.flow)
        images.push({
          png: await fs.promises.readFile(path.join(out, r.flow.file)),
          caption: 'Gradient flow: per-layer and per-weight gradient norms (log scale)',
        });
      sections.push({
        heading: path.basename(r.source),
        note: r.source,
        images,
        table: {
          head: ['class', 'probability'],
          rows: r.predictions.map((p) => [`${p.name} (${p.class})`, p.probability]),
        },
      });
    }
    report = insideOut(out, 'report.html');
    await writeAnalysisReport(
      report,
      analysisPage(model, 'featscope Grad-CAM', { layer, images: o.inputs.length, resize }, sections),
      o.reportAssets,
    );
    files.push(report);
  }
  return endAnalysisRun(
    'gradcam',
    { json: o.json, out, total: o.inputs.length, resumable: true, summary: { report, ...summary } },
    outcome,
    files,
  );
}
