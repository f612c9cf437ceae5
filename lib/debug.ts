/**
 * featscope's debug channel: with FEATSCOPE_DEBUG set (and not `0`), notes for people tuning or
 * debugging go to stderr as `featscope: debug: <message>` lines (the CLI then also prints stacks).
 * Nothing is printed otherwise; these are never errors.
 */
export function debugEnabled(): boolean {
  const v = process.env.FEATSCOPE_DEBUG;
  return v !== undefined && v !== '' && v !== '0';
}

export function debug(message: string): void {
  if (debugEnabled()) process.stderr.write(`featscope: debug: ${message}\n`);
}
