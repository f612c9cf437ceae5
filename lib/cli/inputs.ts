/**
 * Turning `<image|folder|glob>...` into a list of image paths. Only paths are held (not images),
 * so a folder of 10,000 photos costs a few hundred kilobytes here.
 */
import * as fs from 'fs';
import * as path from 'path';
import { FeatscopeError } from '../errors';
import { safeName, shortHash } from './files';

/** Extensions taken from folders and globs; files named explicitly are tried whatever their name. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic'];

export interface InputImage {
  /** The path as found (relative to the working directory when given so). */
  source: string;
  /** Sanitised, unique name for its output folder. */
  name: string;
}

function isImageName(file: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(file).toLowerCase());
}

function hasMagic(arg: string): boolean {
  return /[*?[]/.test(arg);
}

/** Files under `dir` (recursively, hidden entries skipped), sorted. */
async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await fs.promises.readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const full = path.join(dir, e.name);
    if (e.isDirectory()) await walk(full, out);
    else if (e.isFile() && isImageName(e.name)) out.push(full);
  }
}

/** A glob segment or path pattern (`*`, `?`, `[abc]`, `**`) as a regular expression. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        // `**/` matches zero or more folders
        if (pattern[i + 2] === '/') {
          re += '(?:[^/]*/)*';
          i += 2;
        } else {
          re += '.*';
          i += 1;
        }
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${pattern.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

async function expandGlob(arg: string, out: string[]): Promise<number> {
  const posix = arg.split(path.sep).join('/');
  const segments = posix.split('/');
  const firstMagic = segments.findIndex(hasMagic);
  const base = segments.slice(0, firstMagic).join('/') || (posix.startsWith('/') ? '/' : '.');
  const matcher = globToRegExp(segments.slice(firstMagic).join('/'));
  const found: string[] = [];
  try {
    await walk(base, found);
  } catch {
    return 0;
  }
  let n = 0;
  for (const f of found) {
    const rel = path.relative(base, f).split(path.sep).join('/');
    if (matcher.test(rel)) {
      out.push(f);
      n++;
    }
  }
  return n;
}

/**
 * Files, folders (recursive, image extensions only) and globs, in the order given. A missing file
 * is kept: it fails like any bad image, after the others are done. A folder or glob that matches
 * nothing is a usage error.
 */
export async function expandInputs(args: string[]): Promise<InputImage[]> {
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
      await walk(arg, paths);
      if (paths.length === before) {
        throw new FeatscopeError('NO_INPUTS', `folder ${JSON.stringify(arg)} holds no images (looked for ${IMAGE_EXTENSIONS.join(' ')})`);
      }
    } else if (!stat && hasMagic(arg)) {
      if ((await expandGlob(arg, paths)) === 0) throw new FeatscopeError('NO_INPUTS', `no images match ${JSON.stringify(arg)}`);
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
  const reserved = new Set(['manifest.json', 'report.html']);
  return paths.map((p, i) => {
    const stem = stems[i];
    const name = (counts.get(stem) ?? 0) > 1 || reserved.has(stem) ? `${stem}-${shortHash(path.resolve(p))}` : stem;
    return { source: p, name };
  });
}
