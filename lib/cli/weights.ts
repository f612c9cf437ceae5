/** `featscope weights`: per-tensor weight histograms with statistics, the first conv's filters, JSON and report. */
import * as fs from 'fs';
import * as path from 'path';
import {
  analysisPage,
  renderFirstConvFilters,
  renderWeightHistograms,
  weightDistributions,
  writeAnalysisReport,
} from '../analysis';
import { loadNoted } from './model-options';
import {
  DEVICE_OPTION,
  MODEL_OPTION,
  parse,
  parseDevice,
  parsePositiveInt,
  parseReportAssets,
  resolveModel,
} from './args';
import { insideOut, writeAtomic } from './files';
import { modelSummary } from './manifest';
import { endAnalysisRun } from './summary';

export const WEIGHTS_HELP = `Usage: featscope weights [options]

Weight distributions: a histogram of every weight tensor with its mean, standard deviation and
share near zero (|w| < 0.001 · max|w|), and the first convolution's filters as RGB tiles.

Options:
  -m, --model FILE     TorchScript model (default: $FEATSCOPE_MODEL, else models/resnet18.pt)
  -l, --layers A,B     only parameters of these modules (and their submodules), e.g. layer1,fc
      --bins N         bins per histogram (default 50)
      --all            draw biases and BatchNorm scales too (default: conv and linear weights)
      --report         also write report.html
      --report-assets HOW
                       inline (default) | linked: the pictures in report_files/ beside it
      --device DEV     auto (default) | cpu | cuda | cuda:N
      --threads N      libtorch's intra-op threads (default: $FEATSCOPE_THREADS, else libtorch's)
  -o, --out DIR        output folder (default: ./featscope-out)
      --json           print the statistics as JSON on stdout
  -h, --help           this help

Output: DIR/weights.png, DIR/first-conv-filters.png, DIR/weights.json, DIR/report.html.

Example:
  featscope weights --report --out out/
`;

export async function weights(argv: string[]): Promise<number> {
  const { values } = parse(
    'weights',
    argv,
    {
      ...MODEL_OPTION,
      ...DEVICE_OPTION,
      layers: { type: 'string', short: 'l' },
      bins: { type: 'string' },
      all: { type: 'boolean' },
      report: { type: 'boolean' },
      'report-assets': { type: 'string' },
      out: { type: 'string', short: 'o' },
      json: { type: 'boolean' },
    },
    false,
  );
  if (values.help) {
    process.stdout.write(WEIGHTS_HELP);
    return 0;
  }
  const reportAssets = parseReportAssets(values['report-assets'], 'weights');
  const bins = parsePositiveInt(values.bins, '--bins', 50, 10000, 'weights');
  const layers = values.layers
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const device = parseDevice(values.device, 'weights');
  const out = path.resolve(values.out ?? 'featscope-out');
  const model = await loadNoted(resolveModel(values.model), { device });
  try {
    fs.mkdirSync(out, { recursive: true });
    process.stderr.write('featscope: writing report…\n');
    const dist = weightDistributions(model, { bins, layers });
    const chart = await renderWeightHistograms(model, dist, {
      tensors: values.all ? 'all' : dist.tensors.some((t) => t.shape.length >= 2) ? 'weights' : 'all',
    });
    await writeAtomic(insideOut(out, 'weights.png'), chart.png);
    let filters: Awaited<ReturnType<typeof renderFirstConvFilters>> | undefined;
    try {
      filters = await renderFirstConvFilters(model);
      await writeAtomic(insideOut(out, 'first-conv-filters.png'), filters.png);
    } catch (err) {
      if ((err as { code?: string }).code !== 'NO_RGB_CONV') throw err;
      process.stderr.write(`featscope: weights: ${(err as Error).message}; no filter picture [NO_RGB_CONV]\n`);
    }
    const tensors = dist.tensors.map((t) => ({
      name: t.name,
      layer: t.layer,
      role: t.role,
      shape: t.shape,
      count: t.count,
      mean: t.mean,
      std: t.std,
      min: t.min,
      max: t.max,
      nearZero: t.nearZero,
      histogram: { edges: Array.from(t.edges), counts: Array.from(t.counts) },
    }));
    const summary = {
      command: 'weights',
      model: modelSummary(model),
      options: { bins, layers },
      files: { histograms: 'weights.png', filters: filters ? 'first-conv-filters.png' : undefined },
      tensors,
    };
    await writeAtomic(insideOut(out, 'weights.json'), `${JSON.stringify(summary)}\n`);
    let report: string | undefined;
    if (values.report) {
      report = insideOut(out, 'report.html');
      await writeAnalysisReport(
        report,
        analysisPage(
          model,
          'featscope weight distributions',
          { bins, layers: layers ?? 'all', tensors: dist.tensors.length },
          [
            {
              heading: 'Histograms',
              images: [{ png: chart.png, caption: 'One panel per tensor; each spans its own [min, max]' }],
            },
            ...(filters
              ? [
                  {
                    heading: `First convolution filters (${filters.layer})`,
                    images: [
                      { png: filters.png, caption: 'Each filter min-max normalised on its own', width: filters.width },
                    ],
                  },
                ]
              : []),
            {
              heading: 'Statistics',
              table: {
                head: ['tensor', 'shape', 'mean', 'std', 'min', 'max', 'near 0'],
                rows: dist.tensors.map((t) => [
                  t.name,
                  t.shape.join('×'),
                  t.mean,
                  t.std,
                  t.min,
                  t.max,
                  `${(t.nearZero * 100).toFixed(2)}%`,
                ]),
              },
            },
          ],
        ),
        reportAssets,
      );
    }
    const files = ['weights.png', ...(filters ? ['first-conv-filters.png'] : []), 'weights.json'].map((f) =>
      insideOut(out, f),
    );
    if (report) files.push(report);
    process.stderr.write(`featscope: weights: ${dist.tensors.length} tensors\n`);
    return endAnalysisRun(
      'weights',
      { json: Boolean(values.json), out, summary: { report, ...summary } },
      { done: 0, skipped: 0, failed: [], interrupted: false },
      files,
    );
  } finally {
    model.dispose();
  }
}
