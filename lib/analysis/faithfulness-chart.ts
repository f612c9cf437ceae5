/** Pictures of the faithfulness checks: deletion/insertion curves and the randomisation cascade. */
import type { ModelMetadata } from '../metadata';
import type { RandomisationResult, SaliencyEvaluation } from './faithfulness';
import { SANITY_THRESHOLD } from './faithfulness';
import { niceTicks } from '../render/chart';
import { formatNumber } from '../render/format';
import { BANNER_HEIGHT, weightsBanner } from '../render/frame';
import { BAR, BAR_ALT, GRID, INK, MUTED, fitText, svgDocument, svgToPng, text } from '../render/svg';

export interface CurveSeries {
  /** e.g. 'Grad-CAM', 'gradient'. */
  name: string;
  evaluation: SaliencyEvaluation;
}

const DASH = ['', '6 4', '2 3'];

function legend(items: { colour: string; dash: string; label: string }[], x: number, y: number): string {
  return items
    .map((it, k) => {
      const yy = y + k * 17;
      return (
        `<line x1="${x}" x2="${x + 26}" y1="${yy - 4}" y2="${yy - 4}" stroke="${it.colour}" stroke-width="2.2"${it.dash ? ` stroke-dasharray="${it.dash}"` : ''}/>` +
        text(x + 32, yy, it.label, { size: 11 })
      );
    })
    .join('');
}

/**
 * Deletion (blue) and insertion (orange) curves, one line style per map: the probability of the
 * target class against the fraction of pixels deleted or inserted, with each curve's AUC.
 */
export async function renderCurvesChart(
  meta: ModelMetadata,
  series: CurveSeries[],
  o: { subject: string; className: string; step: number },
): Promise<{ png: Buffer; width: number; height: number }> {
  const width = 520;
  const items: { colour: string; dash: string; label: string; p: number[] }[] = [];
  series.forEach((s, k) => {
    for (const [metric, colour] of [
      ['deletion', BAR],
      ['insertion', BAR_ALT],
    ] as const) {
      const c = s.evaluation[metric];
      if (c)
        items.push({
          colour,
          dash: DASH[k % DASH.length],
          label: `${s.name} ${metric}: AUC ${c.auc.toFixed(4)}`,
          p: c.probabilities,
        });
    }
  });
  const legendH = items.length * 17 + 23;
  const top = BANNER_HEIGHT + 58;
  const plotH = 200;
  const left = 64;
  const plotW = width - left - 20;
  const height = top + plotH + 44 + legendH;
  const ymax = Math.max(1e-12, ...items.flatMap((it) => it.p));
  const ticks = niceTicks(0, ymax);
  const hi = ticks[ticks.length - 1];
  const toX = (f: number) => left + f * plotW;
  const toY = (v: number) => top + plotH - (v / hi) * plotH;
  const parts: string[] = [weightsBanner(meta, width)];
  parts.push(
    text(10, BANNER_HEIGHT + 20, fitText(`Deletion / insertion · ${o.subject}`, 15, width - 20), {
      size: 15,
      weight: 'bold',
    }),
  );
  parts.push(
    text(10, BANNER_HEIGHT + 40, fitText(`class ${o.className} · ${o.step} pixels per step`, 11, width - 20), {
      size: 11,
      fill: MUTED,
    }),
  );
  for (const t of ticks) {
    const y = toY(t);
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="${GRID}"/>`);
    parts.push(text(left - 6, y + 4, formatNumber(t), { size: 11, anchor: 'end', fill: MUTED }));
  }
  for (let f = 0; f <= 1.0001; f += 0.2) {
    const x = toX(f);
    parts.push(
      `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${top + plotH}" y2="${top + plotH + 4}" stroke="${INK}"/>`,
    );
    parts.push(
      text(x, top + plotH + 17, formatNumber(Number(f.toFixed(1))), { size: 11, anchor: 'middle', fill: MUTED }),
    );
  }
  parts.push(
    text(left + plotW / 2, top + plotH + 34, 'fraction of pixels deleted / inserted', {
      size: 12,
      anchor: 'middle',
      fill: MUTED,
    }),
  );
  parts.push(text(16, top + plotH / 2, 'p(class)', { size: 12, anchor: 'middle', fill: MUTED, rotate: -90 }));
  for (const it of items) {
    const n = it.p.length - 1;
    const pts = it.p.map((v, i) => `${toX(i / n).toFixed(1)},${toY(v).toFixed(1)}`).join(' ');
    parts.push(
      `<polyline points="${pts}" fill="none" stroke="${it.colour}" stroke-width="1.8"${it.dash ? ` stroke-dasharray="${it.dash}"` : ''}/>`,
    );
  }
  parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="${INK}"/>`);
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="${INK}"/>`);
  parts.push(legend(items, left, top + plotH + 56));
  parts.push(
    text(
      left,
      top + plotH + 56 + items.length * 17,
      'faithful map: deletion falls fast (low AUC), insertion rises fast (high AUC)',
      {
        size: 11,
        fill: MUTED,
      },
    ),
  );
  return { png: await svgToPng(svgDocument(width, height, parts.join(''))), width, height };
}

export interface SanitySeries {
  name: string;
  result: RandomisationResult;
  /** Which image of the result. */
  image: number;
}

/**
 * The cascade: Spearman correlation of |map| with the original after each step (x: the layer
 * randomised at that step, on top of those left of it), the 0.5 threshold and the step where
 * the top half of the layers is randomised; each map is marked PASS or FAILS.
 */
export async function renderSanityChart(
  meta: ModelMetadata,
  series: SanitySeries[],
  o: { subject: string },
): Promise<{ png: Buffer; width: number; height: number }> {
  const layers = series[0].result.steps.map((s) => s.layer);
  const width = Math.max(520, 90 + layers.length * 16);
  const labelSize = layers.length > 40 ? 9 : 10;
  const under = Math.min(150, Math.ceil(Math.max(4, ...layers.map((l) => l.length)) * 0.62 * labelSize * 0.87) + 16);
  const top = BANNER_HEIGHT + 58;
  const plotH = 200;
  const left = 64;
  const plotW = width - left - 20;
  const legendH = series.length * 17 + 6;
  const height = top + plotH + under + 20 + legendH;
  const toY = (v: number) => top + plotH - ((v + 1) / 2) * plotH;
  const slot = plotW / layers.length;
  const toX = (k: number) => left + slot * (k + 0.5);
  const parts: string[] = [weightsBanner(meta, width)];
  parts.push(
    text(10, BANNER_HEIGHT + 20, fitText(`Randomisation check · ${o.subject}`, 15, width - 20), {
      size: 15,
      weight: 'bold',
    }),
  );
  parts.push(
    text(
      10,
      BANNER_HEIGHT + 40,
      fitText('each step permutes one more layer’s weights, from the output back (x: the layer added)', 11, width - 20),
      { size: 11, fill: MUTED },
    ),
  );
  for (const t of [-1, -0.5, 0, 0.5, 1]) {
    const y = toY(t);
    parts.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="${t === SANITY_THRESHOLD ? '#c62828' : GRID}"${t === SANITY_THRESHOLD ? ' stroke-dasharray="5 3"' : ''}/>`,
    );
    parts.push(text(left - 6, y + 4, formatNumber(t), { size: 11, anchor: 'end', fill: MUTED }));
  }
  const half = series[0].result.half;
  const hx = left + slot * (half + 1);
  parts.push(
    `<line x1="${hx.toFixed(1)}" x2="${hx.toFixed(1)}" y1="${top}" y2="${top + plotH}" stroke="${MUTED}" stroke-dasharray="3 3"/>`,
  );
  parts.push(text(hx - 4, top + 12, 'top half randomised', { size: 10, anchor: 'end', fill: MUTED }));
  parts.push(
    text(16, top + plotH / 2, 'Spearman ρ with the original |map|', {
      size: 11,
      anchor: 'middle',
      fill: MUTED,
      rotate: -90,
    }),
  );
  layers.forEach((l, k) =>
    parts.push(text(toX(k) + 3, top + plotH + 10, l, { size: labelSize, anchor: 'end', rotate: -60 })),
  );
  const colours = [BAR, BAR_ALT, '#2e7d32'];
  series.forEach((s, j) => {
    const colour = colours[j % colours.length];
    const pts: string[] = [];
    s.result.steps.forEach((st, k) => {
      const r = st.correlations[s.image];
      if (r === null) return;
      pts.push(`${toX(k).toFixed(1)},${toY(r).toFixed(1)}`);
      parts.push(`<circle cx="${toX(k).toFixed(1)}" cy="${toY(r).toFixed(1)}" r="3" fill="${colour}"/>`);
    });
    if (pts.length > 1)
      parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${colour}" stroke-width="1.6"/>`);
  });
  parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="${INK}"/>`);
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="${INK}"/>`);
  const ly = top + plotH + under + 20;
  series.forEach((s, j) => {
    const im = s.result.images[s.image];
    const r = im.correlationAtHalf;
    const verdict = im.fails
      ? `FAILS: ρ = ${r!.toFixed(3)} > ${SANITY_THRESHOLD} after the top half`
      : `passes: ρ = ${r === null ? 'undefined (constant map)' : r.toFixed(3)} after the top half`;
    const y = ly + j * 17;
    parts.push(`<circle cx="${left + 5}" cy="${y - 4}" r="4" fill="${colours[j % colours.length]}"/>`);
    parts.push(
      text(left + 16, y, fitText(`${s.name}: ${verdict}`, 11, width - left - 30), {
        size: 11,
        fill: im.fails ? '#c62828' : INK,
        weight: im.fails ? 'bold' : 'normal',
      }),
    );
  });
  return { png: await svgToPng(svgDocument(width, height, parts.join(''))), width, height };
}
