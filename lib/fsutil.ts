/**
 * Atomic writes shared by the CLI and the report writer: a temporary name in the same folder,
 * then rename, so an interrupted run never leaves a half-written file under a final name.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

const TEMP_MARK = '.featscope-tmp-';

/** A temporary path beside `file` (same folder, so the final rename is atomic). */
export function tempPath(file: string): string {
  return path.join(path.dirname(file), `${TEMP_MARK}${randomBytes(6).toString('hex')}-${path.basename(file)}`);
}

/** Write a file atomically: a temporary name in the same folder, then rename. */
export async function writeAtomic(file: string, data: Buffer | string): Promise<void> {
  const tmp = tempPath(file);
  try {
    // 'wx': the temporary name is new; never write through something already there.
    await fs.promises.writeFile(tmp, data, { flag: 'wx' });
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

/** A write stream to a temporary name; `commit()` renames it into place, `abort()` removes it. */
export function atomicStream(file: string): {
  stream: fs.WriteStream;
  commit(): Promise<void>;
  abort(): Promise<void>;
} {
  const tmp = tempPath(file);
  const stream = fs.createWriteStream(tmp, { flags: 'wx' });
  const closed = new Promise<void>((resolve, reject) => {
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  return {
    stream,
    async commit() {
      stream.end();
      await closed;
      await fs.promises.rename(tmp, file);
    },
    async abort() {
      stream.destroy();
      await closed.catch(() => undefined);
      await fs.promises.rm(tmp, { force: true });
    },
  };
}

/** Remove temporary files (and a report's temporary picture folder) left in `dir` by a run that was killed. */
export async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((n) => n.startsWith(TEMP_MARK))
      .map((n) => fs.promises.rm(path.join(dir, n), { recursive: true, force: true })),
  );
}

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_MARK);
}

/**
 * Reads a small file the user names (a job file, a shard's state): only a regular file, at most
 * `maxBytes`, read with that bound. A FIFO, a device (/dev/zero) or a socket is refused without
 * blocking (the open is non-blocking), and a file that grows while it is read is refused. `fail` turns a reason into the caller's coded error.
 */
export function readBoundedFile(file: string, maxBytes: number, fail: (reason: string) => Error): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder' : `cannot read it (${code})`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw fail('is a folder');
    if (!st.isFile()) throw fail('is not a regular file (a FIFO, device or socket); give a file');
    if (st.size > maxBytes) throw fail(`is ${st.size} bytes, over the limit of ${maxBytes}`);
    // One byte more than the size: a file that grows while it is read is noticed, not cut.
    const buf = Buffer.alloc(st.size + 1);
    let got = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
      if (got > st.size) throw fail('grew while it was read; read it again once it is complete');
    }
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The deepest nesting of `[`/`{` in JSON or YAML flow text, outside quoted strings, stopping as
 * soon as it passes `limit`: checked before parsing, so a hostile file cannot make the parser
 * (or anything that walks its result) recurse past the stack.
 */
export function bracketDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') {
      if (++depth > limit) return true;
    } else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return false;
}

/** The deepest nesting of arrays and objects in a parsed value (iterative: no recursion). */
export function valueDepthExceeds(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d + 1 > limit) return true;
    for (const child of Object.values(v as object)) stack.push([child, d + 1]);
  }
  return false;
}
