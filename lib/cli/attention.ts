/** `featscope attention`: ViT attention rollout and per-head class-token attention overlays per image. */
import * as fs from 'fs';
import * as path from 'path';
import { analysisPage, type AnalysisSection, writeAnalysisReport } from '../analysis';
import { attentionLayers, attentionOverlaysOf, type AttentionOverlay, tokenGrid } from '../analysis/attention';
import type { Prediction } from '../analysis/common';
import type { Model } from '../model';
import type { ReportAssets } from '../report';
import type { ColormapName } from '../render';
import { parseColormap, parseDevice, parsePositiveInt, parseReportAssets, parseResize, usage, parseList } from './args';
import { runBatches, type ImageRecordBase } from './batch';
import { insideOut, layerFileNames, writeAtomic } from './files';
import { endsRun, flatRecordPath, runSignature, writeRunSummary } from './image-run';
import { expandInputs, type InputImage } from './inputs';
import { loadCliModel } from './model-options';
import { Progress } from './progress';
import { endRun } from './summary';
import { parseCommand, printHelp } from './command';
import { ATTENTION_COMMAND } from './commands';

interface AttentionRecord extends ImageRecordBase {
  rollout: { file: string; layers: string[]; grid: [number, number]; max: number };
  heads: Array<{ layer: string; file: string; max: number[] }>;
  predictions: Prediction[];
}

export async function attention(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand(ATTENTION_COMMAND, argv);
  if (values.help) return printHelp(ATTENTION_COMMAND);
  const reportAssets = parseReportAssets(values['report-assets'], 'attention');
  if (positionals.length === 0) throw usage('attention needs at least one image, folder or glob', 'attention');
  const top = parsePositiveInt(values.top, '--top', 3, 20, 'attention');
  const colormap = parseColormap(values.colormap, 'attention', '--colormap', 'turbo');
  const resize = parseResize(values.resize, 'attention');
  const batch = parsePositiveInt(values.batch, '--batch', 8, 256, 'attention');
  const device = parseDevice(values.device, 'attention');
  const out = path.resolve(values.out ?? 'featscope-out');
  const inputs = await expandInputs(positionals, { skip: out });
  const model = await loadCliModel(values, 'attention', { device });
  try {
    tokenGrid(model); // NOT_A_TRANSFORMER before any work
    const all = await attentionLayers(model);
    const layers = parseList(values.layers ?? '').map((n) => (n.endsWith('.weights') ? n : `${n}.weights`));
    for (const l of layers)
      if (!all.includes(l))
        throw usage(`--layers: ${l} is not an attention layer of this model; they are ${all.join(', ')}`, 'attention');
    return await attentionWith(model, {
      inputs,
      layers,
      top,
      colormap,
      resize,
      batch,
      reportAssets,
      out,
      ...flags(values),
    });
  } finally {
    model.dispose();
  }
}

function flags(values: Record<string, unknown>) {
  return { report: Boolean(values.report), resume: Boolean(values.resume), json: Boolean(values.json) };
}

async function attentionWith(
  model: Model,
  o: {
    inputs: InputImage[];
    layers: string[];
    top: number;
    colormap: ColormapName;
    resize: 'squash' | 'crop';
    batch: number;
    report: boolean;
    reportAssets: ReportAssets;
    resume: boolean;
    json: boolean;
    out: string;
  },
): Promise<number> {
  const { out, resize, colormap, top } = o;
  fs.mkdirSync(out, { recursive: true });
  const options = { layers: o.layers, resize, colormap };
  const signature = await runSignature(model, { ...options, top });
  const recordPath = flatRecordPath('attention');
  const fileNames = layerFileNames(o.layers.length ? o.layers : await attentionLayers(model));
  const picture = (input: InputImage, suffix: string) => insideOut(out, `${input.name}.${suffix}`);
  const progress = new Progress({ total: o.inputs.length });
  const outcome = await runBatches<AttentionRecord, AttentionOverlay[]>({
    inputs: o.inputs,
    out,
    batch: o.batch,
    resume: o.resume,
    signature,
    model,
    layers: [],
    preprocess: { resize, model },
    progress,
    recordPath,
    imageDir: (dir) => dir,
    fatal: endsRun,
    async forward(m, b) {
      const sources = b.inputs.map((i) => i.source);
      return attentionOverlaysOf(m, b, sources, { layers: o.layers, resize, colormap, top });
    },
    async handle(input, _dir, _image, overlays, i) {
      const r = overlays[i];
      const rolloutFile = picture(input, 'attention-rollout.png');
      await writeAtomic(rolloutFile, r.rollout.png);
      const heads: AttentionRecord['heads'] = [];
      for (const h of r.heads) {
        const file = picture(input, `attention-${fileNames.get(h.layer) ?? h.layer}.png`);
        await writeAtomic(file, h.png);
        heads.push({ layer: h.layer, file: path.basename(file), max: h.maps.map((m) => Math.max(...m)) });
      }
      return {
        source: input.source,
        name: input.name,
        signature,
        rollout: {
          file: path.basename(rolloutFile),
          layers: r.rollout.layers,
          grid: r.rollout.grid,
          max: Math.max(...r.rollout.map),
        },
        heads,
        predictions: r.predictions,
      };
    },
  });
  progress.finish();
  const { records, summary, json } = await writeRunSummary<AttentionRecord>(
    'attention',
    model,
    options,
    { out, inputs: o.inputs, signature, recordPath },
    outcome,
  );
  const files = records.flatMap((r) => [r.rollout.file, ...r.heads.map((h) => h.file)].map((f) => path.join(out, f)));
  files.push(json);
  let report: string | undefined;
  if (o.report) {
    const sections: AnalysisSection[] = [];
    for (const r of records) {
      sections.push({
        heading: path.basename(r.source),
        note: r.source,
        images: [
          {
            png: await fs.promises.readFile(path.join(out, r.rollout.file)),
            caption: `Attention rollout over ${r.rollout.layers.length} layer(s) (heads averaged)`,
          },
          ...(await Promise.all(
            r.heads.map(async (h) => ({
              png: await fs.promises.readFile(path.join(out, h.file)),
              caption: `Class-token attention per head at ${h.layer}`,
            })),
          )),
        ],
        table: {
          head: ['class', 'probability'],
          rows: r.predictions.map((p) => [`${p.name} (${p.class})`, p.probability]),
        },
      });
    }
    report = insideOut(out, 'report.html');
    await writeAnalysisReport(
      report,
      analysisPage(
        model,
        'featscope attention',
        { layers: o.layers.join(', ') || 'last', images: o.inputs.length, resize },
        sections,
      ),
      o.reportAssets,
    );
    files.push(report);
  }
  return endRun({
    command: 'attention',
    json: o.json,
    out,
    total: o.inputs.length,
    resumable: true,
    summary: { report, ...summary },
    outcome,
    files,
  });
}
