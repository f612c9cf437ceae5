/**
 * Progress for long runs: a one-line bar with count, rate and ETA on a terminal; plain lines on
 * anything else (tmux logs, CI), one per image, so a log shows exactly what was done.
 */
import { shown } from './term';

export interface ProgressOptions {
  total: number;
  /** Where to draw; default process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Force plain lines (--json, --quiet logs) or the bar; default: bar only on a TTY. */
  tty?: boolean;
  /** Print nothing per item (the final summary still prints). */
  quiet?: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

export class Progress {
  readonly total: number;
  #done = 0;
  #failed = 0;
  #skipped = 0;
  readonly #start = Date.now();
  readonly #stream: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #quiet: boolean;
  #lastDraw = 0;
  #drawn = false;

  constructor(options: ProgressOptions) {
    this.total = options.total;
    this.#stream = options.stream ?? process.stderr;
    this.#tty = options.tty ?? Boolean(this.#stream.isTTY);
    this.#quiet = options.quiet ?? false;
  }

  get done(): number {
    return this.#done;
  }

  get failed(): number {
    return this.#failed;
  }

  /** Items skipped by --resume count as done but not towards the rate. */
  skip(count: number): void {
    this.#skipped += count;
    this.#done += count;
    if (count > 0 && !this.#tty && !this.#quiet) this.#line(`skipped ${count} already finished (--resume)`);
    this.#draw(true);
  }

  tick(label: string, error?: string): void {
    this.#done++;
    if (error) this.#failed++;
    if (this.#tty) {
      if (error) this.#above(`failed ${label}: ${error}`);
      this.#draw(this.#done === this.total);
    } else if (!this.#quiet) {
      const counter = `[${this.#done}/${this.total}]`;
      this.#line(error ? `${counter} failed ${label}: ${error}` : `${counter} ${label}`);
    }
  }

  /** A message that must not be overwritten by the bar. */
  note(text: string): void {
    if (this.#tty) this.#above(text);
    else this.#line(text);
  }

  /** Clear the bar so that the summary starts on a clean line. */
  finish(): void {
    if (this.#tty && this.#drawn) this.#stream.write('\r\x1b[2K');
    this.#drawn = false;
  }

  #rate(): number {
    const seconds = (Date.now() - this.#start) / 1000;
    const worked = this.#done - this.#skipped;
    return seconds > 0 ? worked / seconds : 0;
  }

  #line(text: string): void {
    this.#stream.write(`featscope: ${shown(text)}\n`);
  }

  #above(text: string): void {
    this.#stream.write(`\r\x1b[2K${shown(text)}\n`);
    this.#draw(true);
  }

  #draw(force: boolean): void {
    if (!this.#tty || this.#quiet) return;
    const now = Date.now();
    if (!force && now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const columns = this.#stream.columns || 80;
    const rate = this.#rate();
    const eta = rate > 0 ? (this.total - this.#done) / rate : NaN;
    const counts = `${this.#done}/${this.total}${this.#failed ? ` (${this.#failed} failed)` : ''}`;
    const tail = ` ${counts}  ${rate.toFixed(1)} img/s  ETA ${formatDuration(eta)}`;
    const width = Math.max(10, Math.min(40, columns - tail.length - 3));
    const filled = this.total > 0 ? Math.round((width * this.#done) / this.total) : width;
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    this.#stream.write(`\r\x1b[2K${(bar + tail).slice(0, columns - 1)}`);
    this.#drawn = true;
  }
}
