/** Charts drawn in SVG: round axis ticks and a bar chart with linear or log axes. */
import { formatNumber } from './format';
import { BAR, BAR_ALT, EM_PER_CHAR, GRID, INK, MUTED, text, textWidth } from './svg';

/**
 * Round tick values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten, about five
 * of them, from a multiple of the step at or below lo to one at or above hi.
 */
export function niceTicks(lo: number, hi: number): number[] {
  if (!(hi > lo))
    return lo === hi && Number.isFinite(lo) ? niceTicks(lo - (Math.abs(lo) || 1), lo + (Math.abs(lo) || 1)) : [0, 1];
  const raw = (hi - lo) / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((v) => v >= raw) ?? 10 * p;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

export interface Bar {
  label: string;
  value: number;
  /** A second value drawn as a dot series over the bars (e.g. activation norms). */
  second?: number;
  /** Highlight this bar (e.g. the most divergent layer). */
  highlight?: boolean;
}

export interface BarChartSpec {
  x: number;
  y: number;
  width: number;
  height: number;
  title: string;
  yLabel: string;
  bars: Bar[];
  log?: boolean;
  color?: string;
  /** Legend entries: [colour, text]. */
  legend?: [string, string][];
  secondLabel?: string;
}

/** Space under a chart's plot area that rotated x labels need. */
export function labelSpace(bars: Bar[], size: number): number {
  const longest = Math.max(4, ...bars.map((b) => b.label.length));
  return Math.min(150, Math.ceil(longest * EM_PER_CHAR * size * Math.sin(Math.PI / 3)) + 14);
}

function niceLinearTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const ticks: number[] = [];
  for (let t = 0; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

/** A bar chart (one bar per entry, labels rotated under it), drawn at (x, y) within width x height. */
export function barChart(s: BarChartSpec): string {
  const tickSize = 11;
  const labelSize = s.bars.length > 40 ? 9 : s.bars.length > 24 ? 10 : 11;
  const under = labelSpace(s.bars, labelSize);
  const left = s.x + 64;
  const top = s.y + (s.legend ? 54 : 40);
  const plotW = s.width - 64 - 16;
  const plotH = s.height - (top - s.y) - under;
  const values = s.bars.flatMap((b) => [b.value, b.second ?? NaN]).filter((v) => Number.isFinite(v));
  const parts: string[] = [];
  parts.push(text(s.x + 4, s.y + 18, s.title, { size: 15, weight: 'bold' }));
  if (s.legend) {
    let lx = s.x + s.width - 16;
    for (const [colour, label] of [...s.legend].reverse()) {
      const w = textWidth(label, 11);
      lx -= w;
      parts.push(text(lx, s.y + 38, label, { size: 11, fill: MUTED }));
      lx -= 16;
      parts.push(
        colour.startsWith('dot:')
          ? `<circle cx="${lx + 5.5}" cy="${s.y + 34.5}" r="4" fill="${colour.slice(4)}"/>`
          : `<rect x="${lx}" y="${s.y + 29}" width="11" height="11" fill="${colour}"/>`,
      );
      lx -= 14;
    }
  }
  let toY: (v: number) => number;
  let ticks: number[];
  if (s.log) {
    const positive = values.filter((v) => v > 0);
    let lo = Math.floor(Math.log10(Math.min(...positive, 1)));
    let hi = Math.ceil(Math.log10(Math.max(...positive, 1e-12)));
    if (positive.length === 0) [lo, hi] = [-1, 0];
    if (hi <= lo) hi = lo + 1;
    ticks = [];
    for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
    toY = (v) => top + plotH - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * plotH;
  } else {
    ticks = niceLinearTicks(Math.max(0, ...values));
    const hi = ticks[ticks.length - 1] || 1;
    toY = (v) => top + plotH - (Math.max(0, v) / hi) * plotH;
  }
  for (const t of ticks) {
    const ty = toY(t);
    parts.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${ty.toFixed(1)}" y2="${ty.toFixed(1)}" stroke="${GRID}"/>`,
    );
    parts.push(text(left - 6, ty + 4, formatNumber(t), { size: tickSize, anchor: 'end', fill: MUTED }));
  }
  parts.push(text(s.x + 14, top + plotH / 2, s.yLabel, { size: 12, anchor: 'middle', fill: MUTED, rotate: -90 }));
  const slot = plotW / Math.max(1, s.bars.length);
  const barW = Math.max(2, Math.min(36, slot * 0.72));
  const base = top + plotH;
  s.bars.forEach((b, i) => {
    const cx = left + slot * (i + 0.5);
    if (Number.isFinite(b.value) && (!s.log || b.value > 0)) {
      const by = toY(b.value);
      const colour = b.highlight ? BAR_ALT : (s.color ?? BAR);
      parts.push(
        `<rect x="${(cx - barW / 2).toFixed(1)}" y="${by.toFixed(1)}" width="${barW.toFixed(1)}" height="${Math.max(0.5, base - by).toFixed(1)}" fill="${colour}"/>`,
      );
    }
    if (b.second !== undefined && Number.isFinite(b.second) && (!s.log || b.second > 0)) {
      parts.push(`<circle cx="${cx.toFixed(1)}" cy="${toY(b.second).toFixed(1)}" r="3.5" fill="${INK}"/>`);
    }
    parts.push(
      text(cx + 3, base + 10, b.label, {
        size: labelSize,
        anchor: 'end',
        fill: b.highlight ? BAR_ALT : INK,
        rotate: -60,
        weight: b.highlight ? 'bold' : 'normal',
      }),
    );
  });
  if (s.bars.some((b) => b.second !== undefined)) {
    const pts = s.bars
      .map((b, i) =>
        b.second !== undefined && Number.isFinite(b.second) && (!s.log || b.second > 0)
          ? `${(left + slot * (i + 0.5)).toFixed(1)},${toY(b.second).toFixed(1)}`
          : '',
      )
      .filter(Boolean);
    if (pts.length > 1)
      parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${INK}" stroke-width="1.2"/>`);
  }
  parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${base}" y2="${base}" stroke="${INK}"/>`);
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${base}" stroke="${INK}"/>`);
  return parts.join('');
}
