/** The lines a run ends with: what was done, where it is, and every input that failed. */
import type { BatchOutcome, Failure } from './batch';
import { shown } from './term';
import { asCode } from './codes';
import { FeatscopeError } from '../errors';
import { USAGE_CODES } from './args';

function printFailures(failed: Failure[]): void {
  if (failed.length === 0) return;
  process.stderr.write(`featscope: ${failed.length} input${failed.length === 1 ? '' : 's'} failed:\n`);
  for (const f of failed) process.stderr.write(`  ${shown(f.source)}: ${shown(f.message)} [${f.code}]\n`);
}

/** What a run did with its inputs. */
export interface RunOutcome {
  done: number;
  skipped: number;
  failed: Failure[];
  interrupted: boolean;
}

/**
 * How a run ends: stopped by Ctrl-C before it wrote anything (stats, similarity, maximize,
 * concepts); a manifest over its images (render, export); or the files of an analysis (gradcam,
 * attack, attention, similarity, stats, concepts, maximize, weights), whose `summary` --json prints.
 */
export type RunEnd =
  | { command: string; stopped: true }
  | {
      command: string;
      json: boolean;
      out: string;
      total: number;
      outcome: BatchOutcome;
      /** The closing line's verb: rendered, exported. */
      verb: string;
      manifest: string;
      finished: number;
      report?: string;
      /** Video clips among the inputs (render): those rendered, counted in outcome.done, and their frames. */
      clips?: { done: number; frames: number };
    }
  | {
      command: string;
      json: boolean;
      out: string;
      total?: number;
      outcome: RunOutcome;
      files: string[];
      summary: Record<string, unknown>;
      /** --resume can finish the rest (said when interrupted). */
      resumable?: boolean;
    };

/** The exit status of a run: 130 interrupted, 1 some inputs failed, 0 all fine. */
function exitCodeOf(outcome: { interrupted: boolean; failed: unknown[] }): number {
  return outcome.interrupted ? 130 : outcome.failed.length > 0 ? 1 : 0;
}

/**
 * The end of every run: the exit status (130 interrupted, 1 some inputs failed, 0), with --json
 * the run as one JSON object on stdout, then on stderr the failures (each with its [CODE]) and the
 * closing lines that say what was written where.
 */
export function endRun(end: RunEnd): number {
  if ('stopped' in end) {
    process.stderr.write(
      `featscope: ${end.command}: interrupted (Ctrl-C); nothing was written. Rerun the command to do it all.\n`,
    );
    return 130;
  }
  const { outcome } = end;
  const code = exitCodeOf(outcome);
  if ('manifest' in end) {
    const { json, out, total, manifest, report, finished, clips } = end;
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ out, manifest, report, inputs: total, done: outcome.done, ...(clips ? { clips } : {}), skipped: outcome.skipped, finished, failed: outcome.failed, interrupted: outcome.interrupted, exitCode: code }, null, 2)}\n`,
      );
    }
    printFailures(outcome.failed);
    const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
    const images = outcome.done - (clips?.done ?? 0);
    const parts = [
      clips?.done
        ? `${end.verb} ${images ? `${plural(images, 'image')} and ` : ''}${plural(clips.done, 'clip')} (${plural(clips.frames, 'frame')})`
        : `${end.verb} ${plural(outcome.done, 'image')}`,
    ];
    if (outcome.skipped) parts.push(`skipped ${outcome.skipped} already finished`);
    if (outcome.failed.length) parts.push(`${outcome.failed.length} failed`);
    let text = `featscope: ${parts.join(', ')}; ${finished} of ${total} in ${shown(out)}/manifest.json${report ? ` and ${shown(report)}` : ''}\n`;
    if (outcome.interrupted)
      text += `featscope: interrupted; finished files are complete. Rerun the same command with --resume to do the remaining ${total - finished - outcome.failed.length}.\n`;
    process.stderr.write(text);
    return code;
  }
  const { json, out, total, files } = end;
  if (json)
    process.stdout.write(`${JSON.stringify({ out, ...end.summary, written: files, exitCode: code }, null, 2)}\n`);
  printFailures(outcome.failed);
  const parts: string[] = [];
  if (total !== undefined) {
    parts.push(`${outcome.done} of ${total} image${total === 1 ? '' : 's'} done`);
    if (outcome.skipped) parts.push(`${outcome.skipped} skipped as already finished (--resume)`);
    if (outcome.failed.length) parts.push(`${outcome.failed.length} failed`);
  }
  const n = `${files.length} file${files.length === 1 ? '' : 's'}`;
  const listed = outcome.skipped ? `${n} (some from an earlier run)` : `wrote ${n}`;
  let text = `featscope: ${end.command}: ${parts.length ? `${parts.join(', ')}; ` : ''}${listed}${files.length ? ':' : ''}\n`;
  for (const f of files) text += `  ${f}\n`;
  if (outcome.interrupted)
    text += end.resumable
      ? `featscope: interrupted; finished files are complete. Rerun the same command with --resume to do the rest.\n`
      : `featscope: interrupted; the files above are complete but cover only the images done.\n`;
  process.stderr.write(text);
  return code;
}

/** The analyses' failed images (`code` optional there) as the runner's failures (`[CODE]` always shown). */
export function asFailures(failed: Array<{ source: string; code?: string; message: string }>): Failure[] {
  return failed.map((f) => ({ source: f.source, code: asCode(f.code), message: f.message }));
}

/**
 * An error that ended a command, on stderr as `featscope: [where: ]<message> [<code>]` (no stack
 * unless FEATSCOPE_DEBUG is set); its exit status: 2 for a usage error, else 1.
 */
export function reportError(err: unknown, where?: string): number {
  const at = where ? `${shown(where)}: ` : '';
  if (err instanceof FeatscopeError) {
    process.stderr.write(`featscope: ${at}${shown(err.message)} [${err.code}]\n`);
    if (process.env.FEATSCOPE_DEBUG) process.stderr.write(`${err.stack}\n`);
    return USAGE_CODES.has(err.code) ? 2 : 1;
  }
  process.stderr.write(
    `featscope: ${at}unexpected error: ${shown(err instanceof Error ? ((process.env.FEATSCOPE_DEBUG ? err.stack : err.message) ?? '') : String(err))}\n`,
  );
  return 1;
}
