/**
 * One self-contained HTML page for an analysis command (gradcam, weights, attack, stats): the
 * report's stylesheet and weights banner, then sections of pictures and tables. Images are
 * inlined as data: URIs; all text is escaped.
 */
import { weightsLabel } from '../metadata';
import type { Model } from '../model';
import { esc, num, pngDataUri } from '../report/html';
import { REPORT_CSS } from '../report/style';

export interface AnalysisSection {
  heading: string;
  /** Short text under the heading (escaped). */
  note?: string;
  images?: { png: Buffer; caption: string; width?: number }[];
  /** A table: header row, then rows (numbers are formatted to 3 significant digits). */
  table?: { head: string[]; rows: (string | number)[][] };
}

export function analysisReport(
  model: Model,
  title: string,
  options: Record<string, unknown>,
  sections: AnalysisSection[],
): string {
  const label = weightsLabel(model.metadata);
  const banner =
    label.trained === false
      ? `<div class="banner untrained" role="alert"><div class="big">UNTRAINED WEIGHTS</div>${esc(label.text)}. Export a model with trained weights (<code>scripts/export-model.py --weights imagenet</code>) for meaningful results.</div>`
      : label.trained === undefined
        ? `<div class="banner unknown" role="alert"><div class="big">WEIGHTS OF UNKNOWN ORIGIN</div>${esc(label.text)}.</div>`
        : `<p class="muted">${esc(label.text)}</p>`;
  const opts = Object.entries(options)
    .filter(([, v]) => v !== undefined)
    .map(
      ([k, v]) =>
        `<div><span class="muted">${esc(k)}</span> <code>${esc(Array.isArray(v) ? v.join(', ') : v)}</code></div>`,
    )
    .join('');
  const cell = (v: string | number, i: number) =>
    typeof v === 'number'
      ? `<td class="n">${esc(num(v))}</td>`
      : i === 0
        ? `<td><code>${esc(v)}</code></td>`
        : `<td>${esc(v)}</td>`;
  const body = sections
    .map((s) => {
      const images = (s.images ?? [])
        .map(
          (im) =>
            `<figure class="fit"><img src="${pngDataUri(im.png)}" alt="${esc(im.caption)}"${im.width ? ` style="max-width:${im.width}px"` : ''}><figcaption>${esc(im.caption)}</figcaption></figure>`,
        )
        .join('');
      const table = s.table
        ? `<table class="data"><thead><tr>${s.table.head.map((h, i) => `<th${i > 0 ? ' class="n"' : ''}>${esc(h)}</th>`).join('')}</tr></thead><tbody>${s.table.rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('')}</tbody></table>`
        : '';
      return `<section class="card"><h2>${esc(s.heading)}</h2>${s.note ? `<p class="muted">${esc(s.note)}</p>` : ''}${images}${table}</section>`;
    })
    .join('');
  return (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' +
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">` +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${esc(title)}</title><style>${REPORT_CSS}</style></head><body><main>` +
    `<header class="top"><h1>${esc(title)}</h1><div class="muted">${esc(model.metadata.architecture ?? model.type)} · ${esc(model.path)} · ${esc(model.device)}</div></header>` +
    banner +
    (opts ? `<section class="card summary">${opts}</section>` : '') +
    body +
    '</main></body></html>\n'
  );
}
