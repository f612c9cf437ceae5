/**
 * report.html: one self-contained file — images inlined as data: URIs (photo-like inputs and
 * overlays as JPEG, channel grids as PNG), one inline stylesheet, no
 * scripts, and a Content-Security-Policy that forbids scripts and every network request. All text
 * that comes from a model (layer names, metadata) or a file name is escaped.
 *
 * The report is written as a stream, one image at a time, so its memory does not grow with the
 * number of images; `limit` caps how many images it shows (the manifest lists all).
 */
import { promises as fs } from 'fs';
import { once } from 'events';
import type { ModelMetadata } from '../metadata';
import { weightsLabel } from '../metadata';
import { atomicStream } from '../fsutil';
import sharp from 'sharp';
import { esc, jpegDataUri, num, percent, pngDataUri } from './html';
import { REPORT_CSS } from './style';

export { esc } from './html';

export interface ReportTopChannel {
  channel: number;
  score: number;
  maxAt: { y: number; x: number };
}

export interface ReportLayer {
  name: string;
  type?: string;
  /** [C, H, W]. */
  shape: number[];
  /** Absolute or working-directory-relative paths of the PNGs to inline. */
  grid: string;
  overlay?: string;
  gridChannels?: number[];
  top: ReportTopChannel[];
  stats: { min: number; max: number; mean: number; zeroFraction: number; deadChannels: number[] };
}

export interface ReportImage {
  source: string;
  input: string;
  inputSize?: [number, number];
  layers: ReportLayer[];
}

export interface ReportFailure {
  source: string;
  code?: string;
  message: string;
}

export interface ReportData {
  title?: string;
  created?: Date;
  featscopeVersion?: string;
  model: { path: string; device?: string; type?: string; metadata: ModelMetadata };
  /** Shown as given: e.g. { layers: 'layer1.0.conv1', channels: 16, colormap: 'viridis' }. */
  options?: Record<string, unknown>;
  images: Iterable<ReportImage> | AsyncIterable<ReportImage>;
  /** How many images were rendered in all (the report may show fewer). */
  totalImages?: number;
  failed?: ReportFailure[];
  interrupted?: boolean;
  /** Show at most this many images; default 200. */
  limit?: number;
}

/** Write the report to `file` (temporary name, then rename). */
export async function writeReport(file: string, data: ReportData): Promise<{ images: number }> {
  const out = atomicStream(file);
  const write = async (text: string) => {
    if (!out.stream.write(text)) await once(out.stream, 'drain');
  };
  try {
    const limit = data.limit ?? 200;
    await write(head(data));
    let shown = 0;
    let index = 0;
    for await (const image of data.images as AsyncIterable<ReportImage>) {
      if (shown >= limit) {
        index++;
        continue;
      }
      await write(await imageSection(image, index));
      shown++;
      index++;
    }
    const total = data.totalImages ?? index;
    if (shown === 0) await write('<section class="card"><p>No image was rendered.</p></section>');
    if (total > shown) {
      await write(
        `<p class="muted">Showing ${shown} of ${total} images; <code>manifest.json</code> lists all of them.</p>`,
      );
    }
    await write(failures(data.failed ?? []));
    await write(modelSection(data));
    await write('</main></body></html>\n');
    await out.commit();
    return { images: shown };
  } catch (err) {
    await out.abort();
    throw err;
  }
}

function head(data: ReportData): string {
  const meta = data.model.metadata;
  const label = weightsLabel(meta);
  const title = data.title ?? 'featscope report';
  const created = (data.created ?? new Date())
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
  let banner = '';
  if (label.trained === false) {
    banner =
      `<div class="banner untrained" role="alert"><div class="big">UNTRAINED WEIGHTS</div>` +
      `These feature maps come from a randomly initialised network (${esc(meta.weights?.source)}), not from learned features. ` +
      `Export a model with trained weights (<code>scripts/export-model.py --weights imagenet</code>) to see what a real CNN sees.</div>`;
  } else if (label.trained === undefined) {
    banner = `<div class="banner unknown" role="alert"><div class="big">WEIGHTS OF UNKNOWN ORIGIN</div>The model file carries no featscope metadata, so whether its weights are trained is not known.</div>`;
  }
  if (data.interrupted) {
    banner += `<div class="banner interrupted" role="status">The run was interrupted: this report shows the images finished before it stopped. Rerun with <code>--resume</code> to finish the rest.</div>`;
  }
  const options = Object.entries(data.options ?? {})
    .filter(([, v]) => v !== undefined)
    .map(
      ([k, v]) =>
        `<div><span class="muted">${esc(k)}</span> <code>${esc(Array.isArray(v) ? v.join(', ') : v)}</code></div>`,
    )
    .join('');
  return (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' +
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">` +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${esc(title)}</title><style>${REPORT_CSS}</style></head><body><main>` +
    `<header class="top"><h1>${esc(title)}</h1>` +
    `<div class="muted">${esc(meta.architecture ?? data.model.type ?? 'model')} · ${esc(data.model.path)} · ${esc(created)}` +
    `${data.featscopeVersion ? ` · featscope ${esc(data.featscopeVersion)}` : ''}</div></header>` +
    banner +
    (options ? `<section class="card summary">${options}</section>` : '')
  );
}

/** JPEG quality of photo-like pictures (inputs, overlays); channel grids stay PNG (sharp edges, small colour tables). */
export const REPORT_JPEG_QUALITY = 85;

async function inline(
  file: string,
  alt: string,
  cls: string,
  width?: number,
  height?: number,
  photo = false,
): Promise<string> {
  const png = await fs.readFile(file);
  const size = width && height ? ` width="${width}" height="${height}"` : '';
  const uri = photo ? jpegDataUri(await sharp(png).jpeg({ quality: REPORT_JPEG_QUALITY }).toBuffer()) : pngDataUri(png);
  return `<img class="${cls}" src="${uri}" alt="${esc(alt)}"${size}>`;
}

/** PNG width and height from its IHDR chunk (so the page does not reflow as images decode). */
async function pngSize(file: string): Promise<[number, number] | undefined> {
  const fh = await fs.open(file, 'r');
  try {
    const b = Buffer.alloc(24);
    await fh.read(b, 0, 24, 0);
    if (b.toString('latin1', 12, 16) !== 'IHDR') return undefined;
    return [b.readUInt32BE(16), b.readUInt32BE(20)];
  } finally {
    await fh.close();
  }
}

async function imageSection(image: ReportImage, index: number): Promise<string> {
  const inputSize = await pngSize(image.input);
  const input = await inline(
    image.input,
    `model input for ${image.source}`,
    'input',
    inputSize?.[0],
    inputSize?.[1],
    true,
  );
  const layers: string[] = [];
  for (const layer of image.layers) layers.push(await layerSection(image, layer));
  const size = inputSize ? `${inputSize[0]}×${inputSize[1]}` : '';
  return (
    `<section class="card" id="img-${index}"><div class="image-head">` +
    `<figure>${input}<figcaption>Model input ${esc(size)}</figcaption></figure>` +
    `<div><h2>${esc(baseName(image.source))}</h2><div class="muted src">${esc(image.source)}</div>` +
    `<div class="muted">${image.layers.length} layer${image.layers.length === 1 ? '' : 's'}: ${image.layers.map((l) => `<code>${esc(l.name)}</code>`).join(', ')}</div></div>` +
    `</div>${layers.join('')}</section>`
  );
}

function baseName(p: string): string {
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] || p;
}

async function layerSection(image: ReportImage, layer: ReportLayer): Promise<string> {
  const gridSize = await pngSize(layer.grid);
  const [c, h, w] = layer.shape;
  const shown = layer.gridChannels?.length;
  const grid = await inline(
    layer.grid,
    `channel grid of ${layer.name} for ${image.source}`,
    'grid-img',
    gridSize?.[0],
    gridSize?.[1],
  );
  const overlay = layer.overlay
    ? `<figure>${await inline(layer.overlay, `mean activation of ${layer.name} over ${image.source}`, 'overlay-img', undefined, undefined, true)}` +
      `<figcaption>Mean over all ${c} channels, over the input (turbo: blue low, red high)</figcaption></figure>`
    : '';
  const s = layer.stats;
  const dead = s.deadChannels;
  const deadText =
    dead.length === 0 ? 'none' : `${dead.length} of ${c}${dead.length <= 12 ? ` (${dead.join(', ')})` : ''}`;
  const statsTable =
    '<table class="data"><tbody>' +
    `<tr><th>mean</th><td class="n">${esc(num(s.mean))}</td></tr>` +
    `<tr><th>max</th><td class="n">${esc(num(s.max))}</td></tr>` +
    `<tr><th>min</th><td class="n">${esc(num(s.min))}</td></tr>` +
    `<tr><th>zero activations</th><td class="n">${esc(percent(s.zeroFraction))}</td></tr>` +
    `<tr><th>dead channels</th><td class="n">${esc(deadText)}</td></tr>` +
    '</tbody></table>';
  const top =
    '<table class="data"><thead><tr><th class="n">#</th><th class="n">channel</th><th class="n">max</th><th>at (y, x)</th></tr></thead><tbody>' +
    layer.top
      .map(
        (t, i) =>
          `<tr><td class="n">${i + 1}</td><td class="n">${t.channel}</td><td class="n">${esc(num(t.score))}</td><td>${t.maxAt.y}, ${t.maxAt.x}</td></tr>`,
      )
      .join('') +
    '</tbody></table>';
  return (
    `<article class="layer"><h3><code>${esc(layer.name)}</code>` +
    `${layer.type ? `<span class="tag">${esc(layer.type)}</span>` : ''}<span class="tag">${c} × ${h} × ${w}</span></h3>` +
    `<div class="layer-body"><figure class="fit">${grid}<figcaption>${shown ? `${shown} of ${c} channels` : 'channels'}; each cell has its own colour range (viridis: dark low, yellow high); labels give the cell's max</figcaption></figure>` +
    `<div class="side">${overlay}<div><h4 class="muted" style="margin:0 0 4px">Layer statistics</h4>${statsTable}</div>` +
    `<div><h4 class="muted" style="margin:0 0 4px">Top channels by max activation</h4>${top}</div></div></div></article>`
  );
}

function failures(failed: ReportFailure[]): string {
  if (failed.length === 0) return '';
  const items = failed
    .slice(0, 500)
    .map(
      (f) =>
        `<li><code>${esc(f.source)}</code>: ${esc(f.message)}${f.code ? ` <span class="muted">[${esc(f.code)}]</span>` : ''}</li>`,
    )
    .join('');
  const more = failed.length > 500 ? `<p class="muted">and ${failed.length - 500} more (see manifest.json)</p>` : '';
  return `<section class="card failed"><h2>${failed.length} input${failed.length === 1 ? '' : 's'} failed</h2><ul>${items}</ul>${more}</section>`;
}

function modelSection(data: ReportData): string {
  const m = data.model.metadata;
  const label = weightsLabel(m);
  const rows: Array<[string, unknown]> = [
    ['file', data.model.path],
    ['architecture', m.architecture],
    ['root module', data.model.type],
    ['export', m.export],
    ['weights', label.text],
    ['trained', label.trained === undefined ? 'unknown' : label.trained ? 'yes' : 'no'],
    ['input size', m.input?.size?.join(' × ')],
    ['mean', m.input?.mean?.join(', ')],
    ['std', m.input?.std?.join(', ')],
    ['classes', m.classes ? `${m.classes.length}` : undefined],
    ['device', data.model.device],
    ['torch', m.torch],
    ['torchvision', m.torchvision],
  ];
  const body = rows
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`)
    .join('');
  return `<section class="card"><h2 style="margin-bottom:8px">Model</h2><table class="meta"><tbody>${body}</tbody></table></section>`;
}
