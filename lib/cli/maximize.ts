/** `featscope maximize`: feature visualisation by optimisation, one picture per channel. */
import * as fs from 'fs';
import * as path from 'path';
import {
  analysisPage,
  featureVisualization,
  featureVisualizations,
  renderFeatureVisualization,
  type AnalysisSection,
  type FeatureVisResult,
  writeAnalysisReport,
} from '../analysis';
import { loadNoted } from './model-options';
import { parseDevice, parsePositiveInt, parseReportAssets, resolveModel, usage, parseList } from './args';
import { insideOut, layerFileNames, writeAtomic } from './files';
import { modelSummary } from './manifest';
import { interruptible, Interrupted } from './interrupt';
import { Progress } from './progress';
import { endRun } from './summary';
import { parseCommand, printHelp } from './command';
import { MAXIMIZE_COMMAND } from './commands';

export async function maximize(argv: string[]): Promise<number> {
  const { values } = parseCommand(MAXIMIZE_COMMAND, argv);
  if (values.help) return printHelp(MAXIMIZE_COMMAND);
  const reportAssets = parseReportAssets(values['report-assets'], 'maximize');
  const layer = values.layer?.trim();
  if (!layer) throw usage('maximize needs --layer NAME (`featscope layers` lists them)', 'maximize');
  const channelsArg = values.channels;
  if (channelsArg !== undefined && !/^\d+(,\d+)*$/.test(channelsArg.trim())) {
    throw usage(
      `--channels takes channel indices separated by commas (12 or 12,40), not ${JSON.stringify(channelsArg)}`,
      'maximize',
    );
  }
  const channels: number[] | undefined = channelsArg ? parseList(channelsArg).map(Number) : undefined;
  const batch = parsePositiveInt(values.batch, '--batch', 16, 256, 'maximize');
  const steps = parsePositiveInt(values.steps, '--steps', 128, 100000, 'maximize');
  const size = values.size === undefined ? undefined : parsePositiveInt(values.size, '--size', 224, 2048, 'maximize');
  const lr = values.lr === undefined ? undefined : Number(values.lr);
  if (lr !== undefined && !(lr > 0 && lr <= 10))
    throw usage(`--lr takes a number above 0, at most 10, not ${JSON.stringify(values.lr)}`, 'maximize');
  const seed = values.seed === undefined ? 0 : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0)
    throw usage(`--seed takes a non-negative integer, not ${JSON.stringify(values.seed)}`, 'maximize');
  const device = parseDevice(values.device, 'maximize');
  const out = path.resolve(values.out ?? 'featscope-out');
  const model = await loadNoted(resolveModel(values.model), { device });
  const progress = new Progress({ total: channels?.length ?? 1 });
  const interrupt = interruptible(progress);
  try {
    const records: Record<string, unknown>[] = [];
    const sections: AnalysisSection[] = [];
    const groups: (number[] | undefined)[] = [];
    if (channels) for (let i = 0; i < channels.length; i += batch) groups.push(channels.slice(i, i + batch));
    else groups.push(undefined);
    const results: FeatureVisResult[] = [];
    for (const group of groups) {
      const what = group === undefined ? layer : `${layer} channel${group.length > 1 ? 's' : ''} ${group.join(',')}`;
      const onStep = (step: number) => {
        if ((step + 1) % 32 === 0) progress.note(`maximize: ${what}: step ${step + 1}/${steps}`);
        interrupt.check();
      };
      const common = { layer, steps, size, lr, seed, onStep };
      results.push(
        ...(group === undefined
          ? [await featureVisualization(model, common)]
          : await featureVisualizations(model, { ...common, channels: group })),
      );
    }
    // The output folder only now: a bad layer (a typo, a part that does not exist, a module with
    // several parts) is refused by the first backward, and an interrupted run leaves nothing.
    fs.mkdirSync(out, { recursive: true });
    progress.note('writing report…');
    const files: string[] = [];
    for (const r of results) {
      const channel = r.channel;
      const what = channel === undefined ? layer : `${layer} channel ${channel}`;
      const pic = await renderFeatureVisualization(model, r);
      const file = insideOut(
        out,
        `maximize-${layerFileNames([layer]).get(layer)!}${channel === undefined ? '' : `-c${channel}`}.png`,
      );
      await writeAtomic(file, pic.png);
      files.push(file);
      records.push({
        layer,
        channel,
        file: path.basename(file),
        objective: r.objective.map((v) => Number(v.toPrecision(6))),
      });
      sections.push({
        heading: what,
        images: [
          {
            png: pic.png,
            caption: `mean activation ${r.objective[0].toPrecision(3)} → ${r.objective[r.objective.length - 1].toPrecision(3)} in ${steps} steps`,
          },
        ],
      });
    }
    const summary = {
      command: 'maximize',
      model: modelSummary(model),
      options: { layer, steps, size, lr, seed, batch },
      results: records,
    };
    await writeAtomic(insideOut(out, 'maximize.json'), `${JSON.stringify(summary, null, 2)}\n`);
    files.push(insideOut(out, 'maximize.json'));
    let report: string | undefined;
    if (values.report) {
      report = insideOut(out, 'report.html');
      await writeAnalysisReport(
        report,
        analysisPage(model, 'featscope feature visualisation', { layer, steps }, sections),
        reportAssets,
      );
    }
    if (report) files.push(report);
    return endRun({
      command: 'maximize',
      json: Boolean(values.json),
      out,
      summary: { report, ...summary },
      outcome: { done: records.length, skipped: 0, failed: [], interrupted: false },
      files,
    });
  } catch (err) {
    if (!(err instanceof Interrupted)) throw err;
    return endRun({ command: 'maximize', stopped: true });
  } finally {
    interrupt.dispose();
    model.dispose();
  }
}
