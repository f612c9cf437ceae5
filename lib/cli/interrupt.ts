/**
 * Ctrl-C for the commands whose work is one computation over all inputs (stats, similarity,
 * maximize): the first Ctrl-C stops at the next check (after the current batch or step) and the
 * command exits 130 without writing partial results under final names; a second Ctrl-C, or
 * SIGTERM, quits at once (as in the batch runner, lib/cli/batch.ts).
 */
import type { Progress } from './progress';

/** Thrown by check() after Ctrl-C; the command catches it and exits 130 (never reaches the user as an error). */
export class Interrupted extends Error {
  constructor() {
    super('interrupted (Ctrl-C)');
    this.name = 'Interrupted';
  }
}

export interface Interrupt {
  /** Throws Interrupted once Ctrl-C came: call it between batches or steps. */
  check(): void;
  readonly stopping: boolean;
  dispose(): void;
}

export function interruptible(progress: Pick<Progress, 'note'>): Interrupt {
  let stopping = false;
  const quitNow = () => {
    process.stderr.write('\nfeatscope: stopped at once; nothing more was written\n');
    process.exit(130);
  };
  const onSigint = () => {
    if (stopping) quitNow();
    stopping = true;
    progress.note('stopping after the current batch (Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', quitNow);
  return {
    check() {
      if (stopping) throw new Interrupted();
    },
    get stopping() {
      return stopping;
    },
    dispose() {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', quitNow);
    },
  };
}
