/** A colour bar under a picture, its ends labelled in the data's real values. */
import { type RgbCanvas, blit, fillRect } from './canvas';
import { parseColor } from './color';
import { type ColormapName, colormapRGB } from './colormaps';
import { formatNumber } from './format';
import { INK, MUTED, fitText, textWidth } from './svg';
import { drawText } from './text';

/** Height that withColourBar adds under a picture. */
export const COLOUR_BAR_HEIGHT = 42;

/**
 * `image` with a colour bar under it: the colour map from `lo` (left end) to `hi` (right end),
 * both ends labelled in the data's real values, and a caption saying what the values are. `dx`
 * is where the image now starts (it is centred when the bar needs more width than it has).
 */
export async function withColourBar(
  image: RgbCanvas,
  colormap: ColormapName,
  lo: number,
  hi: number,
  caption: string,
): Promise<{ canvas: RgbCanvas; dx: number }> {
  const width = Math.max(image.width, 320);
  const height = image.height + COLOUR_BAR_HEIGHT;
  const canvas: RgbCanvas = { data: Buffer.alloc(width * height * 3, 255), width, height };
  const dx = Math.floor((width - image.width) / 2);
  blit(canvas, image, dx, 0);
  const ink = parseColor(INK, 'ink');
  const loText = formatNumber(lo);
  const hiText = formatNumber(hi);
  // Room for the end labels at 11 px on either side of the bar.
  const side = Math.ceil(Math.max(textWidth(loText, 11), textWidth(hiText, 11))) + 12;
  const barX = side;
  const barW = Math.max(40, width - 2 * side);
  const barY = image.height + 8;
  fillRect(canvas, barX - 1, barY - 1, barW + 2, 12, [153, 153, 153]);
  for (let x = 0; x < barW; x++)
    fillRect(canvas, barX + x, barY, 1, 10, colormapRGB(colormap, x / Math.max(1, barW - 1)));
  await drawText(canvas, [{ text: loText, x: barX - 6, y: barY + 10 }], { size: 11, colour: ink, anchor: 'end' });
  await drawText(canvas, [{ text: hiText, x: barX + barW + 6, y: barY + 10 }], {
    size: 11,
    colour: ink,
    anchor: 'start',
  });
  await drawText(canvas, [{ text: fitText(caption, 10, width - 16), x: width / 2, y: barY + 26 }], {
    size: 10,
    colour: parseColor(MUTED, 'muted'),
  });
  return { canvas, dx };
}
