// The viewer's own error codes (lib/viewer/codes.ts): a closed list, each one used, every one the
// viewer's sources raise listed, and an HTTP status for each of them.
import * as fs from 'fs';
import * as path from 'path';
import { STATUS, VIEWER_ERROR_CODES } from '../../lib/viewer/codes';

const DIR = path.resolve(__dirname, '..', '..', 'lib', 'viewer');
const sources = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.ts') && f !== 'codes.ts')
  .map((f) => fs.readFileSync(path.join(DIR, f), 'utf8'))
  .join('\n');

test('every code the viewer raises is in its list, and every listed code is raised', () => {
  const raised = new Set<string>();
  for (const m of sources.matchAll(/ViewerError\(\s*'([A-Z][A-Z0-9_]*)'/g)) raised.add(m[1]);
  for (const m of sources.matchAll(/refuse\(\s*res,\s*\d+,\s*'([A-Z][A-Z0-9_]*)'/g)) raised.add(m[1]);
  expect([...raised].sort()).toEqual([...VIEWER_ERROR_CODES].sort());
});

test('each viewer code but the two listen failures has its HTTP status', () => {
  const answered = VIEWER_ERROR_CODES.filter((c) => c !== 'PORT_IN_USE' && c !== 'LISTEN_FAILED');
  for (const c of answered) expect([c, STATUS[c]]).toEqual([c, expect.any(Number)]);
  expect(STATUS.UNAUTHORIZED).toBe(401);
  expect(STATUS.UPLOAD_TOO_LARGE).toBe(413);
});
