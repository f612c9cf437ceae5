/** Bounded concurrency for the batch loops (CLI batches, folder statistics). */

/** Images decoded at once: enough to keep sharp's threads busy, few enough to bound memory. */
export const PREPROCESS_CONCURRENCY = 4;

/** `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapLimited<T, U>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<U>): Promise<U[]> {
  const out = new Array<U>(items.length);
  let nextIndex = 0;
  const worker = async () => {
    while (nextIndex < items.length) {
      const i = nextIndex++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
