/**
 * Writing under --out only: names derived from inputs or layers are sanitised, every path is
 * checked to stay inside the output folder, and files are written to a temporary name and
 * renamed, so an interrupted run never leaves a half-written file under a final name.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { FeatscopeError } from '../errors';
import { cliError } from './codes';

// The atomic-write helpers live in lib/fsutil (shared with lib/report); re-exported for the CLI's callers.
export { atomicStream, isTempName, removeStaleTemps, writeAtomic } from '../fsutil';

/** A file-name-safe form of `name`: [A-Za-z0-9._-] only, no leading dot, at most 80 characters. */
export function safeName(name: string, fallback = 'item'): string {
  let s = name
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._]+/, '')
    .replace(/_+$/, '');
  if (s.length > 80) s = s.slice(0, 80);
  return s || fallback;
}

/** A layer name as a file name: `layer1.0.relu#1` -> `layer1.0.relu_call1`. */
export function layerFileName(layer: string): string {
  return safeName(layer.replace(/#(\d+)$/, '_call$1'), 'layer');
}

/** Picture kinds written beside a layer's grid (`<base><kind>.png`), and names taken in an image's folder. */
const KIND_SUFFIXES = ['.overlay', '.top'];
const TAKEN = new Set(['input', 'record', 'manifest', 'report']);

/**
 * File bases for the layers of one run, unique per layer (case-insensitively, for macOS and
 * Windows) whatever the module names: a name that sanitising changed (`a/b`), that collides with
 * another (`a/b` and `a_b`), with a fixed file (`input`), or that ends like a picture kind
 * (`x.overlay`, whose grid would be `x`'s overlay) gets `-` and a hash of the full name, which no
 * clean module name can carry (PyTorch module names have no `-`).
 */
export function layerFileNames(layers: readonly string[]): Map<string, string> {
  const unique = [...new Set(layers)];
  const bases = unique.map(layerFileName);
  const count = new Map<string, number>();
  for (const b of bases) count.set(b.toLowerCase(), (count.get(b.toLowerCase()) ?? 0) + 1);
  const out = new Map<string, string>();
  unique.forEach((name, i) => {
    const b = bases[i];
    const lower = b.toLowerCase();
    const clean = b === name.replace(/#(\d+)$/, '_call$1');
    const ambiguous =
      !clean || count.get(lower)! > 1 || TAKEN.has(lower) || KIND_SUFFIXES.some((k) => lower.endsWith(k));
    out.set(name, ambiguous ? `${b.slice(0, 70)}-${shortHash(name)}` : b);
  });
  return out;
}

/** Short stable hash, to tell apart inputs whose sanitised names collide. */
export function shortHash(text: string): string {
  return createHash('sha1').update(text).digest('hex').slice(0, 8);
}

/**
 * What --resume compares besides the model's path: its size and a SHA-1 of its content, so that
 * a model file replaced under the same name (untrained weights, then trained ones) redoes every
 * image. Reads the whole file once (about 0.1 s for ResNet-18's 45 MB).
 */
export async function modelFingerprint(file: string): Promise<string> {
  const hash = createHash('sha1');
  let size = 0;
  // 1 MiB reads: 45 chunks for ResNet-18 rather than 700.
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    size += (chunk as Buffer).length;
    hash.update(chunk as Buffer);
  }
  return `${size}:${hash.digest('hex')}`;
}

/**
 * `out` joined with `parts`; refuses anything that would resolve outside `out`, and any symbolic
 * link on the way below `out` (a folder or the file itself): featscope creates none there, so a
 * link is planted, and following it would put pictures wherever it points. `out` itself may be a
 * link: the user named it.
 */
export function insideOut(out: string, ...parts: string[]): string {
  const root = path.resolve(out);
  const full = path.resolve(root, ...parts);
  if (full !== root && !full.startsWith(root + path.sep)) {
    throw cliError('UNSAFE_PATH', `refusing to write ${JSON.stringify(full)}: it is outside the output folder ${root}`);
  }
  let at = root;
  for (const part of path.relative(root, full).split(path.sep).filter(Boolean)) {
    at = path.join(at, part);
    const st = fs.lstatSync(at, { throwIfNoEntry: false });
    if (!st) break; // not there yet: featscope makes it
    if (st.isSymbolicLink())
      throw cliError(
        'UNSAFE_PATH',
        `refusing to write through ${JSON.stringify(at)}: it is a symbolic link inside the output folder ${root}, which featscope did not make; remove it, or choose another --out`,
      );
  }
  return full;
}

/**
 * A file a shard's manifest or state names, resolved inside that shard's folder: a relative path
 * that stays inside it, also once symbolic links are followed. Anything else (an absolute path,
 * `..`, a link out) is refused: the merge never reads or copies a file from elsewhere.
 */
export function insideShard(dir: string, rel: unknown, what: string): string {
  const refuse = (why: string) =>
    new FeatscopeError(
      'MERGE_INVALID',
      `${dir}: ${what} ${JSON.stringify(rel)} ${why}; a shard names only files inside its own folder: rerun that shard`,
    );
  if (typeof rel !== 'string' || rel === '') throw refuse('is not a file name');
  if (path.isAbsolute(rel)) throw refuse('is an absolute path');
  const full = path.resolve(dir, rel);
  const within = (base: string, p: string) => {
    const r = path.relative(base, p);
    return r !== '' && !r.startsWith('..') && !path.isAbsolute(r);
  };
  if (!within(dir, full)) throw refuse('points outside the shard folder');
  let real: string | undefined;
  try {
    real = fs.realpathSync(full);
  } catch {
    real = undefined; // not there: the reader says so
  }
  if (real !== undefined && !within(fs.realpathSync(dir), real)) throw refuse('is a link to outside the shard folder');
  return full;
}
