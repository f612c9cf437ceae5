/**
 * Inline pictures in TypeScript notebooks (tslab, the Jupyter kernel for TypeScript): a channel
 * grid or an overlay from a capture, shown with tslab's documented `display.png(bytes)`.
 * tslab is loaded only when something is shown, so importing featscope never needs it.
 */
import { FeatscopeError } from './errors';
import type { PreprocessedImage } from './preprocess';
import { renderChannelGrid, type FramedChannelGridOptions } from './grid-api';
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

/** tslab's display API, loaded on first use (tests may pass their own). */
export function tslabDisplay(override?: TslabDisplay): TslabDisplay {
  if (override) return override;
  if (!display) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      display = (require('tslab') as { display: TslabDisplay }).display;
    } catch (err) {
      throw new FeatscopeError(
        'NOTEBOOK_UNAVAILABLE',
        'featscope notebook helpers need tslab, the TypeScript kernel for Jupyter: run this in a tslab notebook (npm install -g tslab && tslab install); outside notebooks, write the PNG from renderChannelGrid() to a file instead',
        { cause: err },
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
 * mean over channels is used (of image `batchIndex`).
 */
export async function showOverlay(
  image: Pick<PreprocessedImage, 'rgb' | 'width' | 'height'> | string | Buffer,
  map: Map2D | FeatureMaps,
  options: OverlayOptions & { batchIndex?: number } = {},
  out?: TslabDisplay,
): Promise<RenderedImage> {
  const { batchIndex, ...overlayOptions } = options;
  const m = 'shape' in map ? channelMean(map, batchIndex ?? 0) : map;
  const rendered = await renderOverlay(image, m, overlayOptions);
  tslabDisplay(out).png(rendered.png);
  return rendered;
}

/** Show any PNG (e.g. a file written by `featscope render`) inline. */
export function showPng(png: Uint8Array, out?: TslabDisplay): void {
  tslabDisplay(out).png(png);
}
