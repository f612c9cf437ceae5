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
import {
  evaluateSaliency,
  gradCamExplainer,
  randomisationCheck,
  saliencyExplainer,
  type RandomisationResult,
  type SaliencyEvaluation,
  type SaliencyEvaluationResult,
  type SaliencyMetric,
} from '../analysis/faithfulness';
import { renderCurvesChart, renderSanityChart } from '../analysis/faithfulness-chart';
import { newBackoff } from '../backoff';
import { FeatscopeError } from '../errors';
import type { Model } from '../model';
import type { ReportAssets } from '../report';
import { preprocess } from '../preprocess';
import type { ColormapName } from '../render';
import {
  checkLayers,
  parseColormap,
  parseDevice,
  parsePositiveInt,
  parseResize,
  usage,
  parseReportAssets,
  parseList,
} from './args';
import { runBatches, type ImageRecordBase } from './batch';
import { insideOut, layerFileNames, writeAtomic } from './files';
import { endsRun, flatRecordPath, runSignature, writeRunSummary } from './image-run';
import { expandInputs, type InputImage } from './inputs';
import { loadCliModel } from './model-options';
import { Progress } from './progress';
import { endRun } from './summary';
import { parseCommand, printHelp } from './command';
import { GRADCAM_COMMAND } from './commands';

export function parseClasses(value: string | undefined, command: string): number[] | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+(,\d+)*$/.test(value.trim()))
    throw usage(
      `--class takes a class index or a comma-separated list (207 or 207,281), not ${JSON.stringify(value)}`,
      command,
    );
  return parseList(value).map(Number);
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

function parseMetrics(value: string | undefined): SaliencyMetric[] | undefined {
  if (value === undefined) return undefined;
  const list = parseList(value, { keepEmpty: true });
  if (
    list.length === 0 ||
    !list.every((v) => v === 'deletion' || v === 'insertion') ||
    new Set(list).size !== list.length
  )
    throw usage(`--metrics takes deletion, insertion or deletion,insertion, not ${JSON.stringify(value)}`, 'gradcam');
  return list as SaliencyMetric[];
}

export async function gradcam(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(GRADCAM_COMMAND, argv);
  if (values.help) return printHelp(GRADCAM_COMMAND);
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
  const metrics = parseMetrics(values.metrics);
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
      metrics,
      sanity: Boolean(values.sanity),
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
  /** A segmentation model: the pixels of the target class's predicted mask. */
  maskPixels?: number;
  /** A detection model: the top detection's box (input pixels), whose score is the target. */
  box?: [number, number, number, number];
  saliency?: { file: string; method: SaliencyMethod; clipValue: number; completeness?: unknown };
  /** --metrics: per map, the class, the pixels per step and the curves with their AUCs. */
  metrics?: { file: string; step: number; gradcam: SaliencyEvaluation; saliency?: SaliencyEvaluation };
  /** --sanity: per map, the correlation after each step of the cascade and the verdict. */
  sanity?: { file: string; seed: number; gradcam: SanityRecord; saliency?: SanityRecord };
  flow?: { file: string; loss: number; layers: unknown; parameters: unknown };
}

interface SanityRecord {
  steps: { layer: string; correlation: number | null; unchanged: boolean }[];
  /** The step after which the top half of the layers is randomised. */
  half: number;
  correlationAtHalf: number | null;
  fails: boolean;
}

function sanityRecord(r: RandomisationResult, i: number): SanityRecord {
  return {
    steps: r.steps.map((s) => ({ layer: s.layer, correlation: s.correlations[i], unchanged: s.unchanged })),
    half: r.half,
    correlationAtHalf: r.images[i].correlationAtHalf,
    fails: r.images[i].fails,
  };
}

/** What one batch's forward hands to handle(). */
interface GradcamBatch {
  cams: GradCamOverlay[];
  sals?: SaliencyOverlay[];
  checks: Checks;
}

interface Checks {
  evalCam?: SaliencyEvaluationResult;
  evalSal?: SaliencyEvaluationResult;
  sanityCam?: RandomisationResult;
  sanitySal?: RandomisationResult;
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
    metrics?: SaliencyMetric[];
    sanity?: boolean;
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
  // As the library refuses them (native/gradcam.cc), before any work: a part's gradient would not
  // reach the graph, and a module that returns several tensors has no one map.
  if (info.part !== undefined)
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `Grad-CAM takes a module, not one part of its output (${layer}): name the inner module that computes it (featscope layers)`,
    );
  if (info.parts && info.parts.length > 1)
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `Grad-CAM needs a layer with one tensor output; ${layer} returns ${info.parts.length} (${info.parts.map((p) => p.name).join(', ')}): name the inner module that computes the one you want (featscope layers)`,
    );
  // A structured output with one tensor (DeepLabV3's backbone: {out}) is that tensor.
  if (info.parts) info.shape = info.parts[0].shape;
  if (info.shape!.length !== 4)
    throw new FeatscopeError(
      'NOT_FEATURE_MAPS',
      `layer ${layer} outputs shape [${info.shape!.join(', ')}], not feature maps [N, C, H, W]; Grad-CAM needs a convolutional layer (\`featscope layers\` shows shapes)`,
    );
  // --saliency, --metrics, --sanity and --flow differentiate a classifier's [N, classes] logit. A
  // model whose featscope.json names it a segmentation model is refused before any work.
  const extras = [o.saliency && '--saliency', o.metrics && '--metrics', o.sanity && '--sanity', o.flow && '--flow'];
  const refuseClassifierOnly = (file: string, task: 'segmentation' | 'detection') => {
    if (extras.some(Boolean))
      throw usage(
        `${extras.filter(Boolean).join(', ')} need a classifier's [N, classes] logits; ${file} is a ${task} model (its Grad-CAM target is ${task === 'segmentation' ? "the class logit summed over the class's mask" : "a detection's score"}): leave them out`,
        'gradcam',
      );
    if (task === 'detection' && o.classes)
      throw usage(
        `--class picks a classifier's or segmentation model's class; ${file} is a detection model (its Grad-CAM target is the top detection's score, its box drawn): leave it out`,
        'gradcam',
      );
  };
  if (model.metadata.task === 'segmentation' || model.metadata.task === 'detection')
    refuseClassifierOnly(model.path, model.metadata.task);
  fs.mkdirSync(out, { recursive: true });
  const options = {
    layer,
    classes: o.classes,
    resize,
    colormap,
    saliency: o.saliency,
    samples: o.samples,
    ...(o.metrics ? { metrics: o.metrics } : {}),
    ...(o.sanity ? { sanity: true } : {}),
  };
  const signature = await runSignature(model, { ...options, top, flow: o.flow });
  const metricBackoff = newBackoff(32);
  const indexOf = new Map(o.inputs.map((input, i) => [input.source, i]));
  const classOf = (source: string) =>
    o.classes && (o.classes.length > 1 ? o.classes[indexOf.get(source)!] : o.classes[0]);
  const recordPath = flatRecordPath('gradcam');
  const picture = (input: InputImage, suffix: string) => insideOut(out, `${input.name}.${suffix}`);
  const camSuffix = `gradcam-${layerFileNames([layer]).get(layer)!}.png`;
  const progress = new Progress({ total: o.inputs.length });
  const outcome = await runBatches<GradcamRecord, GradcamBatch>({
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
      // A model without featscope.json shows its kind only in its output: refused here, before the
      // batch's files are written.
      if (cams[0]?.maskPixels !== undefined) refuseClassifierOnly(m.path, 'segmentation');
      if (cams[0]?.box !== undefined) refuseClassifierOnly(m.path, 'detection');
      const sals = o.saliency
        ? await saliencyOverlaysOf(m, b, sources, { method: o.saliency, samples: o.samples, classes, resize, top })
        : undefined;
      const checks: Checks = {};
      if (o.metrics || o.sanity) {
        const targets = cams.map((r) => r.target.class);
        const n = cams.length;
        const { width: cw, height: ch } = cams[0].heatmap;
        const camMaps = { data: new Float32Array(n * cw * ch), shape: [n, ch, cw] };
        cams.forEach((r, i) => camMaps.data.set(r.heatmap.data, i * cw * ch));
        const salMaps = sals && {
          data: new Float32Array(sals.reduce((s, r) => s + r.values.length, 0)),
          shape: [n, b.shape[2], b.shape[3]],
        };
        sals?.forEach((r, i) => salMaps!.data.set(r.values, i * r.values.length));
        const salTargets = sals?.map((r) => r.target.class);
        if (o.metrics) {
          const opts = { metrics: o.metrics, backoff: metricBackoff };
          checks.evalCam = await evaluateSaliency(m, b, camMaps, { ...opts, classes: targets });
          if (salMaps) checks.evalSal = await evaluateSaliency(m, b, salMaps, { ...opts, classes: salTargets });
        }
        if (o.sanity) {
          checks.sanityCam = await randomisationCheck(m, b, gradCamExplainer(layer, targets));
          if (sals)
            checks.sanitySal = await randomisationCheck(
              m,
              b,
              saliencyExplainer({ method: o.saliency, samples: o.samples, classes: salTargets }),
            );
        }
      }
      return { cams, sals, checks };
    },
    async handle(input, _dir, _image, { cams, sals, checks }, i) {
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
        ...(r.maskPixels !== undefined ? { maskPixels: r.maskPixels } : {}),
        ...(r.box !== undefined ? { box: r.box } : {}),
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
      const salName = sals ? `${o.saliencyName} saliency` : '';
      if (checks.evalCam) {
        const series = [{ name: 'Grad-CAM', evaluation: checks.evalCam.images[i] }];
        if (checks.evalSal) series.push({ name: salName, evaluation: checks.evalSal.images[i] });
        const chart = await renderCurvesChart(model.metadata, series, {
          subject: path.basename(input.source),
          className: `${r.target.name} (${r.target.class})`,
          step: checks.evalCam.step,
        });
        const file = picture(input, 'metrics.png');
        await writeAtomic(file, chart.png);
        record.metrics = {
          file: path.basename(file),
          step: checks.evalCam.step,
          gradcam: checks.evalCam.images[i],
          ...(checks.evalSal ? { saliency: checks.evalSal.images[i] } : {}),
        };
      }
      if (checks.sanityCam) {
        const series = [{ name: `Grad-CAM (${layer})`, result: checks.sanityCam, image: i }];
        if (checks.sanitySal) series.push({ name: salName, result: checks.sanitySal, image: i });
        const chart = await renderSanityChart(model.metadata, series, { subject: path.basename(input.source) });
        const file = picture(input, 'sanity.png');
        await writeAtomic(file, chart.png);
        record.sanity = {
          file: path.basename(file),
          seed: checks.sanityCam.seed,
          gradcam: sanityRecord(checks.sanityCam, i),
          ...(checks.sanitySal ? { saliency: sanityRecord(checks.sanitySal, i) } : {}),
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
    [r.file, r.saliency?.file, r.flow?.file, r.metrics?.file, r.sanity?.file]
      .filter((f): f is string => f !== undefined)
      .map((f) => path.join(out, f)),
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
      if (r.metrics)
        images.push({
          png: await fs.promises.readFile(path.join(out, r.metrics.file)),
          caption: `Deletion / insertion: p(${r.target.name}) as pixels are deleted or inserted in the map's order`,
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
      if (r.metrics) {
        const rows: (string | number)[][] = [];
        for (const [name, e] of [
          ['Grad-CAM', r.metrics.gradcam],
          [r.saliency?.method ?? 'saliency', r.metrics.saliency],
        ] as const)
          if (e) rows.push([name, e.deletion?.auc ?? '—', e.insertion?.auc ?? '—']);
        sections.push({
          heading: `${path.basename(r.source)} · deletion / insertion AUC`,
          note: `class ${r.target.class}; ${r.metrics.step} pixels per step. Low deletion AUC and high insertion AUC: the map ranks the pixels the model uses first.`,
          table: { head: ['map', 'deletion AUC', 'insertion AUC'], rows },
        });
      }
      if (r.sanity) {
        const s = r.sanity;
        const verdict = (name: string, v: SanityRecord) =>
          `${name}: ${v.fails ? 'FAILS' : 'passes'} (ρ = ${v.correlationAtHalf === null ? 'undefined' : v.correlationAtHalf.toFixed(3)} after the top half is randomised)`;
        sections.push({
          heading: `${path.basename(r.source)} · randomisation check${s.gradcam.fails || s.saliency?.fails ? ' · a map FAILS' : ''}`,
          note: [verdict('Grad-CAM', s.gradcam), s.saliency ? verdict(r.saliency!.method, s.saliency) : '']
            .filter(Boolean)
            .join('; '),
          images: [
            {
              png: await fs.promises.readFile(path.join(out, s.file)),
              caption: 'Spearman correlation of |map| with the original after each cascade step',
            },
          ],
          table: {
            head: [
              'layer randomised (with those above)',
              'Grad-CAM ρ',
              ...(s.saliency ? [`${r.saliency!.method} ρ`] : []),
            ],
            rows: s.gradcam.steps.map((st, k) => [
              `${k === s.gradcam.half ? '▶ ' : ''}${st.layer}`,
              st.correlation ?? '—',
              ...(s.saliency ? [s.saliency.steps[k].correlation ?? '—'] : []),
            ]),
          },
        });
      }
    }
    report = insideOut(out, 'report.html');
    await writeAnalysisReport(
      report,
      analysisPage(model, 'featscope Grad-CAM', { layer, images: o.inputs.length, resize }, sections),
      o.reportAssets,
    );
    files.push(report);
  }
  return endRun({
    command: 'gradcam',
    json: o.json,
    out,
    total: o.inputs.length,
    resumable: true,
    summary: { report, ...summary },
    outcome,
    files,
  });
}
