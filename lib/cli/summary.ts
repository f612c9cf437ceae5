/** The lines a run ends with: what was done, where it is, and every input that failed. */
import type { BatchOutcome, Failure } from './batch';
import { shown } from './term';

function printFailures(failed: Failure[]): void {
  if (failed.length === 0) return;
  process.stderr.write(`featscope: ${failed.length} input${failed.length === 1 ? '' : 's'} failed:\n`);
  for (const f of failed) process.stderr.write(`  ${shown(f.source)}: ${shown(f.message)} [${f.code}]\n`);
}

function finishMessage(
  verb: string,
  outcome: BatchOutcome,
  finished: number,
  total: number,
  out: string,
  report?: string,
): string {
  const parts = [`${verb} ${outcome.done} image${outcome.done === 1 ? '' : 's'}`];
  if (outcome.skipped) parts.push(`skipped ${outcome.skipped} already finished`);
  if (outcome.failed.length) parts.push(`${outcome.failed.length} failed`);
  let text = `featscope: ${parts.join(', ')}; ${finished} of ${total} in ${shown(out)}/manifest.json${report ? ` and ${shown(report)}` : ''}\n`;
  if (outcome.interrupted)
    text += `featscope: interrupted; finished files are complete. Rerun the same command with --resume to do the remaining ${total - finished - outcome.failed.length}.\n`;
  return text;
}

/**
 * End a batch run (render, export): the exit code (130 interrupted, 1 some failed, 0), with
 * --json the run as one JSON object on stdout, then the failures and the closing line on stderr.
 */
export function endBatchRun(
  verb: string,
  o: { json: boolean; out: string; total: number },
  outcome: BatchOutcome,
  finished: number,
  manifest: string,
  report?: string,
): number {
  const code = exitCodeOf(outcome);
  if (o.json) {
    process.stdout.write(
      `${JSON.stringify({ out: o.out, manifest, report, inputs: o.total, done: outcome.done, skipped: outcome.skipped, finished, failed: outcome.failed, interrupted: outcome.interrupted, exitCode: code }, null, 2)}\n`,
    );
  }
  printFailures(outcome.failed);
  process.stderr.write(finishMessage(verb, outcome, finished, o.total, o.out, report));
  return code;
}

/** The exit status of a run: 130 interrupted, 1 some inputs failed, 0 all fine. */
export function exitCodeOf(outcome: { interrupted: boolean; failed: unknown[] }): number {
  return outcome.interrupted ? 130 : outcome.failed.length > 0 ? 1 : 0;
}

/**
 * End an analysis run (gradcam, attack, similarity, stats, maximize, weights): the exit code, with
 * --json the command's summary (plus the files written and the exit code) on stdout, then the
 * failures and closing lines on stderr that name every file written.
 */
export function endAnalysisRun(
  command: string,
  o: { json: boolean; out: string; total?: number; resumable?: boolean; summary: Record<string, unknown> },
  outcome: { done: number; skipped: number; failed: Failure[]; interrupted: boolean },
  files: string[],
): number {
  const code = exitCodeOf(outcome);
  if (o.json)
    process.stdout.write(`${JSON.stringify({ out: o.out, ...o.summary, written: files, exitCode: code }, null, 2)}\n`);
  printFailures(outcome.failed);
  const parts: string[] = [];
  if (o.total !== undefined) {
    parts.push(`${outcome.done} of ${o.total} image${o.total === 1 ? '' : 's'} done`);
    if (outcome.skipped) parts.push(`${outcome.skipped} skipped as already finished (--resume)`);
    if (outcome.failed.length) parts.push(`${outcome.failed.length} failed`);
  }
  const n = `${files.length} file${files.length === 1 ? '' : 's'}`;
  const listed = outcome.skipped ? `${n} (some from an earlier run)` : `wrote ${n}`;
  let text = `featscope: ${command}: ${parts.length ? `${parts.join(', ')}; ` : ''}${listed}${files.length ? ':' : ''}\n`;
  for (const f of files) text += `  ${f}\n`;
  if (outcome.interrupted)
    text += o.resumable
      ? `featscope: interrupted; finished files are complete. Rerun the same command with --resume to do the rest.\n`
      : `featscope: interrupted; the files above are complete but cover only the images done.\n`;
  process.stderr.write(text);
  return code;
}

/** The analyses' failed images (`code` optional there) as the runner's failures (`[CODE]` always shown). */
export function asFailures(failed: Array<{ source: string; code?: string; message: string }>): Failure[] {
  return failed.map((f) => ({ source: f.source, code: f.code ?? 'INTERNAL', message: f.message }));
}

/** A run stopped by Ctrl-C before it wrote anything (stats, similarity, maximize): exit 130. */
export function endInterrupted(command: string): number {
  process.stderr.write(
    `featscope: ${command}: interrupted (Ctrl-C); nothing was written. Rerun the command to do it all.\n`,
  );
  return 130;
}
