/**
 * The viewer's own error codes: what `featscope view` answers over HTTP or meets when it listens.
 * The library's codes (INVALID_ARGUMENT, IMAGE_NOT_FOUND, IMAGE_DECODE, IMAGE_TOO_LARGE, ...) come
 * through unchanged; these are the viewer's alone. The values are the strings the HTTP answers and
 * the CLI's `[CODE]` carry, so they are the same as before they moved here.
 */
import { FeatscopeError } from '../errors';
import type { ErrorCode } from '../error-codes';

export const VIEWER_ERROR_CODES = [
  'UNAUTHORIZED',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'UPLOAD_TOO_LARGE',
  'UPLOAD_LIMIT',
  'PORT_IN_USE',
  'LISTEN_FAILED',
  'HOST_NOT_ALLOWED',
  'CROSS_ORIGIN',
  'BAD_REQUEST',
] as const;

export type ViewerErrorCode = (typeof VIEWER_ERROR_CODES)[number];

/** A code a viewer answer may carry: the library's or the viewer's own. */
export type AnswerCode = ErrorCode | ViewerErrorCode | 'INTERNAL';

/** HTTP status per code; any other FeatscopeError is a 400, anything else a 500. */
export const STATUS: Partial<Record<AnswerCode, number>> = {
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UPLOAD_TOO_LARGE: 413,
  UPLOAD_LIMIT: 413,
  IMAGE_TOO_LARGE: 413,
  BAD_REQUEST: 400,
  CROSS_ORIGIN: 403,
  HOST_NOT_ALLOWED: 421,
};

/**
 * An error with one of the viewer's codes. It is a FeatscopeError, so the CLI reports it as every
 * other (`[PORT_IN_USE]`, exit 2 for the listen codes).
 */
export class ViewerError extends FeatscopeError<ViewerErrorCode> {
  constructor(code: ViewerErrorCode, message: string) {
    super(code, message);
  }
}

/** A FeatscopeError with a library code (the viewer's own go through ViewerError). */
export function bad(code: ErrorCode, message: string): FeatscopeError {
  return new FeatscopeError(code, message);
}
