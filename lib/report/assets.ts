/**
 * The folder of a linked report's pictures (`--report-assets linked`): `<page>_files/` beside the
 * page. Pictures are written into a temporary folder; commit() swaps it in whole (the old folder
 * goes only after the new one is in place), abort() removes it. The caller writes the page after
 * commit(), so neither the page nor its pictures are ever half-written.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { tempPath } from '../fsutil';

export interface AssetFolder {
  /** The final folder, e.g. /out/report_files. */
  dir: string;
  /** Write `data` as `name` (a plain file name, unique within the report); returns its relative URL. */
  put(name: string, data: Buffer): Promise<string>;
  /** Copy `file` in as `name`; returns its relative URL. */
  copy(file: string, name: string): Promise<string>;
  /** Where a picture named `name` is written now (to encode straight into it). */
  staged(name: string): string;
  /** The relative URL of `name`. */
  url(name: string): string;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export async function assetFolder(page: string): Promise<AssetFolder> {
  const folder = `${path.basename(page).replace(/\.html?$/i, '')}_files`;
  const dir = path.join(path.dirname(page), folder);
  const tmp = tempPath(dir);
  await fs.mkdir(tmp);
  const url = (name: string) => `${encodeURIComponent(folder)}/${encodeURIComponent(name)}`;
  return {
    dir,
    url,
    staged: (name) => path.join(tmp, name),
    async put(name, data) {
      await fs.writeFile(path.join(tmp, name), data);
      return url(name);
    },
    async copy(file, name) {
      await fs.copyFile(file, path.join(tmp, name));
      return url(name);
    },
    async commit() {
      const old = tempPath(dir);
      const hadOld = await fs.rename(dir, old).then(
        () => true,
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return false;
          throw err;
        },
      );
      await fs.rename(tmp, dir);
      if (hadOld) await fs.rm(old, { recursive: true, force: true });
    },
    async abort() {
      await fs.rm(tmp, { recursive: true, force: true });
    },
  };
}
