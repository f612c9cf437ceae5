/** `featscope attack`: FGSM or PGD per image; predictions before and after, layer divergence, side-by-side grids. */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import {
  analysisPage,
  fgsm,
  pgd,
  renderAttackGrids,
  renderDivergenceChart,
  type AnalysisSection,
  type AttackResult,
  writeAnalysisReport,
} from '../analysis';
import { normalisationOf } from '../analysis/common';
import { preprocess } from '../preprocess';
import type { Model } from '../model';
import type { ReportAssets } from '../report';
import { checkLayers, parseDevice, parsePositiveInt, parseResize, usage, parseReportAssets, parseList } from './args';
import { runBatches, type ImageRecordBase } from './batch';
import { loadCliModel } from './model-options';
import { insideOut, writeAtomic } from './files';
import { parseClasses } from './gradcam';
import { endsRun, flatRecordPath, runSignature, writeRunSummary } from './image-run';
import { expandInputs, type InputImage } from './inputs';
import { Progress } from './progress';
import { endRun } from './summary';
import { parseCommand, printHelp } from './command';
import { ATTACK_COMMAND } from './commands';

export function parseAmount(
  value: string | undefined,
  option: string,
  fallback: number | undefined,
  command: string,
): number | undefined {
  if (value === undefined) return fallback;
  const m = /^\s*(\d*\.?\d+(?:e-?\d+)?)\s*(?:\/\s*(\d*\.?\d+)\s*)?$/i.exec(value);
  const v = m ? Number(m[1]) / (m[2] ? Number(m[2]) : 1) : NaN;
  if (!(v >= 0 && v <= 1))
    throw usage(`${option} takes a pixel amount from 0 to 1, as 8/255 or 0.03, not ${JSON.stringify(value)}`, command);
  return v;
}

export async function attack(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(ATTACK_COMMAND, argv);
  if (values.help) return printHelp(ATTACK_COMMAND);
  const reportAssets = parseReportAssets(values['report-assets'], 'attack');
  if (positionals.length === 0) throw usage('attack needs at least one image, folder or glob', 'attack');
  const method = values.method ?? 'pgd';
  if (method !== 'fgsm' && method !== 'pgd')
    throw usage(`--method must be fgsm or pgd, not ${JSON.stringify(method)}`, 'attack');
  const epsilon = parseAmount(values.epsilon, '--epsilon', 8 / 255, 'attack')!;
  const stepSize = parseAmount(values.step, '--step', undefined, 'attack');
  const steps = parsePositiveInt(values.steps, '--steps', 10, 10000, 'attack');
  const classes = parseClasses(values.class, 'attack');
  const layers = values.layers === undefined ? undefined : parseList(values.layers);
  const resize = parseResize(values.resize, 'attack');
  const device = parseDevice(values.device, 'attack');
  const out = path.resolve(values.out ?? 'featscope-out');
  const inputs = await expandInputs(positionals, { skip: out });
  if (classes && classes.length > 1 && classes.length !== inputs.length)
    throw usage(`--class lists ${classes.length} classes for ${inputs.length} images`, 'attack');
  const model = await loadCliModel(values, 'attack', { device });
  try {
    return await attackWith(model, {
      inputs,
      method,
      epsilon,
      stepSize,
      steps,
      classes,
      layers,
      resize,
      out,
      report: Boolean(values.report),
      reportAssets,
      resume: Boolean(values.resume),
      json: Boolean(values.json),
    });
  } finally {
    model.dispose();
  }
}

interface AttackRecord extends ImageRecordBase, ReturnType<typeof summarise> {
  files: Record<string, string>;
}

interface Attacked {
  result: AttackResult;
  chart: Buffer;
  adversarial: Buffer;
  grids?: { png: Buffer; layer: string };
}

async function attackWith(
  model: Model,
  o: {
    inputs: InputImage[];
    method: 'fgsm' | 'pgd';
    epsilon: number;
    stepSize: number | undefined;
    steps: number;
    classes: number[] | undefined;
    layers: string[] | undefined;
    resize: 'squash' | 'crop';
    out: string;
    report: boolean;
    reportAssets: ReportAssets;
    resume: boolean;
    json: boolean;
  },
): Promise<number> {
  const { method, epsilon, stepSize, steps, layers, out } = o;
  // Layer names are checked before any work (typos get suggestions: a usage error, exit 2).
  if (layers) await checkLayers(model, layers, model.metadata.input?.size?.[0] ?? 224);
  fs.mkdirSync(out, { recursive: true });
  const norm = normalisationOf(model);
  const options = {
    method,
    epsilon,
    stepSize: method === 'pgd' ? (stepSize ?? epsilon / 4) : undefined,
    steps: method === 'pgd' ? steps : undefined,
    classes: o.classes,
    layers,
  };
  const signature = await runSignature(model, { ...options, resize: o.resize });
  const indexOf = new Map(o.inputs.map((input, i) => [input.source, i]));
  const recordPath = flatRecordPath('attack');
  const progress = new Progress({ total: o.inputs.length });
  const outcome = await runBatches<AttackRecord, Attacked>({
    inputs: o.inputs,
    out,
    // One image per attack: each has its own target and path, and a failure stays its own.
    batch: 1,
    resume: o.resume,
    signature,
    model,
    layers: layers ?? [],
    preprocess: { resize: o.resize, model },
    progress,
    recordPath,
    imageDir: (dir) => dir,
    fatal: endsRun,
    async forward(m, x) {
      const i = indexOf.get(x.inputs[0].source)!;
      const target = o.classes ? (o.classes.length > 1 ? o.classes[i] : o.classes[0]) : undefined;
      const result =
        method === 'fgsm'
          ? await fgsm(m, x, { epsilon, classes: target, layers })
          : await pgd(m, x, { epsilon, stepSize, steps, classes: target, layers });
      const chart = (await renderDivergenceChart(m, result, { subject: path.basename(x.inputs[0].source) })).png;
      const adversarial = await toPng(result, norm);
      const grids = result.mostDivergent ? await renderAttackGrids(m, x, result) : undefined;
      return { result, chart, adversarial, grids };
    },
    async handle(input, _dir, _image, a) {
      const files: Record<string, string> = {};
      const write = async (key: string, suffix: string, png: Buffer) => {
        const f = insideOut(out, `${input.name}.${suffix}`);
        await writeAtomic(f, png);
        files[key] = path.basename(f);
      };
      await write('divergence', 'divergence.png', a.chart);
      await write('adversarial', 'adversarial.png', a.adversarial);
      if (a.grids) await write('grids', 'grids.png', a.grids.png);
      return { source: input.source, name: input.name, signature, files, ...summarise(a.result) };
    },
  });
  progress.finish();

  progress.note('writing report…');
  const { records, summary, json } = await writeRunSummary<AttackRecord>(
    'attack',
    model,
    options,
    { out, inputs: o.inputs, signature, recordPath },
    outcome,
  );
  const files = records.flatMap((r) => Object.values(r.files).map((f) => path.join(out, f)));
  files.push(json);
  let report: string | undefined;
  if (o.report) {
    const sections: AnalysisSection[] = [];
    for (const r of records) sections.push(await reportSection(r, out, o.resize, norm));
    report = insideOut(out, 'report.html');
    await writeAnalysisReport(
      report,
      analysisPage(
        model,
        'featscope adversarial paths',
        { method, epsilon: `${(epsilon * 255).toFixed(2)}/255`, steps: method === 'pgd' ? steps : undefined },
        sections,
      ),
      o.reportAssets,
    );
    files.push(report);
  }
  return endRun({
    command: 'attack',
    json: o.json,
    out,
    total: o.inputs.length,
    resumable: true,
    summary: { report, ...summary },
    outcome,
    files,
  });
}

/** An image's report section, from its record and files (also for images finished by an earlier run). */
async function reportSection(
  r: AttackRecord,
  out: string,
  resize: 'squash' | 'crop',
  norm: { size: number; mean: number[]; std: number[] },
): Promise<AnalysisSection> {
  const read = (f: string) => fs.promises.readFile(path.join(out, f));
  const x = await preprocess(r.source, { resize, size: norm.size, mean: norm.mean, std: norm.std });
  const before = await sharp(x.images[0].rgb, {
    raw: { width: x.images[0].width, height: x.images[0].height, channels: 3 },
  })
    .png()
    .toBuffer();
  const images = [
    {
      png: await sideBySide(before, await read(r.files.adversarial)),
      caption: 'Model input: clean (left) and attacked (right)',
    },
    { png: await read(r.files.divergence), caption: 'Relative L2 change per layer' },
  ];
  if (r.files.grids && r.mostDivergent)
    images.push({ png: await read(r.files.grids), caption: `${r.mostDivergent}: clean vs attacked feature maps` });
  const im = r.outcome;
  return {
    heading: path.basename(r.source),
    note: `${r.method.toUpperCase()}: ${im.before.top.name} ${(im.before.top.probability * 100).toFixed(1)}% → ${im.after.top.name} ${(im.after.top.probability * 100).toFixed(1)}% (${im.flipped ? 'flipped' : 'unchanged'}); target ${im.target.name}: ${(im.before.targetProbability * 100).toFixed(2)}% → ${(im.after.targetProbability * 100).toFixed(2)}%`,
    images,
    table: { head: ['layer', 'relative L2 change'], rows: r.layers.map((l) => [l.name, l.divergence]) },
  };
}

function summarise(r: AttackResult) {
  return {
    method: r.method,
    epsilon: r.epsilon,
    stepSize: r.stepSize,
    steps: r.steps,
    outcome: r.images[0],
    mostDivergent: r.mostDivergent,
    layers: r.layers.map((l) => ({ name: l.name, shape: l.shape, divergence: l.divergence })),
    path: r.path?.map((p) => ({ step: p.step, loss: p.loss, targetProbability: p.targetProbability[0] })),
  };
}

/** The attacked input back in pixels (x · std + mean, rounded) as a PNG. */
async function toPng(r: AttackResult, norm: { mean: number[]; std: number[] }): Promise<Buffer> {
  const [, , h, w] = r.adversarial.shape;
  const plane = h * w;
  const rgb = Buffer.alloc(plane * 3);
  for (let c = 0; c < 3; c++)
    for (let j = 0; j < plane; j++) {
      rgb[j * 3 + c] = Math.max(
        0,
        Math.min(255, Math.round((r.adversarial.data[c * plane + j] * norm.std[c] + norm.mean[c]) * 255)),
      );
    }
  return sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

async function sideBySide(a: Buffer, b: Buffer): Promise<Buffer> {
  const ma = await sharp(a).metadata();
  const gap = 8;
  return sharp({ create: { width: ma.width! * 2 + gap, height: ma.height!, channels: 3, background: '#ffffff' } })
    .composite([
      { input: a, left: 0, top: 0 },
      { input: b, left: ma.width! + gap, top: 0 },
    ])
    .png()
    .toBuffer();
}
