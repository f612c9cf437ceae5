/** The lines a run ends with: what was done, where it is, and every input that failed. */
import type { BatchOutcome, Failure } from './batch';

export function printFailures(failed: Failure[]): void {
  if (failed.length === 0) return;
  process.stderr.write(`featscope: ${failed.length} input${failed.length === 1 ? '' : 's'} failed:\n`);
  for (const f of failed) process.stderr.write(`  ${f.source}: ${f.message} [${f.code}]\n`);
}

export function finishMessage(verb: string, outcome: BatchOutcome, finished: number, total: number, out: string, report?: string): string {
  const parts = [`${verb} ${outcome.done} image${outcome.done === 1 ? '' : 's'}`];
  if (outcome.skipped) parts.push(`skipped ${outcome.skipped} already finished`);
  if (outcome.failed.length) parts.push(`${outcome.failed.length} failed`);
  let text = `featscope: ${parts.join(', ')}; ${finished} of ${total} in ${out}/manifest.json${report ? ` and ${report}` : ''}\n`;
  if (outcome.interrupted) text += `featscope: interrupted; finished files are complete. Rerun the same command with --resume to do the remaining ${total - finished - outcome.failed.length}.\n`;
  return text;
}
