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
import {
  DEVICE_OPTION,
  MODEL_OPTION,
  parse,
  parseDevice,
  parsePositiveInt,
  parseResize,
  usage,
  parseReportAssets,
} from './args';
import { loadCliModel, modelInputHelp, MODEL_INPUT_OPTIONS } from './model-options';
import { insideOut, writeAtomic } from './files';
import { parseClasses } from './gradcam';
import { expandInputs } from './inputs';
import { modelSummary } from './manifest';

export const ATTACK_HELP = `Usage: featscope attack <image|folder|glob>... [options]

Adversarial paths: perturb each image against a class (default: its own prediction) with FGSM or
PGD, and show the prediction before and after, how far each layer's output moves (relative L2),
and the feature maps of the layer that moves most, clean beside attacked.

ε and the step are in pixel units of [0, 1] (8/255 ≈ 0.031), applied per channel in the model's
normalised input space as ε / std; pixels stay within [0, 1].

Options:
  -m, --model FILE     TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt)
${modelInputHelp(23)}      --method M       fgsm | pgd (default pgd)
      --epsilon E      largest change per pixel, e.g. 8/255 or 0.03 (default 8/255)
      --step S         PGD step size (default ε/4)
      --steps K        PGD steps (default 10)
      --class N[,N]    class to attack (one for all, or one per image); default: the prediction
  -l, --layers A,B     layers to compare (default: every conv and linear layer)
      --report         also write report.html
      --report-assets HOW inline (default) | linked: the pictures in report_files/ beside it
      --resize MODE    squash (default) | crop
      --device DEV     auto (default) | cpu | cuda | cuda:N
      --threads N      libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)
  -o, --out DIR        output folder (default: ./featscope-out)
      --json           print the results as JSON on stdout
  -h, --help           this help

Output per image: DIR/<image>.adversarial.png (the attacked model input), <image>.divergence.png,
<image>.grids.png; DIR/attack.json, DIR/report.html.

Example:
  featscope attack photo.jpg --method pgd --epsilon 4/255 --steps 10 --report --out out/
`;

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
  const { values, positionals } = parse(
    'attack',
    argv,
    {
      ...MODEL_OPTION,
      ...MODEL_INPUT_OPTIONS,
      ...DEVICE_OPTION,
      method: { type: 'string' },
      epsilon: { type: 'string' },
      step: { type: 'string' },
      steps: { type: 'string' },
      class: { type: 'string' },
      layers: { type: 'string', short: 'l' },
      report: { type: 'boolean' },
      'report-assets': { type: 'string' },
      resize: { type: 'string' },
      out: { type: 'string', short: 'o' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(ATTACK_HELP);
    return 0;
  }
  const reportAssets = parseReportAssets(values['report-assets'] as string | undefined, 'attack');
  if (positionals.length === 0) throw usage('attack needs at least one image, folder or glob', 'attack');
  const method = (values.method as string | undefined) ?? 'pgd';
  if (method !== 'fgsm' && method !== 'pgd')
    throw usage(`--method must be fgsm or pgd, not ${JSON.stringify(method)}`, 'attack');
  const epsilon = parseAmount(values.epsilon as string | undefined, '--epsilon', 8 / 255, 'attack')!;
  const stepSize = parseAmount(values.step as string | undefined, '--step', undefined, 'attack');
  const steps = parsePositiveInt(values.steps as string | undefined, '--steps', 10, 10000, 'attack');
  const classes = parseClasses(values.class as string | undefined, 'attack');
  const layers = (values.layers as string | undefined)
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const resize = parseResize(values.resize as string | undefined, 'attack');
  const device = parseDevice(values.device as string | undefined, 'attack');
  const out = path.resolve((values.out as string | undefined) ?? 'featscope-out');
  const inputs = await expandInputs(positionals, { skip: out });
  if (classes && classes.length > 1 && classes.length !== inputs.length)
    throw usage(`--class lists ${classes.length} classes for ${inputs.length} images`, 'attack');
  const model = await loadCliModel(values, 'attack', { device });
  try {
    fs.mkdirSync(out, { recursive: true });
    const norm = normalisationOf(model);
    const records: Record<string, unknown>[] = [];
    const sections: AnalysisSection[] = [];
    const failed: { source: string; message: string }[] = [];
    for (const [i, input] of inputs.entries()) {
      let x;
      try {
        x = await preprocess(input.source, { resize, size: norm.size, mean: norm.mean, std: norm.std });
      } catch (err) {
        failed.push({ source: input.source, message: (err as Error).message });
        continue;
      }
      const target = classes ? (classes.length > 1 ? classes[i] : classes[0]) : undefined;
      const r =
        method === 'fgsm'
          ? await fgsm(model, x, { epsilon, classes: target, layers })
          : await pgd(model, x, { epsilon, stepSize, steps, classes: target, layers });
      const subject = path.basename(input.source);
      const chart = await renderDivergenceChart(model, r, { subject });
      const files: Record<string, string> = {};
      const write = async (key: string, suffix: string, png: Buffer) => {
        const f = insideOut(out, `${input.name}.${suffix}`);
        await writeAtomic(f, png);
        files[key] = path.basename(f);
      };
      await write('divergence', 'divergence.png', chart.png);
      const adversarial = await toPng(r, norm);
      await write('adversarial', 'adversarial.png', adversarial);
      const images = [{ png: chart.png, caption: 'Relative L2 change per layer' }];
      if (r.mostDivergent) {
        const grids = await renderAttackGrids(model, x, r);
        await write('grids', 'grids.png', grids.png);
        images.push({ png: grids.png, caption: `${grids.layer}: clean vs attacked feature maps` });
      }
      const before = await sharp(x.images[0].rgb, {
        raw: { width: x.images[0].width, height: x.images[0].height, channels: 3 },
      })
        .png()
        .toBuffer();
      images.unshift({
        png: await sideBySide(before, adversarial),
        caption: 'Model input: clean (left) and attacked (right)',
      });
      records.push({ source: input.source, files, ...summarise(r) });
      const im = r.images[0];
      sections.push({
        heading: subject,
        note: `${r.method.toUpperCase()}: ${im.before.top.name} ${(im.before.top.probability * 100).toFixed(1)}% → ${im.after.top.name} ${(im.after.top.probability * 100).toFixed(1)}% (${im.flipped ? 'flipped' : 'unchanged'}); target ${im.target.name}: ${(im.before.targetProbability * 100).toFixed(2)}% → ${(im.after.targetProbability * 100).toFixed(2)}%`,
        images,
        table: { head: ['layer', 'relative L2 change'], rows: r.layers.map((l) => [l.name, l.divergence]) },
      });
      process.stderr.write(`attack: ${i + 1}/${inputs.length} ${subject}: ${im.flipped ? 'flipped' : 'unchanged'}\n`);
    }
    const summary = {
      command: 'attack',
      model: modelSummary(model),
      options: {
        method,
        epsilon,
        stepSize: method === 'pgd' ? (stepSize ?? epsilon / 4) : undefined,
        steps: method === 'pgd' ? steps : undefined,
        classes,
        layers,
      },
      images: records,
      failed,
    };
    await writeAtomic(insideOut(out, 'attack.json'), `${JSON.stringify(summary, null, 2)}\n`);
    let report: string | undefined;
    if (values.report) {
      report = insideOut(out, 'report.html');
      await writeAnalysisReport(
        report,
        analysisPage(
          model,
          'featscope adversarial paths',
          { method, epsilon: `${(epsilon * 255).toFixed(2)}/255`, steps: method === 'pgd' ? steps : undefined },
          sections,
        ),
        reportAssets,
      );
    }
    if (values.json) process.stdout.write(`${JSON.stringify({ out, report, ...summary }, null, 2)}\n`);
    for (const f of failed) process.stderr.write(`featscope: ${f.source}: ${f.message}\n`);
    return failed.length ? 1 : 0;
  } finally {
    model.dispose();
  }
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
