/** Finding colour bars in PNGs by their pixels, for the picture tests. */
import sharp from 'sharp';
import { colormapRGB, type ColormapName } from '../../lib/render/colormaps';

export interface Raw {
  data: Buffer;
  width: number;
  height: number;
}

export const decode = async (png: Buffer): Promise<Raw> => {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
};

export const px = (c: Raw, x: number, y: number) => [
  ...c.data.subarray((y * c.width + x) * 3, (y * c.width + x) * 3 + 3),
];
/**
 * The rows of `img` that hold a colour bar of `map`: a run of at least 100 pixels starting with
 * the map's first colour, ending with its last, every pixel on the way a colour of the map.
 */
export function barRows(img: Raw, map: ColormapName): number[] {
  const lut = new Set(Array.from({ length: 256 }, (_, i) => colormapRGB(map, i / 255).join(',')));
  const first = colormapRGB(map, 0).join(',');
  const last = colormapRGB(map, 1).join(',');
  const rows: number[] = [];
  for (let y = 0; y < img.height; y++) {
    let x0 = -1;
    for (let x = 0; x < img.width; x++) {
      const c = px(img, x, y).join(',');
      if (x0 < 0 && c === first) x0 = x;
      else if (x0 >= 0 && !lut.has(c)) break;
      else if (x0 >= 0 && c === last && x - x0 >= 100) {
        rows.push(y);
        break;
      }
    }
  }
  return rows;
}
