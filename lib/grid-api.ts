/**
 * The public renderChannelGrid: lib/render's grid, framed with the model's weights banner and a
 * title (layer name and channel-selection rule) when the capture came from a featscope model, as
 * every picture featscope draws is. `frame: false` gives the bare grid.
 */
import { FRAME_CAPTION_HEIGHT, frameCanvas } from './render/frame';
import { invalidParameter } from './errors';
import { captureOrigin } from './provenance';
import { encodePng } from './render/canvas';
import type { FeatureMaps } from './render/capture';
import { type ChannelGrid, type ChannelGridOptions, drawChannelGrid } from './render/grid';
import { selectionRule } from './visualize';

export interface FramedChannelGridOptions extends ChannelGridOptions {
  /** Banner and title above the grid; default true for captures from a model (others have no model to name). */
  frame?: boolean;
}

export async function renderChannelGrid(
  capture: FeatureMaps,
  options: FramedChannelGridOptions = {},
): Promise<ChannelGrid> {
  const { frame, ...gridOptions } = options ?? {};
  if (frame !== undefined && typeof frame !== 'boolean') throw invalidParameter('frame', 'a boolean', frame);
  const { canvas, layout } = await drawChannelGrid(capture, gridOptions);
  const from = frame === false ? undefined : captureOrigin(capture);
  if (!from) return { png: await encodePng(canvas), width: canvas.width, height: canvas.height, layout };
  const channels = capture.shape.length === 4 ? capture.shape[1] : capture.shape[0];
  // A capture reduced on the device: say the rule it was reduced by ("top 6 by mean, at capture").
  const rule =
    from.selection && gridOptions.channels === undefined
      ? `${from.selection}, at capture`
      : `${selectionRule(gridOptions.channels ?? Math.min(16, channels), channels)}${from.selection ? ` (of ${from.selection}, at capture)` : ''}`;
  const framed = await frameCanvas(canvas, from.metadata, `${capture.name ?? 'capture'} · ${rule}`, []);
  const dx = Math.floor((framed.width - canvas.width) / 2);
  const dy = framed.height - canvas.height - FRAME_CAPTION_HEIGHT;
  return {
    png: await encodePng(framed),
    width: framed.width,
    height: framed.height,
    layout: layout.map((c) => ({ ...c, x: c.x + dx, y: c.y + dy })),
  };
}
