/**
 * The one HTML shell of every report page (render's report.html, the merged report, the analysis
 * reports): doctype, Content-Security-Policy, stylesheet, title header, weights banner and the
 * options summary. Pages differ only in what they put between pageStart() and PAGE_END.
 *
 * The CSP allows no script and no network request. Pictures come from data: URIs, and with
 * `assets: 'linked'` also from files beside the page: 'self' (a served page; Chromium also
 * matches a file:// page's neighbours with it) and file: for browsers that give file:// pages an
 * opaque origin. Images only: no script can run to read them.
 */
import type { ModelMetadata } from '../metadata';
import { weightsLabel } from '../metadata';
import { esc } from './html';
import { REPORT_CSS } from './style';

/** How a report carries its pictures: inlined as data: URIs (one file), or linked files beside it. */
export type ReportAssets = 'inline' | 'linked';
export const REPORT_ASSETS: readonly ReportAssets[] = ['inline', 'linked'];

export interface PageShell {
  title: string;
  /** Parts of the line under the title (escaped here), joined with " · ". */
  subtitle: (string | undefined)[];
  metadata: ModelMetadata;
  /** Shown as given: e.g. { layers: 'layer1.0.conv1', channels: 16 }. */
  options?: Record<string, unknown>;
  /** More banners after the weights banner (trusted HTML, built by the caller with esc()). */
  notices?: string;
  assets?: ReportAssets;
  /** Trusted HTML right after <body>, before <main> (the report's view anchors). */
  beforeMain?: string;
  /** More CSS (trusted), e.g. the report's per-layer view rules. */
  css?: string;
}

export function contentSecurityPolicy(assets: ReportAssets = 'inline'): string {
  const img = assets === 'linked' ? "data: 'self' file:" : 'data:';
  return `default-src 'none'; img-src ${img}; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'`;
}

/** The weights banner: red for random weights, amber for unknown ones, a plain line for trained ones. */
export function weightsBanner(metadata: ModelMetadata): string {
  const label = weightsLabel(metadata);
  if (label.trained === false) {
    return (
      `<div class="banner untrained" role="alert"><div class="big">UNTRAINED WEIGHTS</div>` +
      `These results come from a randomly initialised network (${esc(metadata.weights?.source)}), not from learned features. ` +
      `Export a model with trained weights (<code>scripts/export-model.py --weights imagenet</code>) to see what a real CNN sees.</div>`
    );
  }
  if (label.trained === undefined) {
    return `<div class="banner unknown" role="alert"><div class="big">WEIGHTS OF UNKNOWN ORIGIN</div>The model file carries no featscope metadata, so whether its weights are trained is not known.</div>`;
  }
  return `<p class="muted">${esc(label.text)}</p>`;
}

function optionsSummary(options: Record<string, unknown> | undefined): string {
  const items = Object.entries(options ?? {})
    .filter(([, v]) => v !== undefined)
    .map(
      ([k, v]) =>
        `<div><span class="muted">${esc(k)}</span> <code>${esc(Array.isArray(v) ? v.join(', ') : v)}</code></div>`,
    )
    .join('');
  return items ? `<section class="card summary">${items}</section>` : '';
}

/** Everything up to and including the banners and the options summary; the page's body follows. */
export function pageStart(p: PageShell): string {
  const subtitle = p.subtitle
    .filter((s) => s !== undefined && s !== '')
    .map(esc)
    .join(' · ');
  return (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' +
    `<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(p.assets)}">` +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${esc(p.title)}</title><style>${REPORT_CSS}${p.css ?? ''}</style></head><body>` +
    (p.beforeMain ?? '') +
    '<main id="top">' +
    `<header class="top"><h1>${esc(p.title)}</h1><div class="muted">${subtitle}</div></header>` +
    weightsBanner(p.metadata) +
    (p.notices ?? '') +
    optionsSummary(p.options)
  );
}

export const PAGE_END = '</main></body></html>\n';
