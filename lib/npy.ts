/**
 * NumPy .npy files (format version 1.0): a magic string, a Python-dict header padded to 64 bytes,
 * then the raw little-endian data in C order. Readable with numpy.load() without pickle.
 */
import { promises as fs } from 'fs';
import { FeatscopeError, invalidParameter } from './errors';

export type NpyArray =
  Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array | Int16Array | Uint16Array | Uint32Array;

const DESCR: Array<[new (...args: never[]) => NpyArray, string]> = [
  [Float32Array, '<f4'],
  [Float64Array, '<f8'],
  [Int32Array, '<i4'],
  [Uint32Array, '<u4'],
  [Int16Array, '<i2'],
  [Uint16Array, '<u2'],
  [Int8Array, '|i1'],
  [Uint8Array, '|u1'],
];

function descrOf(data: unknown): string {
  for (const [ctor, descr] of DESCR) if (data instanceof ctor && !Buffer.isBuffer(data)) return descr;
  if (Buffer.isBuffer(data)) return '|u1';
  throw invalidParameter(
    'npy data',
    'a Float32Array, Float64Array, Int32Array, Uint8Array or another numeric typed array',
    data,
  );
}

/** The .npy bytes for `data` viewed with `shape` (C order). Typed arrays are little-endian on every platform Node runs on. */
export function encodeNpy(data: NpyArray, shape: readonly number[]): Buffer {
  const descr = descrOf(data);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw invalidParameter('npy shape', 'an array of non-negative integers', shape);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new FeatscopeError(
      'INVALID_ARGUMENT',
      `npy shape [${shape.join(', ')}] needs ${count} values but the data holds ${data.length}`,
    );
  }
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // magic (6) + version (2) + header length (2) + header, padded with spaces, ending in \n, to a multiple of 64.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const head = Buffer.alloc(10 + header.length);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  head.write(header, 10, 'latin1');
  return Buffer.concat([head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** Write `data` with `shape` as a .npy file. */
export async function writeNpy(path: string, data: NpyArray, shape: readonly number[]): Promise<void> {
  await fs.writeFile(path, encodeNpy(data, shape));
}

/**
 * Read .npy bytes of little-endian float32 or float64 in C order (what encodeNpy and numpy.save
 * write for such arrays) as Float32Array or Float64Array with its shape; `file` names it in errors.
 */
export function decodeNpy(
  bytes: Buffer,
  file = 'the .npy file',
): { data: Float32Array | Float64Array; shape: number[] } {
  const bad = (why: string) =>
    new FeatscopeError(
      'FORMAT_UNSUPPORTED',
      `${file} is not a .npy array featscope reads (${why}); write it with numpy.save as float32 or float64 in C order`,
    );
  if (bytes.length < 10 || bytes.toString('latin1', 0, 6) !== '\x93NUMPY') throw bad('no .npy magic');
  const major = bytes[6];
  const headerLen = major === 1 ? bytes.readUInt16LE(8) : bytes.length >= 12 ? bytes.readUInt32LE(8) : -1;
  const start = (major === 1 ? 10 : 12) + headerLen;
  if (headerLen < 0 || start > bytes.length) throw bad('truncated header');
  const header = bytes.toString('latin1', major === 1 ? 10 : 12, start);
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad('unreadable header');
  if (fortran === 'True') throw bad('Fortran order');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const size = descr === '<f4' ? 4 : descr === '<f8' ? 8 : 0;
  if (size === 0) throw bad(`dtype ${descr}`);
  if (bytes.length - start !== count * size) throw bad(`${bytes.length - start} data bytes for shape (${shapeText})`);
  const raw = bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + bytes.length);
  return { data: size === 4 ? new Float32Array(raw) : new Float64Array(raw), shape };
}
