/**
 * The error codes only the command line throws, beside the library's (lib/error-codes.ts): the
 * same strings as ever, so messages (`[USAGE]`) and --json output do not change. A CLI error is
 * still a FeatscopeError (programs and tests test `instanceof FeatscopeError` and `code`).
 */
import { FeatscopeError, type ErrorCode } from '../errors';
import { ERROR_CODES } from '../error-codes';

export const CLI_CODES = [
  /** The command line or a job file is wrong: unknown option, bad value, missing input (exit status 2). */
  'USAGE',
  /** A path under --out that would leave it (a symlink planted there, `..` in a name): refused, nothing written. */
  'UNSAFE_PATH',
] as const;

export type CliCode = (typeof CLI_CODES)[number];

/** Any code a CLI run reports: the library's and the CLI's own. */
export type Code = ErrorCode | CliCode;

/** A FeatscopeError with one of the CLI's own codes. */
export function cliError(code: CliCode, message: string, options?: { cause?: unknown }): FeatscopeError<CliCode> {
  return new FeatscopeError<CliCode>(code, message, options);
}

const KNOWN = new Set<string>([...ERROR_CODES, ...CLI_CODES]);

/** `code` when it is a known code, else INTERNAL (an analysis's failure without one, a foreign error's). */
export function asCode(code: string | undefined): Code {
  return code !== undefined && KNOWN.has(code) ? (code as Code) : 'INTERNAL';
}
