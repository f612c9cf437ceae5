/**
 * The viewer under hostile HTTP, over raw sockets (no browser needed): malformed requests get a
 * 400 and the server goes on; a foreign Host (DNS rebinding) gets 421; a request from another
 * page (another localhost port is the same site) gets 403 and changes nothing; each viewer has
 * its own cookie; concurrent uploads decode at most two at a time.
 */
import * as http from 'http';
import * as net from 'net';
import sharp from 'sharp';
import { startViewer, type Viewer } from '../../lib/viewer/server';
import { MODELS, ensureTestModels } from '../support/models';
import { DOG } from '../support/cli';

let viewer: Viewer;
beforeAll(async () => {
  ensureTestModels();
  viewer = await startViewer({ images: [DOG], models: [MODELS.scripted], device: 'cpu' });
});
afterAll(() => viewer?.close());

/** Bytes on a fresh connection; resolves with what came back before the server closed or 3 s passed. */
function rawBytes(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const parts: Buffer[] = [];
    s.on('data', (d) => parts.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(parts).toString('latin1')));
    s.setTimeout(3000, () => s.destroy());
  });
}

function request(
  port: number,
  p: string,
  init: { method?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: p, method: init.method ?? 'GET', headers: init.headers },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts).toString() }),
        );
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}
const code = (body: string) => (JSON.parse(body) as { error: { code: string } }).error.code;
const alive = async () => expect((await request(viewer.port, `/api/session?token=${viewer.token}`)).status).toBe(200);

test('malformed requests, unauthenticated, get 400 and the server goes on', async () => {
  for (const target of ['//[', 'http://[::1', '//%zz@[', '/\u0000']) {
    const answer = await rawBytes(viewer.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    await alive();
  }
  for (const junk of ['\u0000\u0001\u0002garbage\r\n\r\n', 'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n']) {
    expect(await rawBytes(viewer.port, junk)).toMatch(/^HTTP\/1\.1 4\d\d /);
    await alive();
  }
});

test('a foreign Host name (DNS rebinding) is refused with 421; addresses and localhost are served', async () => {
  const t = viewer.token;
  for (const host of ['evil.example', `evil.example:${viewer.port}`, `127.0.0.1.evil.example:${viewer.port}`]) {
    const r = await request(viewer.port, `/api/session?token=${t}`, { headers: { Host: host } });
    expect([host, r.status, code(r.body)]).toEqual([host, 421, 'HOST_NOT_ALLOWED']);
  }
  const missing = await rawBytes(viewer.port, `GET /api/session?token=${t} HTTP/1.0\r\n\r\n`);
  expect(missing).toMatch(/^HTTP\/1\.1 421 /);
  for (const host of [`127.0.0.1:${viewer.port}`, `localhost:${viewer.port}`, `[::1]:${viewer.port}`]) {
    expect((await request(viewer.port, `/api/session?token=${t}`, { headers: { Host: host } })).status).toBe(200);
  }
});

test('a request from another page (another port on localhost is the same site) changes nothing', async () => {
  const t = viewer.token;
  const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#123456' } })
    .png()
    .toBuffer();
  const cookie = `featscope_token_${viewer.port}=${t}`;
  for (const headers of <Record<string, string>[]>[
    { 'Sec-Fetch-Site': 'same-site' },
    { 'Sec-Fetch-Site': 'cross-site' },
    { Origin: 'http://127.0.0.1:9' },
    { Origin: 'null' },
  ]) {
    const r = await request(viewer.port, '/api/upload?name=x.png', {
      method: 'POST',
      headers: { Cookie: cookie, ...headers },
      body: png,
    });
    expect([r.status, code(r.body)]).toEqual([403, 'CROSS_ORIGIN']);
    const fwd = await request(viewer.port, '/api/predict?image=i0', { headers: { Cookie: cookie, ...headers } });
    expect(fwd.status).toBe(403);
  }
  expect(viewer.forwards()).toBe(0);
  const session = JSON.parse((await request(viewer.port, `/api/session?token=${t}`)).body);
  expect(session.images).toHaveLength(1);
  // The viewer's own page: same-origin fetches and a matching Origin pass.
  const own = await request(viewer.port, '/api/upload?name=x.png', {
    method: 'POST',
    headers: { Cookie: cookie, 'Sec-Fetch-Site': 'same-origin', Origin: `http://127.0.0.1:${viewer.port}` },
    body: png,
  });
  expect(own.status).toBe(201);
});

test('each viewer has its own cookie: a second viewer neither logs the first out nor accepts its token', async () => {
  const second = await startViewer({ images: [DOG], models: [MODELS.scripted], device: 'cpu' });
  try {
    const a = await request(viewer.port, `/?token=${viewer.token}`);
    const b = await request(second.port, `/?token=${second.token}`);
    const ca = String(a.headers['set-cookie']).split(';')[0];
    const cb = String(b.headers['set-cookie']).split(';')[0];
    expect(ca.startsWith(`featscope_token_${viewer.port}=`)).toBe(true);
    expect(cb.startsWith(`featscope_token_${second.port}=`)).toBe(true);
    // A browser sends both cookies to both ports (cookies ignore ports): each viewer finds its own.
    const both = `${ca}; ${cb}`;
    expect((await request(viewer.port, '/api/session', { headers: { Cookie: both } })).status).toBe(200);
    expect((await request(second.port, '/api/session', { headers: { Cookie: both } })).status).toBe(200);
    expect((await request(second.port, '/api/session', { headers: { Cookie: ca } })).status).toBe(401);
  } finally {
    await second.close();
  }
});

test('concurrent uploads decode at most two at a time, and all succeed', async () => {
  const t = viewer.token;
  const big = await sharp({ create: { width: 2400, height: 2400, channels: 3, background: '#808080' } })
    .jpeg()
    .toBuffer();
  const answers = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      request(viewer.port, `/api/upload?token=${t}&name=big${i}.jpg`, { method: 'POST', body: big }),
    ),
  );
  expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201, 201, 201]);
  expect(viewer.peakDecodes()).toBeLessThanOrEqual(2);
  expect(viewer.peakDecodes()).toBeGreaterThanOrEqual(1);
});

test("the Concepts tab decodes within the viewer's limit: an image over it is refused before the fit decodes anything", async () => {
  // dog.jpg is 768 x 576 = 442,368 pixels; the limit here is 100,000 (the chessboard, 200 x 200, is under it).
  const small = DOG.replace('dog.jpg', 'chessboard_GRAY.png');
  const limited = await startViewer({
    images: [small, DOG],
    models: [MODELS.scripted],
    device: 'cpu',
    maxInputPixels: 100_000,
  });
  try {
    const get = (q: string) => request(limited.port, `/api/concepts?token=${limited.token}&${q}`);
    const r = await get('layer=layer4&k=2');
    expect([r.status, code(r.body)]).toEqual([413, 'IMAGE_TOO_LARGE']);
    expect(JSON.parse(r.body).error.message).toContain('dog.jpg');
    // Refused first, whatever the layer: the fit (which would find fc not to be feature maps) never ran.
    const fc = await get('layer=fc&k=2');
    expect([fc.status, code(fc.body)]).toEqual([413, 'IMAGE_TOO_LARGE']);
    // The decodes went through the viewer's decode slots.
    expect(limited.peakDecodes()).toBeGreaterThanOrEqual(1);
    expect(limited.peakDecodes()).toBeLessThanOrEqual(2);
  } finally {
    await limited.close();
  }
});
