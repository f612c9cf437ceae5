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
import { parseDevice, parsePositiveInt, parseReportAssets, resolveModel, parseList } from './args';
import { insideOut, writeAtomic } from './files';
import { modelSummary } from './manifest';
import { endRun } from './summary';
import { parseCommand, printHelp } from './command';
import { WEIGHTS_COMMAND } from './commands';

export async function weights(argv: string[]): Promise<number> {
  const { values } = parseCommand(WEIGHTS_COMMAND, argv);
  if (values.help) return printHelp(WEIGHTS_COMMAND);
  const reportAssets = parseReportAssets(values['report-assets'], 'weights');
  const bins = parsePositiveInt(values.bins, '--bins', 50, 10000, 'weights');
  const layers = values.layers === undefined ? undefined : parseList(values.layers);
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
    return endRun({
      command: 'weights',
      json: Boolean(values.json),
      out,
      summary: { report, ...summary },
      outcome: { done: 0, skipped: 0, failed: [], interrupted: false },
      files,
    });
  } finally {
    model.dispose();
  }
}
