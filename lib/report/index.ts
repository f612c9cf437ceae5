/**
 * report.html: render's report (and the merged report of shards). One page with a table of
 * contents, a section per image (input, then each layer's grid, overlay, statistics and top
 * channels with their maps) and a per-layer view across images, switched by CSS `:target`
 * (no script). Pictures are inlined as data: URIs (`assets: 'inline'`, the default: one
 * self-contained file) or written beside the page in `report_files/` (`assets: 'linked'`).
 * Photo-like pictures (inputs, overlays) go in as WebP; channel grids are lossless (PNG when
 * linked, lossless WebP when inlined: the same pixels, half the bytes). Every image and the
 * page pass through the lib/report/shell: CSP without scripts or requests, the weights banner.
 * All text that comes from a model (layer names, metadata) or a file name is escaped.
 *
 * Pictures are read and encoded one image at a time, so memory does not grow with the number of
 * images; `limit` caps how many images it shows (the manifest lists all).
 */
import { promises as fs } from 'fs';
import { once } from 'events';
import sharp from 'sharp';
import type { ModelMetadata } from '../metadata';
import { weightsLabel } from '../metadata';
import { atomicStream } from '../fsutil';
import { assetFolder } from './assets';
import { formatNumber } from '../render/format';
import { esc, percent } from './html';
import { PAGE_END, pageStart, type ReportAssets } from './shell';

export { REPORT_ASSETS, type ReportAssets } from './shell';
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
  /**
   * The maps of the `top` channels, in the same order (render writes `<base>.top.png`): the
   * file and each channel's cell in it. Without it the table lists the channels only.
   */
  topMaps?: { file: string; cells: { channel: number; x: number; y: number; width: number; height: number }[] };
  stats: { min: number; max: number; mean: number; zeroFraction: number; deadChannels: number[] };
}

export interface ReportImage {
  source: string;
  input: string;
  inputSize?: [number, number];
  layers: ReportLayer[];
  /** A video clip (render clip.mp4): its animations and charts, shown in place of `layers`. */
  video?: ReportVideo;
}

/** One layer of a clip: animated WebPs (one page per frame) and the per-frame channel-mean chart. */
export interface ReportVideoLayer {
  name: string;
  type?: string;
  /** [C, H, W] of one frame's maps. */
  shape: number[];
  grid: string;
  overlay?: string;
  chart: string;
  gridChannels?: number[];
}

export interface ReportVideo {
  frames: number;
  fps?: number;
  layers: ReportVideoLayer[];
}

/** The layers an image or clip shows. */
function shownLayers(image: ReportImage): Array<{ name: string }> {
  return image.video ? image.video.layers : image.layers;
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
  /** 'inline' (default): one self-contained file. 'linked': pictures in `<name>_files/` beside it. */
  assets?: ReportAssets;
}

/**
 * Write the report to `file`. The page (and, when linked, its folder of pictures) is written
 * under temporary names and moved into place at the end, so a failed or interrupted write
 * leaves the previous report as it was.
 */
export async function writeReport(file: string, data: ReportData): Promise<{ images: number; assets?: string }> {
  const limit = data.limit ?? 200;
  const assets = data.assets ?? 'inline';
  // The images' records first (paths and numbers only, no pictures): the contents and the
  // per-layer view need every image's name and layers before the first section is written.
  const images: ReportImage[] = [];
  let total = 0;
  for await (const image of data.images as AsyncIterable<ReportImage>) {
    if (images.length < limit) images.push(image);
    total++;
  }
  total = data.totalImages ?? total;
  const layers: string[] = [];
  for (const image of images) for (const l of shownLayers(image)) if (!layers.includes(l.name)) layers.push(l.name);

  const sink = assets === 'linked' ? await linkedSink(file) : inlineSink();
  const out = atomicStream(file);
  const write = async (text: string) => {
    if (!out.stream.write(text)) await once(out.stream, 'drain');
  };
  try {
    await write(head(data, layers, assets));
    await write(contents(images, layers));
    await write(layerViewHeads(images, layers));
    await write('<div class="images">');
    for (let i = 0; i < images.length; i++) await write(await imageSection(images[i], i, layers, sink));
    await write('</div><div class="after-images">');
    if (images.length === 0) await write('<section class="card"><p>No image was rendered.</p></section>');
    if (total > images.length) {
      await write(
        `<p class="muted">Showing ${images.length} of ${total} images; <code>manifest.json</code> lists all of them.</p>`,
      );
    }
    await write(failures(data.failed ?? []));
    await write(modelSection(data));
    await write('</div>' + PAGE_END);
    await sink.commit();
    await out.commit();
    return { images: images.length, ...(sink.dir ? { assets: sink.dir } : {}) };
  } catch (err) {
    await out.abort();
    await sink.abort();
    throw err;
  }
}

/** The per-layer view: `#layer-K` (an empty anchor before <main>) hides every other layer and the image heads. */
function viewCss(layers: string[]): string {
  return layers
    .map(
      (_, k) =>
        `#layer-${k}:target ~ main .layer:not(.L${k}) { display: none; }\n` +
        `#layer-${k}:target ~ main .layer-view-head.L${k} { display: block; }\n`,
    )
    .join('');
}

function head(data: ReportData, layers: string[], assets: ReportAssets): string {
  const meta = data.model.metadata;
  const created = (data.created ?? new Date())
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
  const notices = data.interrupted
    ? `<div class="banner interrupted" role="status">The run was interrupted: this report shows the images finished before it stopped. Rerun with <code>--resume</code> to finish the rest.</div>`
    : '';
  return pageStart({
    title: data.title ?? 'featscope report',
    subtitle: [
      meta.architecture ?? data.model.type ?? 'model',
      data.model.path,
      created,
      data.featscopeVersion ? `featscope ${data.featscopeVersion}` : undefined,
    ],
    metadata: meta,
    options: data.options,
    notices,
    assets,
    beforeMain: layers.map((_, k) => `<span class="view-anchor" id="layer-${k}"></span>`).join(''),
    css: viewCss(layers),
  });
}

/** The table of contents: each layer's view across all images, then each image and its layers. */
function contents(images: ReportImage[], layers: string[]): string {
  if (images.length === 0) return '';
  const layerLinks = layers
    .map((name, k) => {
      const count = images.filter((im) => shownLayers(im).some((l) => l.name === name)).length;
      return `<li><a href="#layer-${k}"><code>${esc(name)}</code></a> <span class="muted">· ${count} image${count === 1 ? '' : 's'}</span></li>`;
    })
    .join('');
  const imageLinks = images
    .map(
      (im, i) =>
        `<li><a href="#img-${i}">${esc(baseName(im.source))}</a>` +
        (shownLayers(im).length > 1
          ? ` <span class="muted">· ${shownLayers(im)
              .map((l) => `<a href="#img-${i}-layer-${layers.indexOf(l.name)}">${esc(l.name)}</a>`)
              .join(' · ')}</span>`
          : '') +
        '</li>',
    )
    .join('');
  return (
    '<nav class="card toc" aria-label="Contents"><h2>Contents</h2>' +
    `<h3 class="muted">Layers across all images</h3><ol class="layers">${layerLinks}</ol>` +
    `<h3 class="muted">Images</h3><ol>${imageLinks}</ol></nav>`
  );
}

/** The heading of each layer's view (shown only while that view is on). */
function layerViewHeads(images: ReportImage[], layers: string[]): string {
  return layers
    .map((name, k) => {
      const count = images.filter((im) => shownLayers(im).some((l) => l.name === name)).length;
      const others = layers
        .map((other, j) => (j === k ? '' : `<a href="#layer-${j}"><code>${esc(other)}</code></a>`))
        .filter(Boolean)
        .join(' · ');
      return (
        `<section class="card layer-view-head L${k}"><h2>Layer <code>${esc(name)}</code> across ${count} image${count === 1 ? '' : 's'}</h2>` +
        `<p><a href="#top">Back to the full report</a>${others ? ` · other layers: ${others}` : ''}</p></section>`
      );
    })
    .join('');
}

/** WebP quality of photo-like pictures (inputs, overlays): about a third of JPEG 85's bytes (55: the banner and colour-bar text stay sharp at the 400 px shown; 65 was 10 % larger). */
export const REPORT_PHOTO_QUALITY = 55;
/** Inline photos are at most this wide: the width the page shows an overlay at. */
const REPORT_PHOTO_WIDTH = 400;

/** animation: an animated WebP, passed through as it is (re-encoding would keep its first frame only). */
type PictureKind = 'photo' | 'grid' | 'animation';

/** Shown size of a top-channel thumbnail (longer side, CSS px). */
const THUMB_SIZE = 48;
type MapCell = NonNullable<ReportLayer['topMaps']>['cells'][number];

/** Where the pictures go: data: URIs in the page, or files in a folder beside it. */
interface AssetSink {
  /** The `src` (or CSS url) for picture file `file`, saved as `name` (unique within the report). */
  src(file: string, kind: PictureKind, name: string): Promise<string>;
  /**
   * The top-maps strip for CSS thumbnails: its src, size, and the offset to subtract from the
   * recorded cell positions (inline keeps only the cells' region, without the strip's frame).
   */
  maps(
    file: string,
    cells: MapCell[],
    name: string,
  ): Promise<{ src: string; width: number; height: number; dx: number; dy: number }>;
  /** The folder beside the page, when linked. */
  dir?: string;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

function inlineSink(): AssetSink {
  return {
    async src(file, kind) {
      if (kind === 'animation') return `data:image/webp;base64,${(await fs.readFile(file)).toString('base64')}`;
      const png = await fs.readFile(file);
      if (kind === 'photo') {
        // At most the width the page shows (.overlay-img: 400 px); the input is 224 px.
        const webp = await sharp(png)
          .resize({ width: REPORT_PHOTO_WIDTH, withoutEnlargement: true })
          .webp({ quality: REPORT_PHOTO_QUALITY })
          .toBuffer();
        return `data:image/webp;base64,${webp.toString('base64')}`;
      }
      if (kind === 'grid') {
        // Lossless: the same pixels as the PNG in half the bytes (effort 2: most of the gain, a tenth of the time of 6).
        const webp = await sharp(png).webp({ lossless: true, effort: 2 }).toBuffer();
        return `data:image/webp;base64,${webp.toString('base64')}`;
      }
      return `data:image/png;base64,${png.toString('base64')}`;
    },
    async maps(file, cells) {
      const left = Math.min(...cells.map((c) => c.x)),
        top = Math.min(...cells.map((c) => c.y));
      const width = Math.max(...cells.map((c) => c.x + c.width)) - left,
        height = Math.max(...cells.map((c) => c.y + c.height)) - top;
      const webp = await sharp(file)
        .extract({ left, top, width, height })
        .webp({ lossless: true, effort: 6 })
        .toBuffer();
      return { src: `data:image/webp;base64,${webp.toString('base64')}`, width, height, dx: left, dy: top };
    },
    async commit() {},
    async abort() {},
  };
}

/** Pictures in `<page>_files/` beside the page, linked by relative URLs (lib/report/assets). */
async function linkedSink(page: string): Promise<AssetSink> {
  const folder = await assetFolder(page);
  const src = async (file: string, kind: PictureKind, name: string): Promise<string> => {
    if (kind === 'animation') return folder.copy(file, `${name}.webp`);
    if (kind === 'photo') {
      await sharp(file)
        .webp({ quality: REPORT_PHOTO_QUALITY })
        .toFile(folder.staged(`${name}.webp`));
      return folder.url(`${name}.webp`);
    }
    return folder.copy(file, `${name}.png`);
  };
  return {
    dir: folder.dir,
    src,
    async maps(file, _cells, name) {
      const size = await pngSize(file);
      return { src: await src(file, 'grid', name), width: size?.[0] ?? 0, height: size?.[1] ?? 0, dx: 0, dy: 0 };
    },
    commit: () => folder.commit(),
    abort: () => folder.abort(),
  };
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

async function img(
  sink: AssetSink,
  file: string,
  kind: PictureKind,
  name: string,
  alt: string,
  cls: string,
  lazy: boolean,
): Promise<string> {
  const [src, size] = await Promise.all([sink.src(file, kind, name), pngSize(file)]);
  const wh = size ? ` width="${size[0]}" height="${size[1]}"` : '';
  return `<img class="${cls}" src="${esc(src)}" alt="${esc(alt)}"${wh}${lazy ? ' loading="lazy"' : ''}>`;
}

async function imageSection(image: ReportImage, index: number, layers: string[], sink: AssetSink): Promise<string> {
  if (image.video) return videoSection(image, image.video, index, layers, sink);
  const lazy = index > 0; // the first image paints at once; the rest decode as they scroll into view
  const [inputSize, input, ...layerHtml] = await Promise.all([
    pngSize(image.input),
    img(sink, image.input, 'photo', `i${index}-input`, `model input for ${image.source}`, 'input', lazy),
    ...image.layers.map((layer) => layerSection(image, index, layer, layers.indexOf(layer.name), sink, lazy)),
  ]);
  const size = inputSize ? `${inputSize[0]}×${inputSize[1]}` : '';
  const name = esc(baseName(image.source));
  return (
    `<section class="card image" id="img-${index}">` +
    `<div class="image-head"><figure>${input}<figcaption>Model input ${esc(size)}</figcaption></figure>` +
    `<div><h2>${name}</h2><div class="muted src">${esc(image.source)}</div>` +
    `<div class="muted">${image.layers.length} layer${image.layers.length === 1 ? '' : 's'}: ${image.layers
      .map((l) => `<a href="#img-${index}-layer-${layers.indexOf(l.name)}"><code>${esc(l.name)}</code></a>`)
      .join(', ')}</div></div></div>` +
    `<h2 class="by-layer"><a href="#img-${index}">${name}</a> <span class="muted src">${esc(image.source)}</span></h2>` +
    `${layerHtml.join('')}</section>`
  );
}

/** Width and height of one page of an animated WebP. */
async function animationSize(file: string): Promise<[number, number] | undefined> {
  const m = await sharp(file)
    .metadata()
    .catch(() => undefined);
  return m?.width && m.height ? [m.width, m.pageHeight ?? m.height] : undefined;
}

/** A clip: its first frame, then per layer the animated grid and overlay, and the channel-mean chart. */
async function videoSection(
  image: ReportImage,
  video: ReportVideo,
  index: number,
  layers: string[],
  sink: AssetSink,
): Promise<string> {
  const lazy = index > 0;
  const name = esc(baseName(image.source));
  const rate = video.fps ? ` at ${formatNumber(video.fps, 'table')} frame${video.fps === 1 ? '' : 's'} per second` : '';
  const [input, ...layerHtml] = await Promise.all([
    img(sink, image.input, 'photo', `i${index}-input`, `first frame of ${image.source}`, 'input', lazy),
    ...video.layers.map(async (layer) => {
      const k = layers.indexOf(layer.name);
      const base = `i${index}-l${k}`;
      const animated = async (file: string, what: string, alt: string, cls: string) => {
        const [src, size] = await Promise.all([sink.src(file, 'animation', `${base}-${what}`), animationSize(file)]);
        const wh = size ? ` width="${size[0]}" height="${size[1]}"` : '';
        return `<img class="${cls}" src="${esc(src)}" alt="${esc(alt)}"${wh}${lazy ? ' loading="lazy"' : ''}>`;
      };
      const [grid, overlay, chart] = await Promise.all([
        animated(layer.grid, 'grid', `channel grid of ${layer.name} for each frame of ${image.source}`, 'grid-img'),
        layer.overlay
          ? animated(
              layer.overlay,
              'overlay',
              `mean activation of ${layer.name} over each frame of ${image.source}`,
              'overlay-img',
            )
          : undefined,
        img(
          sink,
          layer.chart,
          'grid',
          `${base}-chart`,
          `channel means of ${layer.name} per frame of ${image.source}`,
          'grid-img',
          lazy,
        ),
      ]);
      const [c, h, w] = layer.shape;
      const shown = layer.gridChannels?.length;
      return (
        `<article class="layer L${k}" id="img-${index}-layer-${k}"><h3><code>${esc(layer.name)}</code>` +
        `${layer.type ? `<span class="tag">${esc(layer.type)}</span>` : ''}${c ? `<span class="tag">${c} × ${h} × ${w}</span>` : ''}<span class="tag">${video.frames} frames</span></h3>` +
        `<div class="layer-body"><figure class="fit">${grid}<figcaption>Animated: one page per frame${rate}; ${shown ? `${shown} of ${c} channels` : 'channels'}, each cell its own colour range; labels give the cell's real channel index and max</figcaption></figure>` +
        `<div class="side">${overlay ? `<figure>${overlay}<figcaption>Mean over all ${c} channels, over each frame (turbo: blue low, red high)</figcaption></figure>` : ''}` +
        `</div></div><figure class="fit">${chart}<figcaption>Mean activation per frame: the layer (thick) and each grid channel</figcaption></figure></article>`
      );
    }),
  ]);
  return (
    `<section class="card image video" id="img-${index}">` +
    `<div class="image-head"><figure>${input}<figcaption>First frame, as the model saw it</figcaption></figure>` +
    `<div><h2>${name}</h2><div class="muted src">${esc(image.source)}</div>` +
    `<div class="muted">video clip: ${video.frames} frame${video.frames === 1 ? '' : 's'}${rate}; ${video.layers.length} layer${video.layers.length === 1 ? '' : 's'}: ${video.layers
      .map((l) => `<a href="#img-${index}-layer-${layers.indexOf(l.name)}"><code>${esc(l.name)}</code></a>`)
      .join(', ')}</div></div></div>` +
    `<h2 class="by-layer"><a href="#img-${index}">${name}</a> <span class="muted src">${esc(image.source)}</span></h2>` +
    `${layerHtml.join('')}</section>`
  );
}

function baseName(p: string): string {
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] || p;
}

async function layerSection(
  image: ReportImage,
  index: number,
  layer: ReportLayer,
  k: number,
  sink: AssetSink,
  lazy: boolean,
): Promise<string> {
  const [c, h, w] = layer.shape;
  const shown = layer.gridChannels?.length;
  const base = `i${index}-l${k}`;
  const [grid, overlayImg, maps] = await Promise.all([
    img(
      sink,
      layer.grid,
      'grid',
      `${base}-grid`,
      `channel grid of ${layer.name} for ${image.source}`,
      'grid-img',
      lazy,
    ),
    layer.overlay
      ? img(
          sink,
          layer.overlay,
          'photo',
          `${base}-overlay`,
          `mean activation of ${layer.name} over ${image.source}`,
          'overlay-img',
          lazy,
        )
      : undefined,
    layer.topMaps?.cells.length ? sink.maps(layer.topMaps.file, layer.topMaps.cells, `${base}-top`) : undefined,
  ]);
  const overlay = overlayImg
    ? `<figure>${overlayImg}<figcaption>Mean over all ${c} channels, over the input (turbo: blue low, red high)</figcaption></figure>`
    : '';
  const s = layer.stats;
  const dead = s.deadChannels;
  const deadText =
    dead.length === 0 ? 'none' : `${dead.length} of ${c}${dead.length <= 12 ? ` (${dead.join(', ')})` : ''}`;
  const statsTable =
    '<table class="data"><tbody>' +
    `<tr><th>mean</th><td class="n">${esc(formatNumber(s.mean, 'table'))}</td></tr>` +
    `<tr><th>max</th><td class="n">${esc(formatNumber(s.max, 'table'))}</td></tr>` +
    `<tr><th>min</th><td class="n">${esc(formatNumber(s.min, 'table'))}</td></tr>` +
    `<tr><th>zero activations</th><td class="n">${esc(percent(s.zeroFraction))}</td></tr>` +
    `<tr><th>dead channels</th><td class="n">${esc(deadText)}</td></tr>` +
    '</tbody></table>';
  return (
    `<article class="layer L${k}" id="img-${index}-layer-${k}"><h3><code>${esc(layer.name)}</code>` +
    `${layer.type ? `<span class="tag">${esc(layer.type)}</span>` : ''}<span class="tag">${c} × ${h} × ${w}</span></h3>` +
    `<div class="layer-body"><figure class="fit">${grid}<figcaption>${shown ? `${shown} of ${c} channels` : 'channels'}; each cell has its own colour range (viridis: dark low, yellow high); labels give the cell's real channel index and max</figcaption></figure>` +
    `<div class="side">${overlay}<div><h4 class="muted" style="margin:0 0 4px">Layer statistics</h4>${statsTable}</div>` +
    `<div><h4 class="muted" style="margin:0 0 4px">Top channels by max activation</h4>${topTable(layer, maps)}</div></div></div></article>`
  );
}

/**
 * The top channels, each with its own map: a thumbnail cropped (by CSS background position) from
 * the layer's top-maps strip, drawn like the grid (same colour map, each map its own range). The
 * strip is one picture per table, referenced once through a CSS variable. "in grid" marks the
 * channels the grid beside it also shows.
 */
function topTable(
  layer: ReportLayer,
  maps: { src: string; width: number; height: number; dx: number; dy: number } | undefined,
): string {
  const inGrid = new Set(layer.gridChannels ?? []);
  const cells = new Map((layer.topMaps?.cells ?? []).map((c) => [c.channel, c]));
  const withMaps = maps !== undefined && layer.top.length > 0 && layer.top.every((t) => cells.has(t.channel));
  // One size for the table's thumbnails: an integer enlargement (pixelated, no blur or bleeding
  // from the neighbouring cell) to about THUMB_SIZE px.
  const first = withMaps ? cells.get(layer.top[0].channel)! : undefined;
  const scale = first ? Math.max(1, Math.floor(THUMB_SIZE / Math.max(first.width, first.height))) : 1;
  const head =
    '<tr><th>#</th><th>channel</th>' +
    (withMaps ? '<th>map</th>' : '') +
    '<th>max</th><th>at (y, x)</th>' +
    (layer.gridChannels ? '<th>in grid</th>' : '') +
    '</tr>';
  const rows = layer.top
    .map((t, i) => {
      const cell = cells.get(t.channel);
      const thumb =
        withMaps && maps && cell
          ? `<td><i class="thumb" role="img" aria-label="map of channel ${t.channel}" style="background-position:-${(cell.x - maps.dx) * scale}px -${(cell.y - maps.dy) * scale}px"></i></td>`
          : '';
      return (
        `<tr><td>${i + 1}</td><td>${t.channel}</td>${thumb}` +
        `<td>${esc(formatNumber(t.score, 'table'))}</td><td>${t.maxAt.y}, ${t.maxAt.x}</td>` +
        (layer.gridChannels ? `<td>${inGrid.has(t.channel) ? 'yes' : 'no'}</td>` : '') +
        '</tr>'
      );
    })
    .join('');
  const style =
    withMaps && maps && first
      ? ` style="--maps:url('${esc(maps.src)}');--tw:${first.width * scale}px;--th:${first.height * scale}px;--bs:${maps.width * scale}px ${maps.height * scale}px"`
      : '';
  return `<table class="data top"${style}><thead>${head}</thead><tbody>${rows}</tbody></table>`;
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
