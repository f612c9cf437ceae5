/**
 * Inline pictures in TypeScript notebooks (tslab, the Jupyter kernel for TypeScript): a channel
 * grid or an overlay from a capture, shown with tslab's documented `display.png(bytes)`.
 * tslab is loaded only when something is shown, so importing featscope never needs it.
 */
import { createRequire } from 'module';
import * as path from 'path';
import { FeatscopeError } from './errors';
import type { PreprocessedImage } from './preprocess';
import { renderChannelGrid, type FramedChannelGridOptions } from './render/grid';
import { drawMeanOverlay } from './render/frame';
import { invalidParameter } from './errors';
import { captureOrigin } from './provenance';
import { encodePng } from './render/canvas';
import {
  channelMean,
  renderOverlay,
  type ChannelGrid,
  type FeatureMaps,
  type Map2D,
  type OverlayOptions,
  type RenderedImage,
} from './render';

interface TslabDisplay {
  png(bytes: Uint8Array): void;
  html(html: string): void;
}

let display: TslabDisplay | undefined;

/** Node's require from this file: tslab is optional and found at run time, so it is no static import. */
const load = createRequire(__filename);

const TSLAB_JUPYTER = /[\\/]tslab[\\/]dist[\\/]jupyter\.js$/;

/**
 * The folder of the tslab package whose kernel is running this process, if any. tslab keeps the
 * running cell's output channel in its `dist/jupyter.js` (`lastWriteDisplayData`, set while a
 * cell runs), so the display to use is the one of that very copy of tslab: a global tslab whose
 * kernel hands over to a local one (tslab does this when the notebook's folder has its own
 * node_modules/tslab) leaves two copies loaded, and only one of them is connected.
 */
function runningTslab(): string | undefined {
  for (const [file, mod] of Object.entries(load.cache)) {
    if (!TSLAB_JUPYTER.test(file)) continue;
    const jupyter = mod?.exports as { lastWriteDisplayData?: unknown } | undefined;
    if (jupyter?.lastWriteDisplayData != null) return path.dirname(path.dirname(file));
  }
  return undefined;
}

/** Folders from which a tslab install would be found: the kernel's and the global ones. */
function tslabSearchRoots(): string[] {
  const roots = [__dirname, process.cwd()];
  // The kernel's own folder (a global `tslab` binary is the main module of the kernel process).
  if (require.main?.filename) roots.push(path.dirname(require.main.filename));
  for (const dir of (process.env.NODE_PATH ?? '').split(path.delimiter)) if (dir) roots.push(dir);
  // The global npm root of the Node.js running this process (<prefix>/lib/node_modules), and npm's prefix.
  roots.push(path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules'));
  if (process.env.npm_config_prefix) roots.push(path.join(process.env.npm_config_prefix, 'lib', 'node_modules'));
  return [...new Set(roots)];
}

/** Where tslab is installed (its package.json), if it is reachable from any of those folders. */
function findTslab(): string | undefined {
  for (const root of tslabSearchRoots()) {
    try {
      return load.resolve('tslab/package.json', { paths: [root] });
    } catch {
      // not reachable from this folder
    }
  }
  return undefined;
}

/**
 * tslab's display API, loaded on first use (tests may pass their own). Inside a tslab kernel it is
 * the running kernel's own tslab, wherever that is installed (global, the kernel's folder, or
 * featscope's), so `showGrid` needs no tslab beside featscope.
 */
export function tslabDisplay(override?: TslabDisplay): TslabDisplay {
  if (override) return override;
  if (!display) {
    const running = runningTslab();
    if (running) {
      display = (load(running) as { display: TslabDisplay }).display;
    } else {
      const installed = findTslab();
      const where = installed
        ? `tslab is installed (${path.dirname(installed)}) but this process is not a running tslab kernel`
        : `tslab is not installed where this process can find it (looked from ${tslabSearchRoots().join(', ')})`;
      throw new FeatscopeError(
        'NOTEBOOK_UNAVAILABLE',
        `featscope notebook helpers show pictures only in a Jupyter notebook on the tslab kernel, the TypeScript kernel for Jupyter; ${where}. Run this in a tslab notebook (npm install -g tslab && tslab install, then pick the TypeScript kernel); outside notebooks, write the PNG from renderChannelGrid() to a file instead`,
      );
    }
  }
  return display;
}

/** Show a channel grid of a capture inline (first 16 channels by default, framed like renderChannelGrid); returns the grid (png, layout). */
export async function showGrid(
  capture: FeatureMaps,
  options: FramedChannelGridOptions = {},
  out?: TslabDisplay,
): Promise<ChannelGrid> {
  const grid = await renderChannelGrid(capture, options);
  tslabDisplay(out).png(grid.png);
  return grid;
}

/**
 * Show a heatmap over the photo inline. `map` is a 2-D map (e.g. Grad-CAM) or a capture, whose
 * mean over channels is used (of image `batchIndex`). A capture from a model is framed as every
 * featscope picture is: the weights banner, the title (layer · channel mean) and a colour bar in
 * real values; `frame: false` gives the bare overlay.
 */
export async function showOverlay(
  image: Pick<PreprocessedImage, 'rgb' | 'width' | 'height'> | string | Buffer,
  map: Map2D | FeatureMaps,
  options: OverlayOptions & { batchIndex?: number; frame?: boolean } = {},
  out?: TslabDisplay,
): Promise<RenderedImage> {
  const { batchIndex, frame, ...overlayOptions } = options;
  if (frame !== undefined && typeof frame !== 'boolean') throw invalidParameter('frame', 'a boolean', frame);
  const capture = 'shape' in map ? map : undefined;
  const origin = capture && frame !== false ? captureOrigin(capture) : undefined;
  let rendered: RenderedImage;
  if (capture && origin) {
    const { canvas: framed } = await drawMeanOverlay(
      image,
      capture,
      { ...overlayOptions, batchIndex },
      { metadata: origin.metadata, title: `${capture.name ?? 'capture'} · channel mean` },
    );
    rendered = { png: await encodePng(framed), width: framed.width, height: framed.height };
  } else {
    const m = capture ? channelMean(capture, batchIndex ?? 0) : (map as Map2D);
    rendered = await renderOverlay(image, m, overlayOptions);
  }
  tslabDisplay(out).png(rendered.png);
  return rendered;
}

/** Show any PNG (e.g. a file written by `featscope render`) inline. */
export function showPng(png: Uint8Array, out?: TslabDisplay): void {
  tslabDisplay(out).png(png);
}
