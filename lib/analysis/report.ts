/**
 * One self-contained HTML page for an analysis command (gradcam, weights, attack, stats): the
 * report pages' one HTML shell (lib/report/shell: CSP, stylesheet, weights banner), then sections of pictures and tables. Images are
 * inlined as data: URIs; all text is escaped.
 */
import type { Model } from '../model';
import { esc, num, pngDataUri } from '../report/html';
import { PAGE_END, pageStart } from '../report/shell';

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
    pageStart({
      title,
      subtitle: [model.metadata.architecture ?? model.type, model.path, model.device],
      metadata: model.metadata,
      options,
    }) +
    body +
    PAGE_END
  );
}
