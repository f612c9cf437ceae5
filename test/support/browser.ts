/**
 * Real Chromium for the viewer and report tests: Debian's chromium driven by playwright-core (a dev
 * dependency that never downloads a browser). FEATSCOPE_CHROMIUM names another binary.
 */
import * as fs from 'fs';
import { CHROMIUM, tempDir } from './cli';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { chromium } = require('playwright-core') as typeof import('playwright-core');
export type Page = import('playwright-core').Page;
export type BrowserContext = import('playwright-core').BrowserContext;
export type Browser = import('playwright-core').Browser;

export const haveChromium = fs.existsSync(CHROMIUM);

/** `describe` when Chromium is here, else `describe.skip` with one warning naming `what` and the fix. */
export function describeWithChromium(what: string): jest.Describe {
  if (haveChromium) return describe;
  console.warn(`${what} skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set FEATSCOPE_CHROMIUM)`);
  return describe.skip;
}

/** Flags for a quiet, offline, headless Chromium. */
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Headless Chromium with its own profile (a temp folder named from `profile`, removed at close). */
export async function launchChromium(
  profile: string,
  viewport: { width: number; height: number } = { width: 1366, height: 900 },
): Promise<BrowserContext> {
  const dir = tempDir(profile);
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: ARGS,
  });
  // Removed once close() has waited for the browser to exit (its 'close' event comes earlier).
  const close = context.close.bind(context);
  context.close = async (options) => {
    await close(options);
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  };
  return context;
}

/** Headless Chromium without a profile (pages opened with newPage). */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

/** Waits until an expression holds in the page (page.evaluate: the viewer's CSP refuses eval). */
export async function until(page: Page, expression: string, timeout = 60_000): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(expression)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The pixels of a canvas (or of an image drawn on a canvas of its natural size) as RGB, alpha
 * dropped. They travel as base64: Playwright serialises a large array element by element, slowly.
 */
export async function pixels(
  page: Page,
  selector: string,
): Promise<{ width: number; height: number; rgb: Uint8Array }> {
  const r = (await page.evaluate(`(() => {
    // read from a copy, so the page's own canvases are never read back (and Chromium does not warn)
    const src = document.querySelector(${JSON.stringify(selector)});
    const c = document.createElement('canvas');
    c.width = src instanceof HTMLImageElement ? src.naturalWidth : src.width;
    c.height = src instanceof HTMLImageElement ? src.naturalHeight : src.height;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(src, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const rgb = new Uint8Array((d.length / 4) * 3);
    for (let i = 0, j = 0; i < d.length; i += 4, j += 3) { rgb[j] = d[i]; rgb[j + 1] = d[i + 1]; rgb[j + 2] = d[i + 2]; }
    let bin = '';
    for (let i = 0; i < rgb.length; i += 0x8000) bin += String.fromCharCode.apply(null, rgb.subarray(i, i + 0x8000));
    return { width: c.width, height: c.height, b64: btoa(bin) };
  })()`)) as { width: number; height: number; b64: string };
  return { width: r.width, height: r.height, rgb: new Uint8Array(Buffer.from(r.b64, 'base64')) };
}
