/**
 * featscope's one number formatter: numbers for people, in pictures and reports. Three styles,
 * each where its layout needs it:
 * - 'axis' (default): axes, colour bars and captions. 3 significant digits; below 1e-3 and from
 *   1e5 an exponent with one decimal, a trailing .0 dropped: 0.0123, 187, 1e-4, 2.5e5.
 * - 'cell': grid cell labels, fixed decimals so labels line up: 3.41, 0.50, 12.3, 187; below 0.01
 *   and from 1e5 an exponent with one decimal: 1.2e-3.
 * - 'table': report tables. 3 significant digits; below 1e-3 and from 1e6 an exponent with two
 *   decimals: 1.23e-4.
 * Non-finite values are written as JavaScript writes them (NaN, Infinity, -Infinity).
 */
export type NumberStyle = 'axis' | 'cell' | 'table';

export function formatNumber(v: number, style: NumberStyle = 'axis'): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (style === 'cell') {
    if (a < 0.01 || a >= 1e5) return v.toExponential(1);
    return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2);
  }
  if (style === 'table') {
    if (a < 1e-3 || a >= 1e6) return v.toExponential(2);
    return Number(v.toPrecision(3)).toString();
  }
  if (a < 1e-3 || a >= 1e5) {
    const [m, e] = v.toExponential(1).split('e');
    return `${m.replace(/\.0$/, '')}e${Number(e)}`;
  }
  return Number(v.toPrecision(3)).toString();
}
