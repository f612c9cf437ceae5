/**
 * One self-contained HTML page for an analysis command (gradcam, weights, attack, stats): the
 * report pages' one HTML shell (lib/report/shell: CSP, stylesheet, weights banner), then
 * sections of pictures and tables. Images are inlined as data: URIs, or linked files beside the
 * page (--report-assets linked); all text is escaped.
 */
import type { Model } from '../model';
import { formatNumber } from '../render/format';
import { esc, pngDataUri } from '../report/html';
import { writeAtomic } from '../fsutil';
import { assetFolder } from '../report/assets';
import { PAGE_END, pageStart, type ReportAssets } from '../report/shell';

export interface AnalysisSection {
  heading: string;
  /** Short text under the heading (escaped). */
  note?: string;
  images?: { png: Buffer; caption: string; width?: number }[];
  /** A table: header row, then rows (numbers are formatted to 3 significant digits). */
  table?: { head: string[]; rows: (string | number)[][] };
}

/** The page as one self-contained string: pictures inlined as data: URIs. */
export function analysisReport(
  model: Model,
  title: string,
  options: Record<string, unknown>,
  sections: AnalysisSection[],
): string {
  return renderAnalysisPage({ model, title, options, sections }, 'inline', (im) => pngDataUri(im.png));
}

/** What an analysis page shows, for writeAnalysisReport(). */
export interface AnalysisPage {
  model: Model;
  title: string;
  options: Record<string, unknown>;
  sections: AnalysisSection[];
}

export function analysisPage(
  model: Model,
  title: string,
  options: Record<string, unknown>,
  sections: AnalysisSection[],
): AnalysisPage {
  return { model, title, options, sections };
}

/**
 * Write the page to `file`: `assets: 'inline'` (default) as analysisReport() gives it;
 * `'linked'` with its pictures in `<page>_files/` beside it (a<section>-<picture>.png), the folder
 * swapped in whole before the page is written, so neither is ever half-written.
 */
export async function writeAnalysisReport(
  file: string,
  page: AnalysisPage,
  assets: ReportAssets = 'inline',
): Promise<void> {
  const { model, title, options, sections } = page;
  if (assets === 'inline') {
    await writeAtomic(file, analysisReport(model, title, options, sections));
    return;
  }
  const folder = await assetFolder(file);
  try {
    const urls = new Map<Buffer, string>();
    for (const [i, s] of sections.entries())
      for (const [j, im] of (s.images ?? []).entries()) urls.set(im.png, await folder.put(`a${i}-${j}.png`, im.png));
    const html = renderAnalysisPage(page, 'linked', (im) => urls.get(im.png)!);
    await folder.commit();
    await writeAtomic(file, html);
  } catch (err) {
    await folder.abort();
    throw err;
  }
}

function renderAnalysisPage(
  { model, title, options, sections }: AnalysisPage,
  assets: ReportAssets,
  srcOf: (image: { png: Buffer }) => string,
): string {
  const cell = (v: string | number, i: number) =>
    typeof v === 'number'
      ? `<td class="n">${esc(formatNumber(v, 'table'))}</td>`
      : i === 0
        ? `<td><code>${esc(v)}</code></td>`
        : `<td>${esc(v)}</td>`;
  const body = sections
    .map((s) => {
      const images = (s.images ?? [])
        .map(
          (im) =>
            `<figure class="fit"><img src="${esc(srcOf(im))}" alt="${esc(im.caption)}"${im.width ? ` style="max-width:${im.width}px"` : ''}><figcaption>${esc(im.caption)}</figcaption></figure>`,
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
      assets,
    }) +
    body +
    PAGE_END
  );
}
