/** Parsing of user-given colours (backgrounds). */
import { invalidParameter } from '../errors';

export type RGB = [number, number, number];
export type ColorInput = string | readonly [number, number, number];

/** '#rgb', '#rrggbb', or [r, g, b] with 0-255 integers. */
export function parseColor(value: unknown, option: string): RGB {
  if (typeof value === 'string') {
    const m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(value.trim());
    if (m) {
      const hex = m[1].length === 3 ? m[1].replace(/./g, (d) => d + d) : m[1];
      return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16)) as RGB;
    }
  } else if (
    Array.isArray(value) &&
    value.length === 3 &&
    value.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)
  ) {
    return [value[0], value[1], value[2]];
  }
  throw invalidParameter(option, "a colour as '#rrggbb', '#rgb' or [r, g, b] with integers 0-255", value);
}

/** Relative luminance in [0, 1] (sRGB, approximate), to pick readable text colours. */
export function luminance([r, g, b]: RGB): number {
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}

export function toHex([r, g, b]: RGB): string {
  return `#${[r, g, b].map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}
