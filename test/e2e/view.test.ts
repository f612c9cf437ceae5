/**
 * `featscope view` in real Chromium (Debian's chromium driven by playwright-core): one viewer
 * server, one browser. Drawn pixels are checked against the library run here (forward, colour
 * maps, Grad-CAM), divergences against sums computed here; the security points over raw HTTP.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import sharp from 'sharp';
import * as zlib from 'zlib';
import { applyColormap, gradCamOverlays, loadModel, preprocess, type Model } from '../../lib';
import { startViewer, type Viewer } from '../../lib/viewer/server';
import { MODELS, ROOT, ensureTestModels } from '../support/models';
import { DOG, HOSTILE, ensureBuilt, makeHostileModel, startCli, tempDir } from '../support/cli';
import {
  type BrowserContext,
  type Page,
  describeWithChromium,
  launchChromium,
  pixels,
  until,
} from '../support/browser';

const CHELSEA = path.join(ROOT, 'test', 'fixtures', 'images', 'chelsea.png');
const LAYER = 'layer1.0.conv1';
// The screenshots in README/docs are made here. They are written into docs/images only when asked
// (FEATSCOPE_UPDATE_SCREENSHOTS=1), so that a test run leaves the checkout unmodified.
const SHOTS =
  process.env.FEATSCOPE_UPDATE_SCREENSHOTS === '1' ? path.join(ROOT, 'docs', 'images') : tempDir('view-shots');
const maybe = describeWithChromium('view tests');

/** A raw GET/POST (no URL normalisation, so `..` reaches the server as sent). */
function raw(
  port: number,
  pathAndQuery: string,
  init: { method?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: pathAndQuery, method: init.method ?? 'GET', headers: init.headers },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}
const errorCode = (body: Buffer) => (JSON.parse(body.toString()) as { error: { code: string } }).error.code;

const canvasRGB = pixels;

/** Per channel of image 0 of an [1, C, H, W] capture: its plane, min, max, mean. */
function planes(data: Float32Array, shape: number[]) {
  const [, c, h, w] = shape;
  return Array.from({ length: c }, (_, ch) => {
    const p = data.subarray(ch * h * w, (ch + 1) * h * w);
    let min = Infinity,
      max = -Infinity,
      sum = 0;
    for (const v of p) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
    }
    return { plane: p, min, max, mean: sum / p.length };
  });
}

maybe('featscope view in Chromium', () => {
  let viewer: Viewer;
  let hostileViewer: Viewer;
  let model: Model;
  let context: BrowserContext;
  let page: Page;
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  const dialogs: string[] = [];
  let hostileImage: string;
  let origin: string;

  beforeAll(async () => {
    ensureTestModels();
    const dir = tempDir('view-in');
    hostileImage = path.join(dir, `${HOSTILE}.jpg`);
    fs.copyFileSync(DOG, hostileImage);
    const hostileModel = path.join(dir, 'hostile.pt');
    makeHostileModel(hostileModel);
    viewer = await startViewer({
      images: [CHELSEA, DOG, hostileImage],
      models: [MODELS.scripted, MODELS.traced],
      device: 'cpu',
      uploadLimit: 2 * 1024 * 1024,
    });
    hostileViewer = await startViewer({ images: [hostileImage], models: [hostileModel], device: 'cpu' });
    model = await loadModel(MODELS.scripted, { device: 'cpu' });
    origin = `http://127.0.0.1:${viewer.port}`;
    context = await launchChromium('view-chromium');
    page = context.pages()[0] ?? (await context.newPage());
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
  });

  afterAll(async () => {
    await context?.close();
    await viewer?.close();
    await hostileViewer?.close();
    model?.dispose();
  });

  test('the page: images, layer tree, channels paged and sorted, one channel, Grad-CAM, compare', async () => {
    await page.goto(viewer.url, { waitUntil: 'load' });
    await page.waitForSelector('.thumb img');
    expect(await page.textContent('#banner')).toContain('UNTRAINED weights');
    expect(page.url()).not.toContain('token='); // dropped from the address bar; the cookie carries it
    expect(await page.locator('.thumb').count()).toBe(3);
    // thumbnails really decoded
    await until(
      page,
      `Array.from(document.querySelectorAll('.thumb img')).every((i) => i.complete && i.naturalWidth > 0)`,
    );

    // layer tree: type, shape, calls; the shared ReLU is called twice
    const reluNode = page.locator('.node[data-layer="layer1.0.relu"]');
    expect(await reluNode.textContent()).toMatch(/ReLU \[1×64×56×56\] ×2/);

    // choose an image, open a layer
    await page.click('.thumb[data-id="i0"]');
    await page.click(`.node[data-layer="${LAYER}"]`);
    await until(page, `document.querySelectorAll('.tile').length === 32`);
    const x = await preprocess(CHELSEA, { model });
    const cap = (await model.forward(x, { layers: [LAYER] })).get(LAYER);
    const [, C, H, W] = cap.shape;
    const ps = planes(cap.data, cap.shape);
    const layerMin = Math.min(...ps.map((p) => p.min));
    const layerMax = Math.max(...ps.map((p) => p.max));
    const tileChannels = async () =>
      await page
        .locator('.tile')
        .evaluateAll((ts) => ts.map((t) => Number((t as unknown as { dataset: { channel: string } }).dataset.channel)));
    expect(await tileChannels()).toEqual(Array.from({ length: 32 }, (_, i) => i));
    expect(await page.textContent('#page-info')).toBe(`page 1 / ${C / 32}`);

    // tile #5 is drawn with the layer's shared scale, as the library's colour map gives it
    const tile5 = await canvasRGB(page, '.tile[data-channel="5"] canvas');
    expect([tile5.width, tile5.height]).toEqual([W, H]);
    const want5 = applyColormap(ps[5].plane, layerMin, layerMax, 'viridis');
    let off = 0;
    for (let i = 0; i < want5.length; i++) off = Math.max(off, Math.abs(want5[i] - tile5.rgb[i]));
    expect(off).toBeLessThanOrEqual(1); // float32 vs float64 at a bin edge at most

    // page through
    await page.click('#next');
    await until(page, `document.querySelector('#grid').dataset.state === 'index:1:shared'`);
    expect(await tileChannels()).toEqual(Array.from({ length: 32 }, (_, i) => 32 + i));

    // sort by max: the page is the 32 channels of highest max, in order
    await page.selectOption('#sort', 'max');
    await until(page, `document.querySelector('#grid').dataset.state === 'max:0:shared'`);
    const byMax = ps
      .map((p, ch) => ({ ch, v: p.max }))
      .sort((a, b) => b.v - a.v || a.ch - b.ch)
      .map((p) => p.ch);
    expect(await tileChannels()).toEqual(byMax.slice(0, 32));
    await page.selectOption('#sort', 'mean');
    const byMean = ps
      .map((p, ch) => ({ ch, v: p.mean }))
      .sort((a, b) => b.v - a.v || a.ch - b.ch)
      .map((p) => p.ch);
    await until(page, `document.querySelector('#grid').dataset.state === 'mean:0:shared'`);
    expect((await tileChannels()).slice(0, 8)).toEqual(byMean.slice(0, 8)); // float32 sums may swap near-ties further down

    // open one channel, per-channel scale: full size, colour bar labels in real values
    const top = byMax[0];
    await page.selectOption('#sort', 'max');
    await page.selectOption('#scale', 'channel');
    await until(page, `document.querySelector('#grid').dataset.state === 'max:0:channel'`);
    await page.click(`.tile[data-channel="${top}"]`);
    await until(page, `document.querySelector('#detail-title').textContent.includes('channel ${top} ')`);
    const detail = await canvasRGB(page, '#detail-canvas');
    const wantTop = applyColormap(ps[top].plane, ps[top].min, ps[top].max, 'viridis');
    off = 0;
    for (let i = 0; i < wantTop.length; i++) off = Math.max(off, Math.abs(wantTop[i] - detail.rgb[i]));
    expect(off).toBeLessThanOrEqual(1);
    const labels = (await page.locator('#colorbar-labels span').allTextContents()).map(Number);
    expect(labels[0]).toBeCloseTo(ps[top].max, 3);
    expect(labels[2]).toBeCloseTo(ps[top].min, 3);
    const stats = await page.textContent('#detail-stats');
    expect(Number(/max (\S+)/.exec(stats!)![1])).toBeCloseTo(ps[top].max, 3);
    expect(Number(/mean (\S+)/.exec(stats!)![1])).toBeCloseTo(ps[top].mean, 3);
    // the colour bar: top row the map's last colour, bottom row its first
    const bar = await canvasRGB(page, '#colorbar');
    expect(Array.from(bar.rgb.subarray(0, 3))).toEqual(Array.from(applyColormap([1], 0, 1, 'viridis')));
    expect(Array.from(bar.rgb.subarray(bar.rgb.length - 3))).toEqual(Array.from(applyColormap([0], 0, 1, 'viridis')));

    // Grad-CAM toggle: the picture is the library's Grad-CAM overlay, pixel for pixel
    await page.check('input[name="ov"][value="gradcam"]');
    await until(
      page,
      `(() => { const i = document.querySelector('#overlay-img'); return !i.hidden && i.dataset.kind === 'gradcam' && i.complete && i.naturalWidth > 0; })()`,
    );
    const [gc] = await gradCamOverlays(model, [CHELSEA], { layer: LAYER, top: 3 });
    const drawn = await pixels(page, '#overlay-img');
    const want = await sharp(gc.png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([drawn.width, drawn.height]).toEqual([want.info.width, want.info.height]);
    off = 0;
    for (let i = 0; i < want.data.length; i++) off = Math.max(off, Math.abs(want.data[i] - drawn.rgb[i]));
    expect(off).toBeLessThanOrEqual(2);
    expect(await page.textContent('#overlay-info')).toContain(`for ${gc.target.name} (class ${gc.target.class})`);
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.evaluate('window.scrollTo(0, 0)');
    await page.evaluate(`document.querySelector('.tile[data-channel="${top}"]').scrollIntoView({ block: 'nearest' })`);
    fs.writeFileSync(path.join(SHOTS, 'view.png'), await page.screenshot());
    // a chosen class, by name from the model's metadata
    await page.selectOption('#class-select', '281');
    await until(page, `document.querySelector('#overlay-info').textContent.includes('(class 281)')`);
    expect(await page.textContent('#overlay-info')).toContain(`${model.metadata.classes![281]} (class 281)`);

    // the layer-mean and saliency toggles: pictures with the weights banner (the Grad-CAM one's first row)
    const bannerRow = Array.from(drawn.rgb.subarray(0, 3));
    expect(bannerRow[0]).toBeGreaterThan(150);
    expect(bannerRow[1]).toBeLessThan(90);
    for (const kind of ['mean', 'saliency']) {
      await page.check(`input[name="ov"][value="${kind}"]`);
      await until(
        page,
        `(() => { const i = document.querySelector('#overlay-img'); return !i.hidden && i.dataset.kind === '${kind}' && i.complete && i.naturalWidth > 0; })()`,
      );
      const pic = await pixels(page, '#overlay-img');
      expect(Array.from(pic.rgb.subarray(0, 3))).toEqual(bannerRow);
      expect(pic.width).toBeGreaterThanOrEqual(448); // the photo drawn 448 wide, in a frame
    }
    const meanMap = (() => {
      const m = new Float64Array(H * W);
      for (const p of ps) for (let i = 0; i < H * W; i++) m[i] += p.plane[i] / C;
      return m;
    })();
    const meanText = await page.textContent('#overlay-info');
    expect(meanText).toMatch(/input saliency/);
    await page.check('input[name="ov"][value="mean"]');
    await until(page, `document.querySelector('#overlay-info').textContent.startsWith('mean over channels')`);
    const [, meanLo, meanHi] = /: (\S+) to (\S+)$/.exec((await page.textContent('#overlay-info'))!)!.map(Number);
    expect(meanLo).toBeCloseTo(Math.min(...meanMap), 3);
    expect(meanHi).toBeCloseTo(Math.max(...meanMap), 3);

    // compare two images: chelsea (A) and dog (B)
    await page.click('#tab-compare');
    await page.selectOption('#cmp-image', 'i1');
    await page.click('#cmp-run');
    await until(page, `document.querySelector('#cap-diff').textContent.includes('blue')`);
    const chart = await canvasRGB(page, '#div-chart');
    const count = (pred: (r: number, g: number, b: number) => boolean) => {
      let n = 0;
      for (let i = 0; i < chart.rgb.length; i += 3) if (pred(chart.rgb[i], chart.rgb[i + 1], chart.rgb[i + 2])) n++;
      return n;
    };
    expect(count((r, g, b) => r === 0x1a && g === 0x73 && b === 0xe8)).toBeGreaterThan(500); // cosine bars
    expect(count((r, g, b) => r === 0xe8 && g === 0x71 && b === 0x0a)).toBeGreaterThan(500); // relative L2 bars
    const capDog = (await model.forward(await preprocess(DOG, { model }), { layers: [LAYER] })).get(LAYER);
    const psDog = planes(capDog.data, capDog.shape);
    const ch = top;
    const a = ps[ch].plane,
      b = psDog[ch].plane;
    let dmax = 0;
    for (let i = 0; i < a.length; i++) dmax = Math.max(dmax, Math.abs(b[i] - a[i]));
    const diff = await canvasRGB(page, '#cmp-map-diff');
    let checked = 0;
    for (let i = 0; i < a.length; i++) {
      const d = (b[i] - a[i]) / dmax;
      const [r, , bl] = Array.from(diff.rgb.subarray(i * 3, i * 3 + 3));
      if (d > 0.5) expect(r - bl).toBeGreaterThan(60);
      if (d < -0.5) expect(bl - r).toBeGreaterThan(60);
      if (Math.abs(d) < 0.02) expect(Math.abs(r - bl)).toBeLessThan(20);
      if (Math.abs(d) > 0.5) checked++;
    }
    expect(checked).toBeGreaterThan(10);
    const mapA = await canvasRGB(page, '#cmp-map-a');
    let lo = Infinity,
      hi = -Infinity;
    for (let i = 0; i < a.length; i++) {
      lo = Math.min(lo, a[i], b[i]);
      hi = Math.max(hi, a[i], b[i]);
    }
    const wantA = applyColormap(a, lo, hi, 'viridis');
    off = 0;
    for (let i = 0; i < wantA.length; i++) off = Math.max(off, Math.abs(wantA[i] - mapA.rgb[i]));
    expect(off).toBeLessThanOrEqual(1);
    expect(await page.textContent('#cmp-preds')).toMatch(/A predicts .* · B predicts /);
    fs.writeFileSync(path.join(SHOTS, 'view-compare.png'), await page.screenshot());
    // a click on the chart opens that layer: layer4's bar, whose maps are 7 x 7
    const layersCompared = (
      JSON.parse((await raw(viewer.port, `/api/compare?token=${viewer.token}&a=i0&b=i1`)).body.toString()) as {
        layers: { name: string }[];
      }
    ).layers;
    const i4 = layersCompared.findIndex((l) => l.name === 'layer4');
    const box = (await page.locator('#div-chart').boundingBox())!;
    const slot = (960 - 44) / layersCompared.length;
    await page.click('#div-chart', {
      position: { x: ((44 + (i4 + 0.5) * slot) * box.width) / 960, y: box.height / 2 },
    });
    await until(page, `document.querySelector('#cmp-layer').textContent.startsWith('layer: layer4 ·')`);
    await until(page, `document.querySelector('#cmp-map-diff').width === 7`);
    expect((await canvasRGB(page, '#cmp-map-a')).width).toBe(7);

    // the page made requests to its own origin only, and nothing went wrong in it
    expect(requests.length).toBeGreaterThan(10);
    expect(requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith('blob:'))).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(dialogs).toEqual([]);
  });

  test('divergences: one image through the scripted and the traced model (same weights) is ~0; two images match sums done here', async () => {
    const get = async (q: string) =>
      JSON.parse((await raw(viewer.port, `/api/compare?token=${viewer.token}&${q}`)).body.toString());
    const same = await get('a=i0&modelA=0&b=i0&modelB=1');
    expect(same.layers.length).toBeGreaterThan(40);
    for (const l of same.layers) {
      expect(l.cosine).toBeLessThan(1e-5);
      expect(l.relativeL2).toBeLessThan(1e-3);
    }
    const two = await get('a=i0&b=i1');
    const names = ['conv1', LAYER, 'layer4'];
    const caps = async (f: string) => await model.forward(await preprocess(f, { model }), { layers: names });
    const [ra, rb] = [await caps(CHELSEA), await caps(DOG)];
    for (const n of names) {
      const A = ra.get(n).data,
        B = rb.get(n).data;
      let dot = 0,
        na = 0,
        nb = 0,
        dd = 0;
      for (let i = 0; i < A.length; i++) {
        dot += A[i] * B[i];
        na += A[i] * A[i];
        nb += B[i] * B[i];
        dd += (B[i] - A[i]) ** 2;
      }
      const got = two.layers.find((l: { name: string }) => l.name === n);
      expect(got.cosine).toBeCloseTo(1 - dot / Math.sqrt(na * nb), 5);
      expect(got.relativeL2).toBeCloseTo(Math.sqrt(dd / na), 5);
    }
    // one forward per (model, image, layer set): asking again runs nothing new
    const before = viewer.forwards();
    await get('a=i0&b=i1');
    expect(viewer.forwards()).toBe(before);
  });

  test('upload from the browser; hostile file and module names are shown as text, never run', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 30 } } })
      .png()
      .toBuffer();
    await page.click('#tab-channels');
    await page.setInputFiles('#upload', { name: `${HOSTILE}.png`, mimeType: 'image/png', buffer: png });
    await until(page, `document.querySelectorAll('.thumb').length === 4`);
    const names = await page.locator('.thumb span').allTextContents();
    expect(names).toContain(`${HOSTILE}.jpg`);
    expect(names).toContain(`${HOSTILE}.png`);
    expect(
      await page.evaluate(
        `document.querySelectorAll('img[src="x"], img[src="y"], script:not([src="/assets/viewer.js"])').length`,
      ),
    ).toBe(0);

    // a model whose module and metadata are hostile
    await page.goto(hostileViewer.url, { waitUntil: 'load' });
    await page.waitForSelector(`.node`);
    expect(await page.locator('.node').allTextContents()).toEqual(
      expect.arrayContaining([expect.stringContaining(HOSTILE)]),
    );
    expect(await page.textContent('#banner')).toContain('<img src=y onerror=alert(3)>');
    expect(await page.textContent('#model-name')).toContain('<script>alert(2)</script>');
    await page.click(`.node[data-layer="${HOSTILE}"]`);
    await until(page, `document.querySelectorAll('.tile').length === 8`);
    expect(await page.evaluate(`document.querySelectorAll('img[src="x"], img[src="y"]').length`)).toBe(0);
    expect(dialogs).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });

  test('security: token on every request, no traversal, strict CSP, 4xx JSON with codes, the server goes on', async () => {
    const t = viewer.token;
    for (const p of [
      '/',
      '/assets/viewer.js',
      '/assets/viewer.css',
      '/api/session',
      '/api/image?image=i0',
      `/?token=${'x'.repeat(t.length)}`,
      '/?token=',
    ]) {
      const r = await raw(viewer.port, p);
      expect(r.status).toBe(401);
      expect(errorCode(r.body)).toBe('UNAUTHORIZED');
      expect(r.body.toString()).not.toMatch(/viewer\.js|<html/);
    }
    const wrongCookie = await raw(viewer.port, '/api/session', {
      headers: { Cookie: `featscope_token_${viewer.port}=nope` },
    });
    expect(wrongCookie.status).toBe(401);
    const ok = await raw(viewer.port, `/?token=${t}`);
    expect(ok.status).toBe(200);
    const csp = String(ok.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe');
    expect(String(ok.headers['set-cookie'])).toMatch(/HttpOnly; SameSite=Strict/);
    const cookie = await raw(viewer.port, '/api/session', {
      headers: { Cookie: `featscope_token_${viewer.port}=${t}` },
    });
    expect(cookie.status).toBe(200);

    // nothing outside the images and the assets
    const secret = fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8');
    for (const p of [
      '/assets/../package.json',
      '/assets/..%2f..%2fpackage.json',
      '/%2e%2e/package.json',
      '/assets/viewer.js/../../../package.json',
      '/assets/index.html',
      '/lib/viewer/server.ts',
      '/api/image?image=..%2F..%2Fpackage.json',
      `/api/image?image=${encodeURIComponent(DOG)}`,
    ]) {
      const r = await raw(viewer.port, `${p}${p.includes('?') ? '&' : '?'}token=${t}`);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(r.body.toString()).not.toContain(secret.slice(0, 60));
      expect(['NOT_FOUND', 'IMAGE_NOT_FOUND']).toContain(errorCode(r.body));
    }

    // bad requests: 4xx JSON with the API's codes
    const cases: Array<[string, number, string]> = [
      [`/api/channels?image=i0&layer=layr1`, 400, 'UNKNOWN_LAYER'],
      [`/api/channels?image=i0&layer=fc`, 400, 'NOT_FEATURE_MAPS'],
      [`/api/channels?image=i0&layer=${LAYER}&sort=median`, 400, 'INVALID_ARGUMENT'],
      [`/api/maps?image=i0&layer=${LAYER}&channels=64`, 400, 'INVALID_ARGUMENT'],
      [`/api/maps?image=i0&layer=${LAYER}&channels=1;rm`, 400, 'INVALID_ARGUMENT'],
      [`/api/overlay?image=i0&layer=${LAYER}&kind=gradcam&class=1000`, 400, 'INVALID_ARGUMENT'],
      [`/api/layers?model=7`, 400, 'INVALID_ARGUMENT'],
      [`/api/predict?image=nope`, 404, 'IMAGE_NOT_FOUND'],
      [`/api/colormap?name=${encodeURIComponent(HOSTILE)}`, 400, 'INVALID_ARGUMENT'],
    ];
    for (const [p, status, code] of cases) {
      const r = await raw(viewer.port, `${p}&token=${t}`);
      expect([p, r.status, errorCode(r.body)]).toEqual([p, status, code]);
      expect(String(r.headers['content-type'])).toMatch(/^application\/json/);
    }
    const post = await raw(viewer.port, `/?token=${t}`, { method: 'POST' });
    expect(post.status).toBe(405);

    // uploads: the size limit, and the CLI's decoding limits
    const big = await raw(viewer.port, `/api/upload?token=${t}&name=big.png`, {
      method: 'POST',
      body: Buffer.alloc(3 * 1024 * 1024),
    });
    expect([big.status, errorCode(big.body)]).toEqual([413, 'UPLOAD_TOO_LARGE']);
    const junk = await raw(viewer.port, `/api/upload?token=${t}&name=junk.png`, {
      method: 'POST',
      body: Buffer.from('not an image'),
    });
    expect([junk.status, errorCode(junk.body)]).toEqual([400, 'IMAGE_DECODE']);
    // a PNG that claims 30000 x 30000 pixels: refused by the decoding limit, not decoded
    const bomb = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#000' } })
      .png()
      .toBuffer();
    bomb.writeUInt32BE(30000, 16);
    bomb.writeUInt32BE(30000, 20);
    bomb.writeUInt32BE(zlib.crc32(bomb.subarray(12, 29)), 29); // a valid IHDR
    const r = await raw(viewer.port, `/api/upload?token=${t}&name=bomb.png`, { method: 'POST', body: bomb });
    expect([r.status, errorCode(r.body)]).toEqual([413, 'IMAGE_TOO_LARGE']);
    // start-up refusals: a missing image, a port in use
    await expect(startViewer({ images: ['/nonexistent/photo.jpg'], models: [MODELS.scripted] })).rejects.toMatchObject({
      code: 'IMAGE_NOT_FOUND',
    });
    await expect(
      startViewer({ images: [], models: [MODELS.scripted], device: 'cpu', port: viewer.port }),
    ).rejects.toMatchObject({ code: 'PORT_IN_USE' });
    // and it goes on
    const after = await raw(viewer.port, `/api/session?token=${t}`);
    expect(after.status).toBe(200);
    expect(JSON.parse(after.body.toString()).images.map((i: { name: string }) => i.name)).not.toContain('bomb.png');
  });

  test('the CLI prints the URL with a token and the ssh -L line, listens on loopback, and stops cleanly on Ctrl-C', async () => {
    ensureBuilt();
    const { child, started, done } = startCli(['view', DOG, '--model', MODELS.scripted, '--device', 'cpu'], () => true);
    started.catch(() => undefined); // resolves on stderr output, which view need not write
    let stdout = '';
    child.stdout!.on('data', (d) => (stdout += d));
    const deadline = Date.now() + 60_000;
    while (!/Ctrl-C/.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const m = /open http:\/\/127\.0\.0\.1:(\d+)\/\?token=([A-Za-z0-9_-]{32})\n/.exec(stdout);
    expect(m).not.toBeNull();
    const port = Number(m![1]);
    expect(stdout).toContain(`ssh -L ${port}:127.0.0.1:${port} `);
    expect((await raw(port, `/api/session?token=${m![2]}`)).status).toBe(200);
    expect((await raw(port, '/api/session')).status).toBe(401);
    child.kill('SIGINT');
    const r = await done;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('stopping');
    await expect(raw(port, '/')).rejects.toThrow(/ECONNREFUSED/);
  });
});
