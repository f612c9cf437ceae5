import type { ErrorCode } from './error-codes';

export { ERROR_CODES } from './error-codes';
export type { ErrorCode } from './error-codes';

/**
 * One error class for everything featscope refuses or fails at. `code` is stable and meant for
 * programs; `message` names the offending value and the fix, for people. The library throws only
 * its own codes (ErrorCode); the CLI's errors are FeatscopeError<CliCode>, the viewer's
 * FeatscopeError<ViewerErrorCode>.
 */
export class FeatscopeError<C extends string = ErrorCode> extends Error {
  readonly code: C;
  /**
   * `C` is the library's ErrorCode unless given explicitly (the CLI and the viewer pass their own
   * code lists); `NoInfer` keeps a code outside the list a type error.
   */
  constructor(code: NoInfer<C>, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FeatscopeError';
    this.code = code;
  }
}

/** Printable, bounded description of a received value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') {
    const s = value.length > 80 ? `${value.slice(0, 77)}...` : value;
    return JSON.stringify(s);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value))
    return `a ${value.constructor.name} of length ${(value as unknown as { length?: number }).length ?? value.byteLength}`;
  if (Buffer.isBuffer(value)) return `a Buffer of ${(value as Buffer).length} bytes`;
  if (typeof value === 'function') return 'a function';
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

/** sharp-style message: expected what, for which option, received what. */
export function invalidParameter(option: string, expected: string, received: unknown): FeatscopeError {
  return new FeatscopeError(
    'INVALID_ARGUMENT',
    `Expected ${expected} for ${option} but received ${describe(received)}`,
  );
}

/** Refuse option keys a function does not know, naming them and the known ones. */
export function checkKnownKeys(where: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new FeatscopeError(
        'UNKNOWN_OPTION',
        `Unknown option ${JSON.stringify(key)} for ${where}; known options: ${known.join(', ')}`,
      );
    }
  }
}
