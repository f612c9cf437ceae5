/**
 * A least-recently-used cache of promises bounded by bytes: each value reports its size when it
 * settles; the oldest entries go when the total exceeds the budget. Concurrent requests for one key
 * share one computation; a failed computation is not kept.
 */
export class BoundedCache {
  readonly #budget: number;
  readonly #entries = new Map<string, { promise: Promise<unknown>; bytes: number }>();
  #total = 0;

  constructor(budgetBytes: number) {
    this.#budget = budgetBytes;
  }

  get<T>(key: string, make: () => Promise<{ value: T; bytes: number }>): Promise<T> {
    const hit = this.#entries.get(key);
    if (hit) {
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return hit.promise as Promise<T>;
    }
    const entry = { promise: undefined as unknown as Promise<T>, bytes: 0 };
    entry.promise = make().then(
      ({ value, bytes }) => {
        if (this.#entries.get(key) === entry) {
          entry.bytes = bytes;
          this.#total += bytes;
          this.#evict(key);
        }
        return value;
      },
      (err) => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
        throw err;
      },
    );
    this.#entries.set(key, entry);
    return entry.promise;
  }

  #evict(keep: string): void {
    for (const [key, e] of this.#entries) {
      if (this.#total <= this.#budget) break;
      if (key === keep || e.bytes === 0) continue;
      this.#entries.delete(key);
      this.#total -= e.bytes;
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#total;
  }

  clear(): void {
    this.#entries.clear();
    this.#total = 0;
  }
}
