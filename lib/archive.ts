/**
 * A bound on what loading a model archive may inflate, checked before libtorch reads it.
 * TorchScript files and AOTInductor packages are zip archives; libtorch allocates each record at
 * the size its central directory declares and only then inflates it, so a small compressed entry
 * that declares gigabytes costs gigabytes before any error. PyTorch stores records uncompressed,
 * so an honest archive declares about its own size: here the sum of the declared sizes may be at
 * most twice the file plus 64 MiB (FEATSCOPE_MAX_MODEL_INFLATE_MB raises the slack).
 */
import * as fs from 'fs';
import { FeatscopeError } from './errors';

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, buf, got, length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

export interface ArchiveSummary {
  entries: number;
  /** Sum of the declared uncompressed sizes. */
  declared: number;
  /** The largest entry by declared size. */
  largest: { name: string; declared: number; stored: number };
}

/** The central directory's totals, or undefined when the file is not a zip archive. */
export function archiveSummary(file: string): ArchiveSummary | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const tailLength = Math.min(size, 22 + 0xffff);
    const tail = readAt(fd, size - tailLength, tailLength);
    let at = -1;
    for (let i = tail.length - 22; i >= 0; i--)
      if (tail.readUInt32LE(i) === EOCD) {
        at = i;
        break;
      }
    if (at < 0) return undefined;
    let entries = tail.readUInt16LE(at + 10);
    let cdSize = tail.readUInt32LE(at + 12);
    let cdOffset = tail.readUInt32LE(at + 16);
    if (at >= 20 && tail.readUInt32LE(at - 20) === ZIP64_LOCATOR) {
      const z = readAt(fd, Number(tail.readBigUInt64LE(at - 20 + 8)), 56);
      if (z.length === 56 && z.readUInt32LE(0) === ZIP64_EOCD) {
        entries = Number(z.readBigUInt64LE(32));
        cdSize = Number(z.readBigUInt64LE(40));
        cdOffset = Number(z.readBigUInt64LE(48));
      }
    }
    if (cdOffset + cdSize > size || cdSize > 256 * 1024 * 1024) return undefined; // libtorch says what is wrong
    const cd = readAt(fd, cdOffset, cdSize);
    let declared = 0;
    let largest = { name: '', declared: 0, stored: 0 };
    let p = 0;
    for (let e = 0; e < entries && p + 46 <= cd.length && cd.readUInt32LE(p) === CENTRAL; e++) {
      let stored = cd.readUInt32LE(p + 20);
      let unpacked = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // Zip64: the 64-bit sizes sit in extra field 0x0001, uncompressed first.
      let x = p + 46 + nameLen;
      const end = x + extraLen;
      while (x + 4 <= end && x + 4 <= cd.length) {
        const id = cd.readUInt16LE(x);
        const len = cd.readUInt16LE(x + 2);
        if (id === 1) {
          let q = x + 4;
          if (unpacked === 0xffffffff && q + 8 <= x + 4 + len) {
            unpacked = Number(cd.readBigUInt64LE(q));
            q += 8;
          }
          if (stored === 0xffffffff && q + 8 <= x + 4 + len) stored = Number(cd.readBigUInt64LE(q));
        }
        x += 4 + len;
      }
      declared += unpacked;
      if (unpacked > largest.declared) largest = { name, declared: unpacked, stored };
      p = end + commentLen;
    }
    return { entries, declared, largest };
  } finally {
    fs.closeSync(fd);
  }
}

/** Refuses (MODEL_INVALID) an archive whose records declare more than the bound. */
export function checkArchiveInflation(file: string): void {
  const size = fs.statSync(file).size;
  const summary = archiveSummary(file);
  if (!summary) return;
  const slackMb = Number(process.env.FEATSCOPE_MAX_MODEL_INFLATE_MB ?? 64);
  const limit = 2 * size + (Number.isFinite(slackMb) && slackMb > 0 ? slackMb : 64) * 1024 * 1024;
  if (summary.declared > limit) {
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
    throw new FeatscopeError(
      'MODEL_INVALID',
      `model file ${JSON.stringify(file)} is ${mb(size)} but its records declare ${mb(summary.declared)} once inflated (the largest, ${JSON.stringify(summary.largest.name.slice(0, 120))}, ${mb(summary.largest.stored)} stored for ${mb(summary.largest.declared)}); PyTorch stores records uncompressed, so this archive is damaged or hostile and is not loaded. Re-export the model; if it is genuine, set FEATSCOPE_MAX_MODEL_INFLATE_MB to allow more`,
    );
  }
}
