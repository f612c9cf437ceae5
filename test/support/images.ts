/** Small odd and broken images made with sharp, written to a temporary directory. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';

export interface OddImages {
  dir: string;
  /** 40x20 JPEG, left half red, right half blue, EXIF orientation 6 (display rotated 90 degrees clockwise). */
  oriented: string;
  /** 16x16 8-bit grey PNG, a horizontal ramp. */
  grey: string;
  /** 16x12 RGB PNG with 16 bits per sample. */
  rgb16: string;
  /** 16x12 grey+alpha 16-bit PNG. */
  grey16: string;
  /** 16x16 RGBA PNG: left half opaque green, right half fully transparent red. */
  rgba: string;
  /** Palette PNG with transparency. */
  paletteAlpha: string;
  /** CMYK JPEG of a solid orange. */
  cmyk: string;
  /** Animated GIF: a red frame, then a blue one. */
  animated: string;
  /** First half of a JPEG. */
  truncated: string;
  /** 0 bytes, named .jpg. */
  empty: string;
  /** A text file named .png. */
  textAsPng: string;
  /** 64x48 RGB PNG (for size limits). */
  plain: string;
}

function rawRGB(width: number, height: number, pixel: (x: number, y: number) => number[]): Buffer {
  const channels = pixel(0, 0).length;
  const buf = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) buf.set(pixel(x, y), (y * width + x) * channels);
  return buf;
}

export async function makeOddImages(): Promise<OddImages> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-img-'));
  const p = (name: string) => path.join(dir, name);
  const raw = (w: number, h: number, f: (x: number, y: number) => number[]) =>
    sharp(rawRGB(w, h, f), { raw: { width: w, height: h, channels: f(0, 0).length as 1 | 2 | 3 | 4 } });

  const files: OddImages = {
    dir,
    oriented: p('oriented.jpg'),
    grey: p('grey.png'),
    rgb16: p('rgb16.png'),
    grey16: p('grey16.png'),
    rgba: p('rgba.png'),
    paletteAlpha: p('palette-alpha.png'),
    cmyk: p('cmyk.jpg'),
    animated: p('animated.gif'),
    truncated: p('truncated.jpg'),
    empty: p('empty.jpg'),
    textAsPng: p('not-an-image.png'),
    plain: p('plain.png'),
  };
  await raw(40, 20, (x) => (x < 20 ? [255, 0, 0] : [0, 0, 255]))
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toFile(files.oriented);
  await raw(16, 16, (x) => [x * 16])
    .toColourspace('b-w')
    .png()
    .toFile(files.grey);
  // A Uint16Array input makes sharp read 16-bit samples.
  const rgb16 = new Uint16Array(16 * 12 * 3).map((_, i) => [0x8080, 0x4040, 0xffff][i % 3]);
  await sharp(rgb16, { raw: { width: 16, height: 12, channels: 3 } })
    .toColourspace('rgb16')
    .png()
    .toFile(files.rgb16);
  const grey16 = new Uint16Array(16 * 12 * 2).map((_, i) => (i % 2 === 0 ? 0x2020 : i % 4 === 1 ? 0 : 0xffff));
  await sharp(grey16, { raw: { width: 16, height: 12, channels: 2 } })
    .toColourspace('grey16')
    .png()
    .toFile(files.grey16);
  await raw(16, 16, (x) => (x < 8 ? [0, 255, 0, 255] : [255, 0, 0, 0]))
    .png()
    .toFile(files.rgba);
  await raw(16, 16, (x, y) => (x < 8 ? [0, 0, 255, 255] : [255 * (y % 2), 128, 0, y < 8 ? 0 : 255]))
    .png({ palette: true, colours: 8, dither: 0 })
    .toFile(files.paletteAlpha);
  await raw(16, 16, () => [240, 130, 20])
    .toColourspace('cmyk')
    .jpeg({ quality: 95 })
    .toFile(files.cmyk);
  await sharp(
    rawRGB(8, 16, (_x, y) => (y < 8 ? [255, 0, 0] : [0, 0, 255])),
    {
      raw: { width: 8, height: 16, channels: 3, pageHeight: 8 },
    },
  )
    .gif({ delay: [100, 100] })
    .toFile(files.animated);
  const jpeg = await raw(64, 64, (x, y) => [x * 4, y * 4, 128])
    .jpeg()
    .toBuffer();
  fs.writeFileSync(files.truncated, jpeg.subarray(0, Math.floor(jpeg.length / 2)));
  fs.writeFileSync(files.empty, Buffer.alloc(0));
  fs.writeFileSync(files.textAsPng, 'this is not a PNG\n');
  await raw(64, 48, (x, y) => [x * 4, y * 5, 100])
    .png()
    .toFile(files.plain);
  return files;
}
