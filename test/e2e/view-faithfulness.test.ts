/**
 * The viewer's faithfulness overlay: Grad-CAM with its deletion and insertion curves beside it.
 * The AUCs it reports are the library's evaluateSaliency on the same map (itself checked against a
 * Python reference in test/analysis/faithfulness.test.ts), and the picture holds the overlay and
 * the chart side by side.
 */
import * as http from 'http';
import sharp from 'sharp';
import { evaluateSaliency, loadModel, preprocess } from '../../lib';
import { gradCamOverlaysOf } from '../../lib/analysis/gradcam';
import { startViewer } from '../../lib/viewer/server';
import { MODELS, ensureTestModels } from '../support/models';
import { DOG } from '../support/cli';

beforeAll(() => ensureTestModels());

function get(port: number, p: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
      })
      .on('error', reject);
  });
}

test('kind=faithfulness draws Grad-CAM beside its curves, with the AUCs of evaluateSaliency', async () => {
  const viewer = await startViewer({ images: [DOG], models: [MODELS.scripted], device: 'cpu' });
  const model = await loadModel(MODELS.scripted, { device: 'cpu' });
  try {
    const r = await get(viewer.port, `/api/overlay?token=${viewer.token}&image=i0&layer=layer4&kind=faithfulness`);
    expect(r.status).toBe(200);
    const info = JSON.parse(decodeURIComponent(String(r.headers['x-featscope-info'])));
    const x = await preprocess(DOG, { model });
    const [cam] = await gradCamOverlaysOf(model, x, [DOG], { layer: 'layer4', top: 3 });
    const { width: w, height: h } = cam.heatmap;
    const e = await evaluateSaliency(
      model,
      x,
      { data: cam.heatmap.data, shape: [1, h, w] },
      { classes: [cam.target.class] },
    );
    expect(info.target.class).toBe(cam.target.class);
    expect(info.step).toBe(224);
    expect(info.auc.deletion).toBeCloseTo(e.images[0].deletion!.auc, 6);
    expect(info.auc.insertion).toBeCloseTo(e.images[0].insertion!.auc, 6);
    const pic = await sharp(r.body).metadata();
    const overlay = await sharp(cam.png).metadata();
    expect(pic.width).toBeGreaterThan(overlay.width! + 300); // the chart beside the map
    const bad = await get(viewer.port, `/api/overlay?token=${viewer.token}&image=i0&layer=layer4&kind=faithful`);
    expect(bad.status).toBe(400);
  } finally {
    model.dispose();
    await viewer.close();
  }
});
