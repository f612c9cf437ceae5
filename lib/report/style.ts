/** The report's only stylesheet, inlined. Laid out for a 1280-1440 px laptop screen; narrows to one column below 900 px. */
export const REPORT_CSS = `
:root { --fg:#1b1f24; --muted:#5b6570; --line:#d9dee3; --bg:#f6f7f9; --card:#fff; --accent:#2a6f97; }
* { box-sizing: border-box; }
html { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
body { margin: 0; }
main { max-width: 1360px; margin: 0 auto; padding: 0 24px 48px; }
header.top { padding: 20px 0 8px; }
h1 { font-size: 1.55rem; margin: 0 0 4px; }
h2 { font-size: 1.25rem; margin: 0; overflow-wrap: anywhere; }
h3 { font-size: 1.05rem; margin: 0 0 10px; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.banner { margin: 12px 0 16px; padding: 12px 16px; border-radius: 8px; font-weight: 600; border: 2px solid; }
.banner.untrained { background: #fdecea; border-color: #c62828; color: #8e1b1b; }
.banner.unknown { background: #fff6e0; border-color: #b7791f; color: #6b4a0f; }
.banner.interrupted { background: #fff6e0; border-color: #b7791f; color: #6b4a0f; }
.banner .big { font-size: 1.15rem; letter-spacing: .02em; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin: 16px 0; }
table { border-collapse: collapse; font-size: .92rem; }
th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top; }
th { color: var(--muted); font-weight: 600; white-space: nowrap; }
td { overflow-wrap: anywhere; }
table.data { min-width: 220px; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; padding-right: 14px; }
table.meta td { max-width: 760px; }
table.data thead th { border-bottom: 1px solid var(--line); }
.summary { display: flex; flex-wrap: wrap; gap: 8px 28px; }
.image-head { display: flex; gap: 20px; align-items: flex-start; flex-wrap: wrap; }
.image-head .src { overflow-wrap: anywhere; }
figure { margin: 0; }
/* The caption wraps at the image's width instead of widening the column. */
figure.fit { display: table; }
figure.fit figcaption { display: table-caption; caption-side: bottom; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: 4px; }
img { display: block; max-width: 100%; height: auto; }
img.input { width: 224px; border-radius: 4px; border: 1px solid var(--line); }
.layer { border-top: 1px solid var(--line); padding-top: 14px; margin-top: 16px; }
.layer .tag { display: inline-block; font-size: .8rem; font-weight: 600; color: var(--accent); background: #e8f1f7; border-radius: 4px; padding: 1px 7px; margin-left: 6px; vertical-align: 2px; }
.layer-body { display: grid; grid-template-columns: minmax(0, max-content) minmax(300px, 400px); gap: 20px; align-items: start; }
.grid-img { image-rendering: pixelated; border: 1px solid var(--line); border-radius: 4px; }
.overlay-img { width: 100%; max-width: 400px; border-radius: 4px; }
.side { display: flex; flex-direction: column; gap: 14px; min-width: 0; }
.failed li { overflow-wrap: anywhere; margin: 4px 0; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: .9em; }
nav.toc h3 { margin: 10px 0 0; font-size: .95rem; }
nav.toc ol { margin: 6px 0 0; padding-left: 22px; columns: 3 260px; }
nav.toc ol.layers { columns: 4 200px; }
nav.toc li { break-inside: avoid; }
nav.toc a { color: var(--accent); overflow-wrap: anywhere; }
a { color: var(--accent); }
table.top td { vertical-align: middle; }
table.top th, table.top td { text-align: right; padding-right: 14px; font-variant-numeric: tabular-nums; }
.thumb { display: block; width: var(--tw); height: var(--th); background: var(--maps) no-repeat; background-size: var(--bs); image-rendering: pixelated; outline: 1px solid var(--line); }
/* The per-layer view (no script): the anchor #layer-K before <main> is the URL's target; the
   rules written per layer hide the other layers; these hide what belongs to the full report. */
.view-anchor { position: absolute; top: 0; }
.by-layer, .layer-view-head { display: none; }
.view-anchor:target ~ main nav.toc, .view-anchor:target ~ main .image-head, .view-anchor:target ~ main .after-images { display: none; }
.view-anchor:target ~ main .by-layer { display: block; font-size: 1.05rem; margin: 0 0 6px; }
.view-anchor:target ~ main .layer { border-top: 0; margin-top: 0; padding-top: 0; }
@media (max-width: 900px) { .layer-body { grid-template-columns: minmax(0, 1fr); } }
`;
