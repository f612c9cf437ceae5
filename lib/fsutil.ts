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
    await fs.promises.writeFile(tmp, data);
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
  const stream = fs.createWriteStream(tmp);
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
