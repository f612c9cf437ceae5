/**
 * The viewer's Concepts tab: k concepts of a layer fitted over the session's images (NMF,
 * lib/analysis/concepts.ts), each concept's top images and each image's concept picture.
 * Kept per model, layer, k and image set; the pictures are drawn when asked for. Every image goes
 * through the viewer's own input first (its decoding limit, its decode slots, its cache), so an
 * image over the limit is refused before the fit decodes anything.
 */
import { fitConceptsWith, renderConceptImage, renderConceptTop, type Concepts } from '../analysis/concepts';
import { conceptColour, conceptNorms } from '../analysis/concepts';
import type { Model } from '../model';
import type { PreprocessResult, PreprocessedImage } from '../preprocess';
import { toHex } from '../render/color';

export interface ViewerConceptImage {
  id: string;
  name: string;
  source: string | Buffer;
}

interface Fitted {
  concepts: Concepts;
  norms: Float64Array;
  h: number;
  w: number;
  images: Array<{ id: string; name: string; photo: PreprocessedImage; maps: Float32Array; share: number[] }>;
  summary: Record<string, unknown>;
}

/** The concepts of the session, by model, layer, k and images (the last 8 fits kept). */
export class ViewerConcepts {
  private fits = new Map<string, Promise<Fitted>>();

  /** `input`: the viewer's preprocessing of an image for a model (ViewerState.input). */
  constructor(private readonly input: (modelIndex: number, img: ViewerConceptImage) => Promise<PreprocessResult>) {}

  get(model: Model, modelIndex: number, layer: string, k: number, images: ViewerConceptImage[]): Promise<Fitted> {
    const key = `${modelIndex}|${layer}|${k}|${images.map((i) => i.id).join(',')}`;
    let f = this.fits.get(key);
    if (!f) {
      f = this.fit(model, modelIndex, layer, k, images);
      f.catch(() => this.fits.delete(key));
      this.fits.set(key, f);
      if (this.fits.size > 8) this.fits.delete(this.fits.keys().next().value!);
    }
    return f;
  }

  private async fit(
    model: Model,
    modelIndex: number,
    layer: string,
    k: number,
    images: ViewerConceptImage[],
  ): Promise<Fitted> {
    // The viewer's decoding limit for every image before the fit (IMAGE_TOO_LARGE names it), and
    // the fit's decodes through the viewer's input too: its slots, its cache.
    await Promise.all(images.map((img) => this.input(modelIndex, img).then(() => undefined)));
    const bySource = new Map(images.map((img) => [img.source, img]));
    const concepts = await fitConceptsWith(
      model,
      images.map((i) => i.source),
      { layer, k, seed: 0 },
      (source) => this.input(modelIndex, bySource.get(source as string | Buffer)!),
    );
    const norms = conceptNorms(concepts.W, concepts.k, concepts.channels);
    const out: Fitted['images'] = [];
    let h = 0;
    let w = 0;
    for (const img of images) {
      const x = await this.input(modelIndex, img);
      const [cap] = await model.capture(x, [layer]);
      const m = concepts.transform(cap);
      [, , h, w] = m.shape;
      const HW = h * w;
      const share = Array.from({ length: concepts.k }, (_, t) => {
        let s = 0;
        for (let p = 0; p < HW; p++) s += m.data[t * HW + p];
        return (s / HW) * norms[t];
      });
      out.push({ id: img.id, name: img.name, photo: x.images[0], maps: m.data, share });
    }
    const fit = concepts.fit as { rows: number; relativeError: number };
    const summary = {
      layer,
      k: concepts.k,
      images: out.length,
      rows: fit.rows,
      relativeError: fit.relativeError,
      concepts: Array.from({ length: concepts.k }, (_, t) => {
        const row = Array.from(concepts.W.subarray(t * concepts.channels, (t + 1) * concepts.channels));
        return {
          concept: t,
          colour: toHex(conceptColour(t)),
          meanShare: out.reduce((s, i) => s + i.share[t], 0) / out.length,
          topChannels: row
            .map((v, ch) => [ch, v])
            .sort((a, b) => b[1] - a[1] || a[0] - b[0])
            .slice(0, 5)
            .map(([ch]) => ch),
        };
      }),
    };
    return { concepts, norms, h, w, images: out, summary };
  }

  /** Concept t's top images (up to 6 of the session) with its heatmap. */
  async conceptPicture(model: Model, f: Fitted, t: number): Promise<Buffer> {
    const HW = f.h * f.w;
    const top = [...f.images].sort((a, b) => b.share[t] - a.share[t]).slice(0, 6);
    const pic = await renderConceptTop(
      model,
      t,
      top.map((i) => ({
        photo: i.photo,
        map: i.maps.subarray(t * HW, (t + 1) * HW),
        h: f.h,
        w: f.w,
        label: `${i.name} ${i.share[t].toPrecision(3)}`,
      })),
      f.norms[t],
      f.concepts.layer,
    );
    return pic.png;
  }

  /** One image's concepts (dominant concept per position). */
  async imagePicture(model: Model, f: Fitted, id: string): Promise<Buffer | undefined> {
    const i = f.images.find((x) => x.id === id);
    if (!i) return undefined;
    const pic = await renderConceptImage(
      model,
      i.photo,
      { k: f.concepts.k, h: f.h, w: f.w, data: i.maps },
      f.norms,
      `${i.name}: ${f.concepts.k} concepts of ${f.concepts.layer}`,
    );
    return pic.png;
  }
}
