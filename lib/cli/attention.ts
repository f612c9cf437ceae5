/** `featscope attention`: ViT attention rollout and per-head class-token attention overlays per image. */
import * as fs from 'fs';
import * as path from 'path';
import { analysisPage, type AnalysisSection, writeAnalysisReport } from '../analysis';
import { attentionLayers, attentionOverlaysOf, type AttentionOverlay, tokenGrid } from '../analysis/attention';
import type { Prediction } from '../analysis/common';
import type { Model } from '../model';
import type { ReportAssets } from '../report';
import type { ColormapName } from '../render';
import {
  DEVICE_OPTION,
  MODEL_OPTION,
  parse,
  parseColormap,
  parseDevice,
  parsePositiveInt,
  parseReportAssets,
  parseResize,
  usage,
} from './args';
import { runBatches, type ImageRecordBase } from './batch';
import { insideOut, layerFileNames, writeAtomic } from './files';
import { endsRun, flatRecordPath, runSignature, writeRunSummary } from './image-run';
import { expandInputs, type InputImage } from './inputs';
import { loadCliModel, modelInputHelp, MODEL_INPUT_OPTIONS } from './model-options';
import { Progress } from './progress';
import { endAnalysisRun } from './summary';

export const ATTENTION_HELP = `Usage: featscope attention <image|folder|glob>... [options]

Vision Transformer attention. featscope captures the attention weights of each
nn.MultiheadAttention call ([N, heads, L, L], named <module>.weights) by rewriting the TorchScript
graph: a second call with need_weights=True, average_attn_weights=False; the model's own output
is unchanged. Per image it draws:
  - attention rollout (Abnar & Zuidema 2020): each layer's weights averaged over heads (the mean),
    0.5·A + 0.5·I for the residual path, rows normalised, multiplied over the layers from the
    first up to the last of --layers; the class token's row over the patches, on the patch grid;
  - for each of --layers: the class token's attention to every patch, one map per head.

Options:
  -m, --model FILE     a ViT exported by scripts/export-model.py (--arch vit_b_16, vit_small, ...)
${modelInputHelp(23)}  -l, --layers A,B     attention layers: <module>.weights or the MultiheadAttention module
                       (default: the last one; \`featscope layers\` lists them)
      --top K          predictions listed under the rollout (default 3)
      --colormap NAME  heatmap colours (default turbo)
      --report         also write report.html
      --report-assets HOW
                       inline (default) | linked: the pictures in report_files/ beside it
      --resize MODE    squash (default) | crop
      --device DEV     auto (default) | cpu | cuda | cuda:N
      --threads N      libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)
      --batch N        images per forward (default 8)
  -o, --out DIR        output folder (default: ./featscope-out)
      --resume         skip images already finished in --out with the same model and options
      --json           print the results as JSON on stdout (progress stays on stderr)
  -h, --help           this help

Output: DIR/<image>.attention-rollout.png, DIR/<image>.attention-<layer>.png (heads),
DIR/attention.json, DIR/report.html; DIR/.featscope/attention/<image>.json for --resume.

Exit status: 0 all done, 1 some images failed (listed at the end, each with its [CODE]),
2 usage error, 130 interrupted (Ctrl-C; finished files are complete, rerun with --resume).

Example:
  featscope attention photo.jpg -m models/vit_b_16.pt --layers encoder.layers.encoder_layer_11.self_attention --report
`;

interface AttentionRecord extends ImageRecordBase {
  rollout: { file: string; layers: string[]; grid: [number, number]; max: number };
  heads: Array<{ layer: string; file: string; max: number[] }>;
  predictions: Prediction[];
}

export async function attention(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'attention',
    argv,
    {
      ...MODEL_OPTION,
      ...MODEL_INPUT_OPTIONS,
      ...DEVICE_OPTION,
      layers: { type: 'string', short: 'l' },
      top: { type: 'string' },
      colormap: { type: 'string' },
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
    process.stdout.write(ATTENTION_HELP);
    return 0;
  }
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
    const layers = (values.layers ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((n) => (n.endsWith('.weights') ? n : `${n}.weights`));
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
  return endAnalysisRun(
    'attention',
    { json: o.json, out, total: o.inputs.length, resumable: true, summary: { report, ...summary } },
    outcome,
    files,
  );
}
