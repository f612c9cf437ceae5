/**
 * A model archive whose records declare far more than the file holds (a small compressed entry
 * that would inflate to gigabytes) is refused before libtorch allocates anything for it.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadModel } from '../../lib';
import { archiveSummary } from '../../lib/archive';
import { MODELS, ensureTestModels } from '../support/models';

beforeAll(() => ensureTestModels());

/** A copy of `file` whose central-directory entry `suffix` declares `size` bytes uncompressed. */
function declareSize(file: string, suffix: string, size: number): string {
  const buf = fs.readFileSync(file);
  let eocd = buf.length - 22;
  while (buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  let p = buf.readUInt32LE(eocd + 16);
  const entries = buf.readUInt16LE(eocd + 10);
  let patched = false;
  for (let e = 0; e < entries; e++) {
    const nameLen = buf.readUInt16LE(p + 28);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    if (name.endsWith(suffix)) {
      buf.writeUInt32LE(size, p + 24);
      patched = true;
    }
    p += 46 + nameLen + buf.readUInt16LE(p + 30) + buf.readUInt16LE(p + 32);
  }
  expect(patched).toBe(true);
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-archive-')), path.basename(file));
  fs.writeFileSync(out, buf);
  return out;
}

test('an honest archive declares about its own size', () => {
  const s = archiveSummary(MODELS.scripted)!;
  const size = fs.statSync(MODELS.scripted).size;
  expect(s.entries).toBeGreaterThan(10);
  expect(s.declared).toBeGreaterThan(size * 0.9);
  expect(s.declared).toBeLessThan(size * 1.1);
});

test('a record declaring 3 GiB is refused with MODEL_INVALID before libtorch reads it', async () => {
  const hostile = declareSize(MODELS.scripted, '/data.pkl', 0xc0000000);
  const rss = process.memoryUsage().rss;
  await expect(loadModel(hostile, { device: 'cpu' })).rejects.toMatchObject({
    code: 'MODEL_INVALID',
    message: expect.stringMatching(/declare 3\d{3}\.\d MiB once inflated .*data\.pkl.*FEATSCOPE_MAX_MODEL_INFLATE_MB/),
  });
  expect(process.memoryUsage().rss - rss).toBeLessThan(200 * 1024 * 1024);
  // The original still loads.
  const m = await loadModel(MODELS.scripted, { device: 'cpu' });
  m.dispose();
});
