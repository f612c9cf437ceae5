/**
 * report.html in headless Chromium (Debian's chromium driven by playwright-core): no console
 * errors, no network requests, no broken images, a non-blank screenshot, the UNTRAINED banner,
 * and hostile module, metadata and file names shown as text, never run.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { MODELS, ensureTestModels } from '../support/models';
import { CHROMIUM, DOG, HOSTILE, ensureBuilt, runCli, tempDir, makeHostileModel } from './support';

// playwright-core is a dev dependency; it never downloads a browser (we use Debian's chromium).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { chromium } = require('playwright-core') as typeof import('playwright-core');

const haveChromium = fs.existsSync(CHROMIUM);
const maybe = haveChromium ? describe : describe.skip;
if (!haveChromium)
  console.warn(
    `report tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set FEATSCOPE_CHROMIUM)`,
  );

interface PageReport {
  consoleErrors: string[];
  pageErrors: string[];
  dialogs: string[];
  requests: string[];
  images: { total: number; broken: string[] };
  injected: number;
  text: string;
  screenshot: Buffer;
}

async function openReport(file: string): Promise<PageReport> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 768 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const r: PageReport = {
      consoleErrors: [],
      pageErrors: [],
      dialogs: [],
      requests: [],
      images: { total: 0, broken: [] },
      injected: 0,
      text: '',
      screenshot: Buffer.alloc(0),
    };
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') r.consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => r.pageErrors.push(String(e)));
    page.on('dialog', (d) => {
      r.dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('request', (req) => {
      if (!req.url().startsWith('data:')) r.requests.push(req.url());
    });
    const url = `file://${file}`;
    await page.goto(url, { waitUntil: 'load' });
    // Strings, not functions: the test tsconfig has no DOM types.
    r.images = (await page.evaluate(
      `(() => { const imgs = Array.from(document.images); return { total: imgs.length, broken: imgs.filter((i) => !i.complete || i.naturalWidth === 0).map((i) => i.alt) }; })()`,
    )) as PageReport['images'];
    r.injected = (await page.evaluate(
      `document.querySelectorAll('img[src="x"], img[src="y"], script').length`,
    )) as number;
    r.text = (await page.evaluate('document.body.innerText')) as string;
    r.screenshot = await page.screenshot({ fullPage: true });
    r.requests = r.requests.filter((u) => u !== url);
    return r;
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

/** Not blank: many distinct colours and real contrast. */
async function expectNotBlank(png: Buffer) {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const colours = new Set<number>();
  for (let i = 0; i < data.length; i += 3 * 7) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  expect(colours.size).toBeGreaterThan(1000);
  const stats = await sharp(png).stats();
  expect(stats.channels[0].stdev).toBeGreaterThan(20);
  expect(info.width).toBe(1366);
}

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
});

maybe('report.html in Chromium', () => {
  test('a ResNet-18 report: images load, no errors or requests, UNTRAINED banner, not blank', async () => {
    const dir = tempDir('report-in');
    const out = tempDir('report');
    fs.copyFileSync(DOG, path.join(dir, 'dog.jpg'));
    fs.copyFileSync(DOG, path.join(dir, `${HOSTILE}.jpg`));
    fs.writeFileSync(path.join(dir, 'broken.png'), 'not a png');
    const r = runCli([
      'render',
      dir,
      '--model',
      MODELS.scripted,
      '--layers',
      'layer1.0.conv1,layer4',
      '--overlay',
      '--report',
      '--out',
      out,
    ]);
    expect(r.code).toBe(1); // broken.png
    const file = path.join(out, 'report.html');
    const html = fs.readFileSync(file, 'utf8');
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/(src|href)="(?!data:)/); // everything inlined
    const page = await openReport(file);
    expect(page.consoleErrors).toEqual([]);
    expect(page.pageErrors).toEqual([]);
    expect(page.dialogs).toEqual([]);
    expect(page.requests).toEqual([]);
    // per image: input + (grid + overlay) x 2 layers
    expect(page.images.total).toBe(2 * 5);
    expect(page.images.broken).toEqual([]);
    expect(page.injected).toBe(0);
    expect(page.text).toContain('UNTRAINED WEIGHTS');
    expect(page.text).toContain(`${HOSTILE}.jpg`); // the file name shown as text
    expect(page.text).toMatch(/1 input failed/);
    expect(page.text).toContain('broken.png');
    expect(page.text).toMatch(/Top channels by max activation/);
    expect(page.text).toMatch(/dead channels/);
    await expectNotBlank(page.screenshot);
    fs.writeFileSync(path.join(out, 'screenshot.png'), page.screenshot);
  });

  test(`a model with a module named ${HOSTILE} and hostile metadata runs no script`, async () => {
    const model = path.join(tempDir('hostile-model'), 'hostile.pt');
    makeHostileModel(model);
    const out = tempDir('report-hostile');
    const r = runCli([
      'render',
      DOG,
      '--model',
      model,
      '--layers',
      `stem,${HOSTILE}`,
      '--overlay',
      '--report',
      '--out',
      out,
    ]);
    expect(r.stderr).not.toMatch(/failed/);
    expect(r.code).toBe(0);
    // the layer's files got a sanitised name inside --out
    // (a name that had to be changed to be safe also gets a hash of the original, so that two
    // such names can never map to one file)
    const files = fs.readdirSync(path.join(out, 'dog')).sort();
    expect(files).toHaveLength(6);
    expect(files.filter((f) => /^img_src_x_onerror_alert_1-[0-9a-f]{8}(\.overlay)?\.png$/.test(f))).toHaveLength(2);
    expect(files.filter((f) => !f.startsWith('img_'))).toEqual([
      'input.png',
      'record.json',
      'stem.overlay.png',
      'stem.png',
    ]);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).not.toContain(HOSTILE);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toContain('<script>alert(2)');
    const page = await openReport(path.join(out, 'report.html'));
    expect(page.dialogs).toEqual([]);
    expect(page.pageErrors).toEqual([]);
    expect(page.consoleErrors).toEqual([]);
    expect(page.requests).toEqual([]);
    expect(page.injected).toBe(0);
    expect(page.images.broken).toEqual([]);
    expect(page.text).toContain(HOSTILE);
    expect(page.text).toContain('<script>alert(2)</script>');
    expect(page.text).toContain('UNTRAINED WEIGHTS');
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.layers.map((l: { name: string }) => l.name)).toEqual(['stem', HOSTILE]);
    expect(manifest.trained).toBe(false);
  });
});
