/**
 * Ctrl-C, the one handler of every long run: the first Ctrl-C asks the run to stop at its next
 * check (after the current image, batch, step or job), and the command exits 130 without writing
 * partial results under final names; a second Ctrl-C quits at once. SIGTERM comes from
 * supervisors (docker stop, systemd, CI timeouts) that want the process gone, not the current
 * image finished, so it quits at once like a second Ctrl-C (`featscope run` treats it as a first).
 * Quitting at once is process.exit, which waits at most FEATSCOPE_EXIT_TIMEOUT_MS (10 s by
 * default) for a forward still inside libtorch (lib/native.ts), then ends the process anyway.
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
  /** Ctrl-C came, or stop() was called. */
  readonly stopping: boolean;
  /** Stop as Ctrl-C would (an error that ends the run); a Ctrl-C after it quits at once. */
  stop(): void;
  dispose(): void;
}

export interface InterruptOptions {
  /** Said at the first Ctrl-C. */
  stopping?: string;
  /** Written to stderr before quitting at once ('' for nothing). */
  quit?: string;
  /** SIGTERM: quit at once (default), or stop like the first Ctrl-C. */
  sigterm?: 'quit' | 'stop';
}

export function interruptible(progress: Pick<Progress, 'note'>, options: InterruptOptions = {}): Interrupt {
  const {
    stopping: stoppingNote = 'stopping after the current batch (Ctrl-C again to quit at once)',
    quit = '\nfeatscope: stopped at once; nothing more was written\n',
    sigterm = 'quit',
  } = options;
  let stopping = false;
  const quitNow = () => {
    if (quit) process.stderr.write(quit);
    process.exit(130);
  };
  const onSigint = () => {
    if (stopping) quitNow();
    stopping = true;
    progress.note(stoppingNote);
  };
  const onSigterm = sigterm === 'quit' ? quitNow : onSigint;
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  return {
    check() {
      if (stopping) throw new Interrupted();
    },
    get stopping() {
      return stopping;
    },
    stop() {
      stopping = true;
    },
    dispose() {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
    },
  };
}
