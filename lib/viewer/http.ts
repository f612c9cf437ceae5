/**
 * The viewer's HTTP plumbing (node:http): the session token (query `token` once, then an
 * HttpOnly, SameSite=Strict cookie named after the port), the Host allow-list and the
 * Origin/Sec-Fetch-Site check, the fixed asset list, body limits, JSON errors, and a server that
 * answers every request (400 for a malformed one) and goes on. It knows nothing of models.
 */
import { timingSafeEqual } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { FeatscopeError } from '../errors';
import { packageRoot } from '../native';
import { type AnswerCode, STATUS, ViewerError, bad } from './codes';

export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/assets/viewer.js': { file: 'viewer.js', type: 'text/javascript; charset=utf-8' },
  '/assets/viewer.css': { file: 'viewer.css', type: 'text/css; charset=utf-8' },
};

function assetDir(): string {
  const candidates = [path.join(__dirname, 'assets'), path.join(packageRoot, 'lib', 'viewer', 'assets')];
  return candidates.find((d) => fs.existsSync(path.join(d, 'index.html'))) ?? candidates[1];
}

/**
 * The Host names a request may carry: IP literals (a DNS-rebinding page has a name, never an
 * address), `localhost` and the name the viewer was bound to. Anything else is refused with 421.
 */
export function hostAllowed(hostHeader: string | undefined, boundHost: string): boolean {
  if (!hostHeader) return false;
  let name: string;
  try {
    name = new URL(`http://${hostHeader}`).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (name.startsWith('[') && name.endsWith(']')) return true; // an IPv6 literal
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return true;
  const bound = boundHost.toLowerCase().replace(/^\[|\]$/g, '');
  return name === 'localhost' || name.endsWith('.localhost') || name === bound;
}

/**
 * Whether a request comes from another site or origin: `Sec-Fetch-Site` other than same-origin or
 * none (a typed URL), or an `Origin` that is not this viewer's own. A page on another localhost
 * port is same-site, so SameSite cookies alone do not stop it; this does. Requests with neither
 * header (curl, scripts with the token) pass.
 */
export function crossOrigin(req: http.IncomingMessage): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${site}`;
  const origin = req.headers.origin;
  if (typeof origin === 'string' && origin !== `http://${req.headers.host ?? ''}`)
    return `Origin: ${origin.slice(0, 100)}`;
  return undefined;
}

/** An answer with the viewer's fixed security headers. */
export function send(
  res: http.ServerResponse,
  status: number,
  type: string,
  body: Buffer | string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
    'Cross-Origin-Resource-Policy': 'same-origin',
    ...extra,
  });
  res.end(body);
}

export function json(res: http.ServerResponse, value: unknown, status = 200): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

/** `{ error: { code, message } }` with the code's status (400 for other FeatscopeErrors, 500 for the rest). */
export function fail(res: http.ServerResponse, err: unknown): void {
  const code: AnswerCode = err instanceof FeatscopeError ? err.code : 'INTERNAL';
  const message = err instanceof Error ? err.message : String(err);
  const status = STATUS[code] ?? (err instanceof FeatscopeError ? 400 : 500);
  if (!res.headersSent) json(res, { error: { code, message } }, status);
  else res.destroy();
}

/** A request body of at most `limit` bytes; more is UPLOAD_TOO_LARGE, and the rest is discarded. */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    const tooLarge = () =>
      new ViewerError(
        'UPLOAD_TOO_LARGE',
        `the upload is larger than the limit of ${limit} bytes; send a smaller image`,
      );
    if (declared > limit) {
      req.resume(); // discard the body; the answer is 413
      return reject(tooLarge());
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(tooLarge());
      } else parts.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

/** An integer query parameter in [min, max]; absent: `fallback`, or INVALID_ARGUMENT without one. */
export function intParam(
  q: URLSearchParams,
  name: string,
  fallback: number | undefined,
  min: number,
  max: number,
): number {
  const v = q.get(name);
  if (v === null || v === '') {
    if (fallback === undefined)
      throw bad('INVALID_ARGUMENT', `missing query parameter ${name} (an integer from ${min} to ${max})`);
    return fallback;
  }
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw bad(
      'INVALID_ARGUMENT',
      `${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(v.slice(0, 40))}`,
    );
  return Number(v);
}

/** A required string query parameter of at most 500 characters. */
export function strParam(q: URLSearchParams, name: string): string {
  const v = q.get(name);
  if (v === null || v === '') throw bad('INVALID_ARGUMENT', `missing query parameter ${name}`);
  if (v.length > 500) throw bad('INVALID_ARGUMENT', `${name} is longer than 500 characters`);
  return v;
}

export type Route = (req: http.IncomingMessage, res: http.ServerResponse, q: URLSearchParams) => Promise<void>;

export interface ListeningServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Listens on host:port and serves `routes` (keyed `METHOD /path`) and the page's assets to
 * requests that carry `token`. PORT_IN_USE or LISTEN_FAILED when it cannot listen.
 */
export async function serve(options: {
  host: string;
  port: number;
  token: string;
  routes: Record<string, Route>;
}): Promise<ListeningServer> {
  const { host, token, routes } = options;
  const tokenBuf = Buffer.from(token);
  const dir = assetDir();
  // Set once the port is known: one cookie per viewer, so two viewers on one host keep their sessions.
  let cookieName = 'featscope_token';

  const authorised = (req: http.IncomingMessage, q: URLSearchParams): boolean => {
    const given =
      q.get('token') ??
      (req.headers.cookie ?? '')
        .split(';')
        .map((c) => c.trim())
        .find((c) => c.startsWith(`${cookieName}=`))
        ?.slice(cookieName.length + 1);
    if (!given) return false;
    const b = Buffer.from(given);
    return b.length === tokenBuf.length && timingSafeEqual(b, tokenBuf);
  };

  const refuse = (res: http.ServerResponse, status: number, code: AnswerCode, message: string) => {
    res.setHeader('Connection', 'close');
    json(res, { error: { code, message } }, status);
  };

  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!hostAllowed(req.headers.host, host)) {
      req.resume();
      return refuse(
        res,
        421,
        'HOST_NOT_ALLOWED',
        `Host ${JSON.stringify(String(req.headers.host ?? '').slice(0, 100))} is not this viewer's: open it by IP address, localhost or ${host}`,
      );
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      req.resume();
      return refuse(res, 400, 'BAD_REQUEST', 'the request target is not a valid URL path');
    }
    const q = url.searchParams;
    const foreign = url.pathname.startsWith('/api/') ? crossOrigin(req) : undefined;
    if (foreign) {
      req.resume();
      return refuse(
        res,
        403,
        'CROSS_ORIGIN',
        `a request from another page (${foreign}) is refused: the viewer answers only its own page`,
      );
    }
    if (!authorised(req, q)) {
      req.resume();
      return fail(
        res,
        new ViewerError(
          'UNAUTHORIZED',
          'this featscope view session needs its token: open the URL the command printed (with ?token=...)',
        ),
      );
    }
    if (url.pathname === '/favicon.ico') {
      req.resume();
      res.writeHead(204, { 'Cache-Control': 'max-age=86400' }).end();
      return;
    }
    const asset = ASSETS[url.pathname];
    if (asset) {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return fail(res, new ViewerError('METHOD_NOT_ALLOWED', `${req.method} ${url.pathname}: only GET`));
      fs.promises.readFile(path.join(dir, asset.file)).then(
        (body) => {
          const extra: Record<string, string> = {};
          if (q.get('token')) extra['Set-Cookie'] = `${cookieName}=${token}; HttpOnly; SameSite=Strict; Path=/`;
          send(res, 200, asset.type, body, extra);
        },
        (err) => fail(res, err),
      );
      return;
    }
    const route = routes[`${req.method} ${url.pathname}`];
    if (!route) {
      req.resume();
      return fail(
        res,
        new ViewerError(
          'NOT_FOUND',
          `nothing at ${req.method} ${url.pathname.slice(0, 100)}; the viewer serves only its page, its assets and /api/*`,
        ),
      );
    }
    route(req, res, q).catch((err) => fail(res, err));
  };

  // Whatever a request holds, it gets an answer and the server goes on: nothing thrown while
  // handling one reaches the process.
  const server = http.createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      req.resume();
      fail(res, err);
    }
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && err.code !== 'ECONNRESET')
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, host, () => resolve());
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new ViewerError(
        'PORT_IN_USE',
        `port ${options.port} on ${host} is in use; choose another with --port, or --port 0 for a free one`,
      );
    throw new ViewerError(
      'LISTEN_FAILED',
      `cannot listen on ${host}:${options.port} (${(err as Error).message}); check --host and --port`,
    );
  }
  const port = (server.address() as { port: number }).port;
  cookieName = `featscope_token_${port}`;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
