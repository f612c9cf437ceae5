/** The viewer's bounded cache: least recently used out past the byte budget, shared in-flight work, failures not kept. */
import { BoundedCache } from '../../lib/viewer/cache';

const make = (value: string, bytes: number, calls: string[]) => async () => {
  calls.push(value);
  return { value, bytes };
};

test('evicts the least recently used entries once the budget is exceeded, never the newest', async () => {
  const cache = new BoundedCache(100);
  const calls: string[] = [];
  await cache.get('a', make('a', 40, calls));
  await cache.get('b', make('b', 40, calls));
  await cache.get('a', make('a', 40, calls)); // hit: a is now the most recent
  await cache.get('c', make('c', 40, calls)); // 120 > 100: b goes
  expect(calls).toEqual(['a', 'b', 'c']);
  expect(cache.bytes).toBe(80);
  await cache.get('a', make('a', 40, calls));
  await cache.get('b', make('b', 40, calls)); // recomputed
  expect(calls).toEqual(['a', 'b', 'c', 'b']);
  await cache.get('huge', make('huge', 500, calls)); // larger than the budget: kept alone
  expect(cache.size).toBe(1);
  expect(cache.bytes).toBe(500);
});

test('concurrent requests share one computation; a failure is not cached', async () => {
  const cache = new BoundedCache(1000);
  let runs = 0;
  const slow = async () => {
    runs++;
    await new Promise((r) => setTimeout(r, 20));
    return { value: runs, bytes: 1 };
  };
  const [x, y] = await Promise.all([cache.get('k', slow), cache.get('k', slow)]);
  expect([x, y, runs]).toEqual([1, 1, 1]);
  let attempts = 0;
  const flaky = async () => {
    attempts++;
    if (attempts === 1) throw new Error('first try fails');
    return { value: 'ok', bytes: 1 };
  };
  await expect(cache.get('f', flaky)).rejects.toThrow('first try fails');
  await expect(cache.get('f', flaky)).resolves.toBe('ok');
  expect(attempts).toBe(2);
});
