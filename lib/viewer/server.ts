/**
 * `featscope view`: a local HTTP server (node:http) over the library's own functions. Every
 * request needs the session's random token (query `token` once, then an HttpOnly, SameSite=Strict
 * cookie); without it the answer is 401 and nothing is served. It serves its own assets (a fixed
 * list, never a path from the request) and the images it was given or received, by id only.
 * Bad requests get 4xx JSON `{ error: { code, message } }` with the library's codes or the
 * viewer's own (codes.ts).
 *
 * Three parts: state.ts (models, images, caches), routes.ts (the API), http.ts (token, Host and
 * Origin checks, body limits, errors); overlays.ts draws the overlay pictures.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import { bad } from './codes';
import { serve } from './http';
import { viewerRoutes } from './routes';
import { ViewerState } from './state';

export interface ViewerOptions {
  /** Image files (already expanded from folders and globs). */
  images: string[];
  /** One model, or two for "one image through two models". */
  models: string[];
  host?: string;
  /** 0: a free port. */
  port?: number;
  device?: 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;
  /** Largest upload in bytes; default 20 MiB. */
  uploadLimit?: number;
  /** Decoding limit for every image, as in the CLI; default DEFAULT_MAX_INPUT_PIXELS. */
  maxInputPixels?: number;
  /** Bytes the forward cache may hold; default 512 MiB. */
  cacheBytes?: number;
  /** Fixed token (tests); default 24 random bytes. */
  token?: string;
}

export interface Viewer {
  url: string;
  token: string;
  host: string;
  port: number;
  /** Forwards run so far (each (model, image, layer set) once while cached). */
  forwards(): number;
  /** The most image decodes that ran at once (at most 2, whatever the number of uploads). */
  peakDecodes(): number;
  close(): Promise<void>;
}

export async function startViewer(options: ViewerOptions): Promise<Viewer> {
  const host = options.host ?? '127.0.0.1';
  const uploadLimit = options.uploadLimit ?? 20 * 1024 * 1024;
  const token = options.token ?? randomBytes(24).toString('base64url');
  if (options.models.length < 1 || options.models.length > 2)
    throw bad(
      'INVALID_ARGUMENT',
      `view takes one model or two (--model a.pt --model b.pt), not ${options.models.length}`,
    );
  for (const file of options.images) {
    if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
      throw bad(
        'IMAGE_NOT_FOUND',
        `image ${JSON.stringify(file)} does not exist or is not a file; give image files, folders or globs`,
      );
    }
  }
  const state = await ViewerState.open(options.models, options.images, options);
  let server;
  try {
    server = await serve({ host, port: options.port ?? 0, token, routes: viewerRoutes(state, uploadLimit) });
  } catch (err) {
    state.dispose();
    throw err;
  }
  const { port } = server;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${port}/?token=${token}`,
    token,
    host,
    port,
    forwards: () => state.forwardCount,
    peakDecodes: () => state.decodes.peak,
    close() {
      closed ??= server.close().then(() => state.dispose());
      return closed;
    },
  };
}
