/**
 * The viewer's API, `METHOD /path` → handler: the session, layers, classes, colour maps,
 * thumbnails, uploads, predictions, a layer's channels and maps, overlays, concepts and compare.
 * Handlers read their query with intParam/strParam (INVALID_ARGUMENT naming the value) and answer
 * through http.ts; what they compute comes from the ViewerState.
 */
import * as path from 'path';
import sharp from 'sharp';
import { weightsLabel } from '../metadata';
import type { Model } from '../model';
import { COLORMAP_NAMES, type ColormapName, getColormap } from '../render/colormaps';
import { bad } from './codes';
import { ViewerConcepts } from './concepts';
import { compareCaptures } from './divergence';
import { type Route, intParam, json, readBody, send, strParam } from './http';
import { OVERLAY_KINDS, type OverlayKind, overlayPicture } from './overlays';
import type { ViewerImage, ViewerState } from './state';

export function viewerRoutes(state: ViewerState, uploadLimit: number): Record<string, Route> {
  const { models, cache } = state;
  const conceptFits = new ViewerConcepts((index, img) => state.input(index, img));

  const modelAt = (q: URLSearchParams, name = 'model'): { model: Model; index: number } => {
    const index = intParam(q, name, 0, 0, models.length - 1);
    return { model: models[index], index };
  };
  const imageAt = (q: URLSearchParams, name = 'image'): ViewerImage => state.image(strParam(q, name));

  return {
    'GET /api/session': async (_req, res) => {
      json(res, {
        models: models.map((m, i) => ({
          index: i,
          name: path.basename(state.modelFiles[i]),
          architecture: m.metadata.architecture ?? null,
          weights: weightsLabel(m.metadata),
          classes: m.metadata.classes?.length ?? 0,
          inputSize: m.metadata.input?.size?.[0] ?? 224,
          // ViTs (a token layout in the metadata) get the attention overlay.
          tokens: m.metadata.tokens?.layout === 'NLD',
        })),
        images: [...state.images.values()].map((i) => ({ id: i.id, name: i.name, uploaded: i.uploaded })),
        colormaps: COLORMAP_NAMES,
        uploadLimit,
      });
    },
    'GET /api/layers': async (_req, res, q) => {
      const { index } = modelAt(q);
      const info = await state.layers(index);
      json(
        res,
        info.flatMap((l) => {
          const entry = {
            name: l.name,
            type: l.type,
            calls: l.calls,
            inLoop: l.inLoop === true,
            // Transformer token outputs: the [N, C, H, W] maps the captures hold (model.layers' mapShapes).
            shape: l.mapShapes?.[0] ?? l.outputShapes?.[0] ?? null,
            ...(l.layout ? { layout: l.layout, sourceShape: l.outputShapes?.[0] } : {}),
          };
          // A tuple, list or dict output: each part its own entry after the layer (`backbone.fpn:0`).
          const parts = Object.entries(l.outputParts?.[0] ?? {}).map(([key, shape]) => ({
            name: `${l.name}:${key}`,
            type: l.type,
            calls: l.calls,
            inLoop: l.inLoop === true,
            shape,
            part: key,
          }));
          return [entry, ...parts];
        }),
      );
    },
    'GET /api/classes': async (_req, res, q) => {
      json(res, modelAt(q).model.metadata.classes ?? []);
    },
    'GET /api/colormap': async (_req, res, q) => {
      const name = strParam(q, 'name');
      if (!(COLORMAP_NAMES as readonly string[]).includes(name))
        throw bad(
          'INVALID_ARGUMENT',
          `colormap must be one of ${COLORMAP_NAMES.join(', ')}, not ${JSON.stringify(name.slice(0, 40))}`,
        );
      json(res, Array.from(getColormap(name as ColormapName)));
    },
    'GET /api/image': async (_req, res, q) => {
      const img = imageAt(q);
      const size = intParam(q, 'size', 160, 16, 1024);
      const out = await cache.get(`thumb|${img.id}|${size}`, async () => {
        try {
          const jpeg = await state.decodes.run(() =>
            sharp(img.source, { limitInputPixels: state.maxInputPixels, autoOrient: true })
              .resize(size, size, { fit: 'inside' })
              .jpeg({ quality: 85 })
              .toBuffer(),
          );
          return { value: jpeg, bytes: jpeg.length };
        } catch (err) {
          throw bad('IMAGE_DECODE', `cannot decode image ${JSON.stringify(img.name)}: ${(err as Error).message}`);
        }
      });
      send(res, 200, 'image/jpeg', out);
    },
    'POST /api/upload': async (req, res, q) => {
      const name = (q.get('name') ?? 'upload').slice(0, 200);
      const img = await state.addUpload(name, await readBody(req, uploadLimit));
      json(res, { id: img.id, name, uploaded: true }, 201);
    },
    'GET /api/predict': async (_req, res, q) => {
      const { index } = modelAt(q);
      json(res, await state.predictions(index, imageAt(q)));
    },
    'GET /api/channels': async (_req, res, q) => {
      const { index } = modelAt(q);
      const img = imageAt(q);
      const layer = strParam(q, 'layer');
      const sort = q.get('sort') ?? 'index';
      if (!['index', 'max', 'mean'].includes(sort))
        throw bad('INVALID_ARGUMENT', `sort must be index, max or mean, not ${JSON.stringify(sort.slice(0, 40))}`);
      const f = await state.layerMaps(index, img, layer);
      const [, c, h, w] = f.capture.shape;
      const per = intParam(q, 'per', 32, 1, 256);
      const pages = Math.ceil(c / per);
      const page = intParam(q, 'page', 0, 0, Math.max(0, pages - 1));
      const order = Array.from({ length: c }, (_, i) => i);
      if (sort !== 'index') {
        const key = sort === 'max' ? f.max : f.mean;
        order.sort((a, b) => key[b] - key[a] || a - b);
      }
      const list = order
        .slice(page * per, (page + 1) * per)
        .map((ch) => ({ channel: ch, max: f.max[ch], mean: f.mean[ch], min: f.min[ch] }));
      json(res, {
        layer,
        shape: [c, h, w],
        sort,
        page,
        pages,
        per,
        channels: list,
        layerMin: f.layerMin,
        layerMax: f.layerMax,
      });
    },
    'GET /api/maps': async (_req, res, q) => {
      const { index } = modelAt(q);
      const img = imageAt(q);
      const layer = strParam(q, 'layer');
      const f = await state.layerMaps(index, img, layer);
      const [, c, h, w] = f.capture.shape;
      const list = strParam(q, 'channels');
      if (!/^\d+(,\d+){0,255}$/.test(list))
        throw bad(
          'INVALID_ARGUMENT',
          `channels must be a comma-separated list of up to 256 channel indices, not ${JSON.stringify(list.slice(0, 40))}`,
        );
      const chans = list.split(',').map(Number);
      const badCh = chans.find((ch) => ch >= c);
      if (badCh !== undefined)
        throw bad('INVALID_ARGUMENT', `channel ${badCh} does not exist: ${layer} has channels 0 to ${c - 1}`);
      const out = new Float32Array(chans.length * h * w);
      chans.forEach((ch, i) => out.set(f.capture.data.subarray(ch * h * w, (ch + 1) * h * w), i * h * w));
      send(res, 200, 'application/octet-stream', Buffer.from(out.buffer, out.byteOffset, out.byteLength), {
        'X-Featscope-Shape': `${chans.length},${h},${w}`,
      });
    },
    'GET /api/overlay': async (_req, res, q) => {
      const { model, index } = modelAt(q);
      const img = imageAt(q);
      const layer = strParam(q, 'layer');
      const kind = q.get('kind') ?? 'mean';
      const cls = q.get('class');
      const nClasses = model.metadata.classes?.length ?? 1000;
      const classes = cls === null || cls === '' ? undefined : intParam(q, 'class', undefined, 0, nClasses - 1);
      if (!(OVERLAY_KINDS as readonly string[]).includes(kind))
        throw bad(
          'INVALID_ARGUMENT',
          `kind must be ${OVERLAY_KINDS.slice(0, -1).join(', ')} or ${OVERLAY_KINDS[OVERLAY_KINDS.length - 1]}, not ${JSON.stringify(kind.slice(0, 40))}`,
        );
      const { png, info } = await cache.get(
        `overlay|${index}|${img.id}|${kind}|${kind === 'saliency' ? '' : layer}|${kind === 'attention' ? '' : (classes ?? '')}`,
        async () => {
          const r = await overlayPicture(state, kind as OverlayKind, index, img, layer, classes);
          return { value: r, bytes: r.png.length };
        },
      );
      send(res, 200, 'image/png', png, { 'X-Featscope-Info': encodeURIComponent(JSON.stringify(info)) });
    },
    // The Concepts tab: JSON of the fit over the session's images; with concept=T or image=ID, that picture.
    'GET /api/concepts': async (_req, res, q) => {
      const { model, index } = modelAt(q);
      const f = await conceptFits.get(model, index, strParam(q, 'layer'), intParam(q, 'k', 4, 1, 16), [
        ...state.images.values(),
      ]);
      if (q.get('concept')) {
        const t = intParam(q, 'concept', undefined, 0, Number(f.summary.k) - 1);
        return send(res, 200, 'image/png', await conceptFits.conceptPicture(model, f, t));
      }
      if (q.get('image')) {
        const png = await conceptFits.imagePicture(model, f, imageAt(q).id);
        if (png) return send(res, 200, 'image/png', png);
      }
      json(res, f.summary);
    },
    'GET /api/compare': async (_req, res, q) => {
      const a = { ...modelAt(q, 'modelA'), img: imageAt(q, 'a') };
      const b = { ...modelAt(q, 'modelB'), img: imageAt(q, 'b') };
      const [ca, cb] = await Promise.all([state.allLayers(a.index, a.img), state.allLayers(b.index, b.img)]);
      const [pa, pb] = await Promise.all([state.predictions(a.index, a.img), state.predictions(b.index, b.img)]);
      json(res, { layers: compareCaptures(ca, cb), predictions: [pa, pb] });
    },
  };
}
