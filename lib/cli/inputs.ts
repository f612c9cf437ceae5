/**
 * Turning `<image|folder|glob>...` into a list of image paths. Only paths are held (not images),
 * so a folder of 10,000 photos costs a few hundred kilobytes here.
 */
import * as fs from 'fs';
import * as path from 'path';
import { FeatscopeError } from '../errors';
import { safeName, shortHash } from './files';
import { VIDEO_EXTENSIONS } from '../video';

/** Extensions taken from folders and globs; files named explicitly are tried whatever their name. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic'];

export interface InputImage {
  /** The path as found (relative to the working directory when given so). */
  source: string;
  /** Sanitised, unique name for its output folder. */
  name: string;
}

function isImageName(file: string, videos = false): boolean {
  const ext = path.extname(file).toLowerCase();
  return IMAGE_EXTENSIONS.includes(ext) || (videos && VIDEO_EXTENSIONS.includes(ext));
}

function hasMagic(arg: string): boolean {
  return /[*?[]/.test(arg);
}

/** Files under `dir` (recursively, hidden entries and the `skip` folder skipped), sorted. */
async function walk(dir: string, out: string[], skip?: string, videos = false): Promise<void> {
  if (skip !== undefined && path.resolve(dir) === skip) return;
  const entries = await fs.promises.readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const full = path.join(dir, e.name);
    if (e.isDirectory()) await walk(full, out, skip, videos);
    else if (e.isFile() && isImageName(e.name, videos)) out.push(full);
  }
}

/** One character class `[...]` at `p[i]` (i at '['): [matches, index after ']'], or null if unclosed. */
function matchClass(p: string, i: number, c: string): [boolean, number] | null {
  const end = p.indexOf(']', i + 2); // a ']' right after '[' (or '[!') is a member
  if (end < 0) return null;
  let j = i + 1;
  const negate = p[j] === '!' || p[j] === '^';
  if (negate) j++;
  let hit = false;
  for (; j < end; j++) {
    if (p[j + 1] === '-' && j + 2 < end) {
      if (c >= p[j] && c <= p[j + 2]) hit = true;
      j += 2;
    } else if (p[j] === c) hit = true;
  }
  return [hit !== negate, end + 1];
}

/**
 * `*`, `?` and `[abc]` within one path segment. Greedy with one backtrack point (the last `*`):
 * O(len(text) x len(pattern)) at worst, never exponential (a regular expression with many `*`
 * took over 60 s on `*a*a*a*a*a*a*a*a*b.png`).
 */
export function matchSegment(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    const pc = pattern[p];
    if (pc === '*') {
      starP = ++p;
      starT = t;
      continue;
    }
    if (p < pattern.length) {
      if (pc === '?') {
        p++;
        t++;
        continue;
      }
      if (pc === '[') {
        const m = matchClass(pattern, p, text[t]);
        if (m === null ? text[t] === '[' : m[0]) {
          p = m === null ? p + 1 : m[1];
          t++;
          continue;
        }
      } else if (pc === text[t]) {
        p++;
        t++;
        continue;
      }
    }
    if (starP < 0) return false;
    p = starP;
    t = ++starT;
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** A path pattern (segments joined by '/', `**` = zero or more folders) against a relative path. */
export function matchGlob(pattern: string, file: string): boolean {
  const ps = pattern.split('/');
  const fs_ = file.split('/');
  let p = 0;
  let f = 0;
  let starP = -1;
  let starF = 0;
  while (f < fs_.length) {
    if (ps[p] === '**') {
      starP = ++p;
      starF = f;
      continue;
    }
    if (p < ps.length && matchSegment(ps[p], fs_[f])) {
      p++;
      f++;
      continue;
    }
    if (starP < 0) return false;
    p = starP;
    f = ++starF;
  }
  while (ps[p] === '**') p++;
  return p === ps.length;
}

async function expandGlob(arg: string, out: string[], skip?: string, videos = false): Promise<number> {
  const posix = arg.split(path.sep).join('/');
  const segments = posix.split('/');
  const firstMagic = segments.findIndex(hasMagic);
  const base = segments.slice(0, firstMagic).join('/') || (posix.startsWith('/') ? '/' : '.');
  const pattern = segments.slice(firstMagic).join('/');
  const found: string[] = [];
  try {
    await walk(base, found, skip, videos);
  } catch {
    return 0;
  }
  let n = 0;
  for (const f of found) {
    const rel = path.relative(base, f).split(path.sep).join('/');
    if (matchGlob(pattern, rel)) {
      out.push(f);
      n++;
    }
  }
  return n;
}

/**
 * Files, folders (recursive, image extensions only) and globs, in the order given. A missing file
 * is kept: it fails like any bad image, after the others are done. A folder or glob that matches
 * nothing is a usage error. Folders and globs never descend into `options.skip` (the output
 * folder: a run must not read its own pictures back as inputs); files named explicitly are kept.
 * With `options.videos` (render), folders and globs also take video clips (lib/video.ts).
 */
export async function expandInputs(
  args: string[],
  options: { skip?: string; videos?: boolean } = {},
): Promise<InputImage[]> {
  const videos = options.videos ?? false;
  const skip = options.skip === undefined ? undefined : path.resolve(options.skip);
  const paths: string[] = [];
  for (const arg of args) {
    let stat: fs.Stats | undefined;
    try {
      stat = await fs.promises.stat(arg);
    } catch {
      stat = undefined;
    }
    if (stat?.isDirectory()) {
      const before = paths.length;
      await walk(arg, paths, skip, videos);
      if (paths.length === before) {
        const own =
          skip !== undefined && path.resolve(arg) === skip
            ? ' (it is the output folder, which is never read as input)'
            : '';
        throw new FeatscopeError(
          'NO_INPUTS',
          `folder ${JSON.stringify(arg)} holds no images${own} (looked for ${IMAGE_EXTENSIONS.join(' ')})`,
        );
      }
    } else if (!stat && hasMagic(arg)) {
      if ((await expandGlob(arg, paths, skip, videos)) === 0)
        throw new FeatscopeError('NO_INPUTS', `no images match ${JSON.stringify(arg)}`);
    } else {
      paths.push(arg);
    }
  }
  return nameInputs([...new Set(paths)]);
}

/** Output folder names: the file's stem, sanitised; colliding stems get a hash of the full path. */
export function nameInputs(paths: string[]): InputImage[] {
  const stems = paths.map((p) => safeName(path.basename(p, path.extname(p)), 'image'));
  const counts = new Map<string, number>();
  for (const s of stems) counts.set(s, (counts.get(s) ?? 0) + 1);
  // report_files: the linked report's pictures (--report-assets linked), a folder replaced whole.
  const reserved = new Set(['manifest.json', 'report.html', 'report_files']);
  return paths.map((p, i) => {
    const stem = stems[i];
    const name =
      (counts.get(stem) ?? 0) > 1 || reserved.has(stem.toLowerCase()) ? `${stem}-${shortHash(path.resolve(p))}` : stem;
    return { source: p, name };
  });
}
