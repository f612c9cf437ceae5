// Closed error codes (issue 15, item 6): lib/error-codes.ts (the TypeScript union), native/error_codes.h,
// the codes the sources throw and docs/api.md's table list the same codes. The CLI's and the viewer's
// own codes (issue 23, item 4) are separate lists: disjoint from the library's, each thrown only
// in its own folder, and documented in docs/cli.md.
import * as fs from 'fs';
import * as path from 'path';
import { ERROR_CODES } from '../../lib/errors';
import { CLI_CODES } from '../../lib/cli/codes';
import { VIEWER_ERROR_CODES } from '../../lib/viewer/codes';

const ROOT = path.resolve(__dirname, '..', '..');
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');
const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

function headerCodes(): string[] {
  const h = read('native/error_codes.h');
  const block = h.slice(h.indexOf('// BEGIN ERROR CODES'), h.indexOf('// END ERROR CODES'));
  return [...block.matchAll(/"([A-Z][A-Z0-9_]*)"/g)].map((m) => m[1]);
}

function filesUnder(dir: string, ext: RegExp): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => ext.test(f))
    .map((f) => path.join(dir, f));
}

test('native/error_codes.h lists exactly the TypeScript union', () => {
  expect(sorted(headerCodes())).toEqual(sorted(ERROR_CODES));
  expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
});

test('every code the native sources raise is listed', () => {
  const raised = new Set<string>();
  for (const f of filesUnder('native', /\.(cc|h)$/)) {
    const src = read(f);
    for (const m of src.matchAll(
      /(?:FsError|makeJsError|makeListedJsError)\(\s*(?:env,\s*|info\.Env\(\),\s*)?"([A-Z][A-Z0-9_]*)"/g,
    ))
      raised.add(m[1]);
    for (const m of src.matchAll(/FsWorker\(env, "[^"]+", "([A-Z][A-Z0-9_]*)"\)/g)) raised.add(m[1]);
    for (const m of src.matchAll(/return \{"([A-Z][A-Z0-9_]*)"/g)) raised.add(m[1]);
  }
  expect(raised.size).toBeGreaterThan(10); // the patterns still find the throw sites
  expect(sorted([...raised].filter((c) => !(ERROR_CODES as readonly string[]).includes(c)))).toEqual([]);
});

test('every code the TypeScript sources raise is listed (the constructor takes only ErrorCode; this guards casts)', () => {
  const raised = new Set<string>();
  for (const f of filesUnder('lib', /\.ts$/)) {
    for (const m of read(f).matchAll(/FeatscopeError\(\s*'([A-Z][A-Z0-9_]*)'/g)) raised.add(m[1]);
  }
  expect(raised.size).toBeGreaterThan(10);
  expect(sorted([...raised].filter((c) => !(ERROR_CODES as readonly string[]).includes(c)))).toEqual([]);
});

test("docs/api.md's error table lists every code, and no other", () => {
  const doc = read('docs/api.md');
  expect(doc.indexOf('## Errors')).toBeGreaterThan(0);
  expect(doc.indexOf('### malloc tuning')).toBeGreaterThan(doc.indexOf('## Errors'));
  const section = doc.slice(doc.indexOf('## Errors'), doc.indexOf('### malloc tuning'));
  const rows = section.split('\n').filter((l) => l.startsWith('| `'));
  const documented = rows.flatMap((r) => [...r.split('|')[1].matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]));
  expect(sorted(documented)).toEqual(sorted(ERROR_CODES));
});

test("the CLI's and the viewer's codes are their own: not in the library's list, raised only in their folders", () => {
  const library = new Set<string>(ERROR_CODES);
  for (const c of [...CLI_CODES, ...VIEWER_ERROR_CODES]) expect([c, library.has(c)]).toEqual([c, false]);
  expect(CLI_CODES.filter((c) => (VIEWER_ERROR_CODES as readonly string[]).includes(c))).toEqual([]);
  // Outside lib/cli and lib/viewer, no source raises them (by name, in a string, as a code).
  const own = [...CLI_CODES, ...VIEWER_ERROR_CODES];
  const leaks: string[] = [];
  for (const f of filesUnder('lib', /\.ts$/)) {
    if (f.startsWith(path.join('lib', 'cli')) || f.startsWith(path.join('lib', 'viewer'))) continue;
    const src = read(f);
    for (const c of own) if (new RegExp(`'${c}'`).test(src)) leaks.push(`${f}: ${c}`);
  }
  for (const f of filesUnder('native', /\.(cc|h)$/)) {
    const src = read(f);
    for (const c of own) if (src.includes(`"${c}"`)) leaks.push(`${f}: ${c}`);
  }
  expect(leaks).toEqual([]);
});

test("docs/cli.md's error tables list the CLI's and the viewer's codes, and no other", () => {
  const doc = read('docs/cli.md');
  const start = doc.indexOf('### Error codes');
  expect(start).toBeGreaterThan(0);
  const end = doc.indexOf('\n## ', start);
  const section = doc.slice(start, end < 0 ? undefined : end);
  const rows = section.split('\n').filter((l) => l.startsWith('| `'));
  const documented = rows.flatMap((r) => [...r.split('|')[1].matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]));
  expect(sorted(documented)).toEqual(sorted([...CLI_CODES, ...VIEWER_ERROR_CODES]));
});
