/**
 * `featscope view` on a Vision Transformer (vit_small: 32 px, patch 8, 2 layers, 2 heads, exported
 * untrained by scripts/export-model.py), in real Chromium: a token layer's channel grid against the
 * library's capture and colour map, and the attention overlay (rollout beside the class token's
 * attention per head) against lib/analysis/attention's functions run here.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { applyColormap, loadModel, preprocess, type Model } from '../../lib';
import { attentionOverlaysOf, attentionRollout, classTokenRow } from '../../lib/analysis/attention';
import { startViewer, type Viewer } from '../../lib/viewer/server';
import { ROOT, VIT_SMALL, ensureVitSmall } from '../support/models';
import {
  type BrowserContext,
  type Page,
  describeWithChromium,
  launchChromium,
  pixels,
  until,
} from '../support/browser';
import { tempDir } from '../support/cli';

const VIT = VIT_SMALL;
const CHELSEA = path.join(ROOT, 'test', 'fixtures', 'images', 'chelsea.png');
const TOKENS = 'encoder.layers.encoder_layer_0';
const W0 = `${TOKENS}.self_attention.weights`;
const W1 = 'encoder.layers.encoder_layer_1.self_attention.weights';
const maybe = describeWithChromium('view ViT tests');

/** Largest channel difference between `part` (a PNG) and the region of `drawn` at x0. */
async function offAt(drawn: { width: number; rgb: Uint8Array }, part: Buffer, x0: number): Promise<number> {
  const want = await sharp(part).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let off = 0;
  for (let y = 0; y < want.info.height; y++)
    for (let x = 0; x < want.info.width * 3; x++)
      off = Math.max(off, Math.abs(want.data[y * want.info.width * 3 + x] - drawn.rgb[(y * drawn.width + x0) * 3 + x]));
  return off;
}

maybe('featscope view on a ViT in Chromium', () => {
  let viewer: Viewer;
  let model: Model;
  let context: BrowserContext;
  let page: Page;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    ensureVitSmall();
    viewer = await startViewer({ images: [CHELSEA], models: [VIT], device: 'cpu' });
    model = await loadModel(VIT, { device: 'cpu' });
    context = await launchChromium('view-vit-chromium');
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await viewer?.close();
    model?.dispose();
  });

  test('a token layer as a channel grid; attention rollout and per-head class-token attention as the library computes them', async () => {
    await page.goto(viewer.url, { waitUntil: 'load' });
    await page.waitForSelector('.thumb img');
    expect(await page.textContent('#banner')).toContain('UNTRAINED weights');
    // the token layer is listed with its maps' shape (patch grid 4 x 4, the class token dropped)
    expect(await page.locator(`.node[data-layer="${TOKENS}"]`).textContent()).toMatch(/EncoderBlock \[1×64×4×4\] ×1/);
    expect(await page.isVisible('#ov-attention')).toBe(true);

    await page.click('.thumb[data-id="i0"]');
    await page.click(`.node[data-layer="${TOKENS}"]`);
    await until(page, `document.querySelectorAll('.tile').length === 32`);
    const x = await preprocess(CHELSEA, { model });
    const r = await model.forward(x, { layers: [TOKENS, W0, W1], optimize: false });
    const cap = r.get(TOKENS);
    expect(cap.shape).toEqual([1, 64, 4, 4]);
    expect(cap.layout).toBe('tokens');
    let lo = Infinity,
      hi = -Infinity;
    for (const v of cap.data) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    // tile #5: the patch tokens' channel 5 on the 4 x 4 grid, in the layer's shared scale
    const tile5 = await pixels(page, '.tile[data-channel="5"] canvas');
    expect([tile5.width, tile5.height]).toEqual([4, 4]);
    const want5 = applyColormap(cap.data.subarray(5 * 16, 6 * 16), lo, hi, 'viridis');
    let off = 0;
    for (let i = 0; i < want5.length; i++) off = Math.max(off, Math.abs(want5[i] - tile5.rgb[i]));
    expect(off).toBeLessThanOrEqual(1);
    expect(await page.textContent('#page-info')).toBe('page 1 / 2');
    // the top-5 predictions, listed once (the first image's and the clicked one's answers do not pile up)
    await until(page, `document.querySelectorAll('#predictions li').length > 0`);
    expect(await page.locator('#predictions li').count()).toBe(5);

    // attention overlay at a non-attention layer: rollout over both layers, heads of the last
    const rolled = classTokenRow(attentionRollout([r.get(W0), r.get(W1)]), 1, [4, 4])[0];
    const range = (m: Float32Array) => [Math.min(...m), Math.max(...m)];
    const headRanges = (w: { data: Float32Array }) =>
      [0, 1].map((h) => range(w.data.subarray(h * 17 * 17 + 1, h * 17 * 17 + 17))); // row 0: the class token
    await page.check('input[name="ov"][value="attention"]');
    await until(
      page,
      `(() => { const i = document.querySelector('#overlay-img'); return !i.hidden && i.dataset.kind === 'attention' && i.complete && i.naturalWidth > 0; })()`,
    );
    const meta = async () => {
      const res = await fetch(
        `http://127.0.0.1:${viewer.port}/api/overlay?token=${viewer.token}&image=i0&kind=attention&layer=${encodeURIComponent(await page.evaluate(`document.querySelector('.node.active').dataset.layer`))}`,
      );
      expect(res.status).toBe(200);
      return JSON.parse(decodeURIComponent(res.headers.get('X-Featscope-Info')!)) as {
        rollout: { layers: string[]; min: number; max: number };
        heads: { layer: string; ranges: number[][] };
      };
    };
    let info = await meta();
    expect(info.rollout.layers).toEqual([W0, W1]);
    expect(info.rollout.min).toBeCloseTo(Math.min(...rolled), 5);
    expect(info.rollout.max).toBeCloseTo(Math.max(...rolled), 5);
    expect(info.heads.layer).toBe(W1);
    headRanges(r.get(W1)).forEach((want, h) => {
      expect(info.heads.ranges[h][0]).toBeCloseTo(want[0], 5);
      expect(info.heads.ranges[h][1]).toBeCloseTo(want[1], 5);
    });
    expect(await page.textContent('#overlay-info')).toMatch(/^attention rollout over 2 layer\(s\): .* head 1 /);
    // the picture: the library's rollout picture, then its per-head picture, pixel for pixel
    const [lib] = await attentionOverlaysOf(model, x, [CHELSEA]);
    const drawn = await pixels(page, '#overlay-img');
    const rollW = (await sharp(lib.rollout.png).metadata()).width!;
    expect(drawn.width).toBe(rollW + (await sharp(lib.heads[0].png).metadata()).width!);
    expect(await offAt(drawn, lib.rollout.png, 0)).toBeLessThanOrEqual(2);
    expect(await offAt(drawn, lib.heads[0].png, rollW)).toBeLessThanOrEqual(2);
    // the first row is the weights banner (untrained: red)
    expect(drawn.rgb[0]).toBeGreaterThan(150);
    expect(drawn.rgb[1]).toBeLessThan(90);
    fs.writeFileSync(path.join(tempDir('view-vit-shots'), 'view-vit.png'), await page.screenshot());

    // the first attention layer chosen in the tree: rollout over it alone, its heads
    await page.click(`.node[data-layer="${W0}"]`);
    await until(page, `document.querySelector('#layer-title').textContent.startsWith('${W0} [2×17×17]')`);
    await until(
      page,
      `document.querySelector('#overlay-info').textContent.startsWith('attention rollout over 1 layer')`,
    );
    info = await meta();
    expect(info.rollout.layers).toEqual([W0]);
    const rolled0 = classTokenRow(attentionRollout([r.get(W0)]), 1, [4, 4])[0];
    expect(info.rollout.max).toBeCloseTo(Math.max(...rolled0), 5);
    expect(info.heads.layer).toBe(W0);
    headRanges(r.get(W0)).forEach((want, h) => expect(info.heads.ranges[h][1]).toBeCloseTo(want[1], 5));
    expect(consoleErrors).toEqual([]);
  }, 180_000);
});
