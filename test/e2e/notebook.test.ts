/**
 * examples/feature-maps.ipynb executed as shipped by Jupyter (Debian's nbconvert) on the real tslab
 * kernel (the devDependency, registered with `tslab install` into a temp prefix: nothing global is
 * touched): its cells run without errors and its pictures come back as image/png outputs, the
 * first one pixel-equal to the same grid rendered here. Then a kernel from a tslab copy outside the
 * checkout (as a global install is) shows a picture from featscope, which has its own (not running)
 * tslab: showGrid & co. use the running kernel's tslab.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { loadModel } from '../../lib/model';
import { preprocess } from '../../lib/preprocess';
import { weightsLabel } from '../../lib/metadata';
import { renderChannelGrid } from '../../lib';
import { showOverlay } from '../../lib/notebook';
import { PYTHON, ROOT } from '../support/models';
import { DOG, ensureBuilt } from '../support/cli';

const JUPYTER = process.env.FEATSCOPE_TEST_JUPYTER || '/usr/bin/jupyter';
const TSLAB = path.join(ROOT, 'node_modules', 'tslab');
const NOTEBOOK = path.join(ROOT, 'examples', 'feature-maps.ipynb');
const MODEL = path.join(ROOT, 'models', 'resnet18.pt');

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  ename?: string;
  evalue?: string;
}
interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Output[];
}

const join = (t: string | string[] | undefined) => (Array.isArray(t) ? t.join('') : (t ?? ''));

let tmp: string;

/** Register tslab's kernel (`tslab install`) under `prefix`; returns the environment that makes Jupyter use it. */
function registerKernel(tslabBin: string, prefix: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  execFileSync(
    process.execPath,
    [tslabBin, 'install', `--python=${PYTHON}`, `--binary=${tslabBin}`, `--prefix=${prefix}`],
    { stdio: 'pipe', env: { ...process.env, ...extra } },
  );
  const kernel = JSON.parse(
    fs.readFileSync(path.join(prefix, 'share', 'jupyter', 'kernels', 'tslab', 'kernel.json'), 'utf8'),
  ) as { argv: string[] };
  expect(kernel.argv[0]).toBe(tslabBin);
  return {
    ...process.env,
    JUPYTER_PATH: path.join(prefix, 'share', 'jupyter'),
    JUPYTER_CONFIG_DIR: path.join(prefix, 'config'),
    JUPYTER_DATA_DIR: path.join(prefix, 'data'),
    JUPYTER_RUNTIME_DIR: path.join(prefix, 'runtime'),
    FEATSCOPE_MODEL: '',
    CUDA_VISIBLE_DEVICES: '', // the notebook's device 'auto' is the CPU, like the grid rendered here
    ...extra,
  };
}

/** `jupyter nbconvert --to notebook --execute`; returns the executed notebook's cells. */
function execute(notebook: string, env: NodeJS.ProcessEnv): Cell[] {
  const out = path.join(tmp, `out-${path.basename(notebook, '.ipynb')}`);
  try {
    execFileSync(
      JUPYTER,
      [
        'nbconvert',
        '--to',
        'notebook',
        '--execute',
        notebook,
        '--output-dir',
        out,
        '--ExecutePreprocessor.timeout=120',
      ],
      { env, stdio: 'pipe', timeout: 240_000 },
    );
  } catch (err) {
    const e = err as { stderr?: Buffer };
    throw new Error(`jupyter nbconvert --execute ${notebook} failed:\n${e.stderr?.toString().slice(-4000)}`);
  }
  return (JSON.parse(fs.readFileSync(path.join(out, path.basename(notebook)), 'utf8')) as { cells: Cell[] }).cells;
}

function pngs(cells: Cell[]): Buffer[] {
  return cells.flatMap((c) =>
    (c.outputs ?? []).flatMap((o) => (o.data?.['image/png'] ? [Buffer.from(join(o.data['image/png']), 'base64')] : [])),
  );
}

/** No error outputs and nothing on stderr (tslab writes TypeScript errors there). */
function expectClean(cells: Cell[]): void {
  const bad = cells.flatMap((c) =>
    (c.outputs ?? []).filter((o) => o.output_type === 'error' || (o.output_type === 'stream' && o.name === 'stderr')),
  );
  expect(bad.map((o) => `${o.ename ?? o.name}: ${o.evalue ?? join(o.text)}`)).toEqual([]);
}

beforeAll(() => {
  ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-notebook-'));
  // What scripts/setup.sh does: the model the notebook loads, and the checkout linked into its own
  // node_modules for tslab's TypeScript (which does not read package.json exports).
  if (!fs.existsSync(MODEL))
    execFileSync(PYTHON, [path.join(ROOT, 'scripts', 'export-model.py'), MODEL, '--weights', 'none'], {
      stdio: 'inherit',
    });
  if (!fs.existsSync(path.join(ROOT, 'node_modules', 'featscope')))
    fs.symlinkSync('..', path.join(ROOT, 'node_modules', 'featscope'));
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('examples/feature-maps.ipynb runs in Jupyter on tslab and shows its four pictures inline', async () => {
  const env = registerKernel(path.join(TSLAB, 'bin', 'tslab'), path.join(tmp, 'kernel'));
  const cells = execute(NOTEBOOK, env);
  expectClean(cells);
  const code = cells.filter((c) => c.cell_type === 'code');
  const stdout = (c: Cell) =>
    join((c.outputs ?? []).flatMap((o) => (o.output_type === 'stream' ? [join(o.text)] : [])));
  expect(stdout(code[1])).toContain('[ 1, 64, 56, 56 ]');

  const shown = pngs(cells);
  // the layer1.0.conv1 grid, layer4's top 8, layer4's mean overlay, Grad-CAM's overlay
  expect(shown).toHaveLength(4);
  const sizes = await Promise.all(
    shown.map(async (png) => {
      const m = await sharp(png).metadata();
      expect(m.format).toBe('png');
      return [m.width, m.height];
    }),
  );
  // Grad-CAM's overlay is a bare 2-D map (224 x 224); layer4's mean overlay is a capture from the
  // model, framed with the banner, title and colour bar (compared with this process's below).
  expect(sizes[3]).toEqual([224, 224]);
  expect(sizes[2][1]).toBeGreaterThan(224);

  // The first picture is the grid this process renders from the same model and photo.
  const model = await loadModel(MODEL, { device: 'cpu' });
  try {
    const input = await preprocess(DOG, { resize: 'squash', size: 224 });
    expect(stdout(code[0])).toBe(`cpu ${weightsLabel(model.metadata).text}\n`);
    const [conv] = await model.capture(input, ['layer1.0.conv1']);
    const grid = await renderChannelGrid(conv);
    const [a, b] = await Promise.all(
      [shown[0], grid.png].map((p) => sharp(p).raw().toBuffer({ resolveWithObject: true })),
    );
    expect([a.info.width, a.info.height]).toEqual([b.info.width, b.info.height]);
    expect(a.data.equals(b.data)).toBe(true);
    const [deep] = await model.capture(input, ['layer4']);
    const framed = await showOverlay(input.images[0], deep, {}, { png: () => undefined, html: () => undefined });
    const [c, d] = await Promise.all(
      [shown[2], framed.png].map((p) => sharp(p).raw().toBuffer({ resolveWithObject: true })),
    );
    expect([c.info.width, c.info.height]).toEqual([d.info.width, d.info.height]);
    expect(c.data.equals(d.data)).toBe(true);
  } finally {
    model.dispose();
  }
});

test('a tslab kernel installed outside featscope shows featscope pictures (the running tslab, not the one beside featscope)', () => {
  // A copy of tslab in a folder of its own, as `npm install -g tslab` puts it; its dependencies come
  // through NODE_PATH. featscope (reached through the user's node_modules) still has its own tslab
  // beside it, which is not the kernel: its display is not connected.
  const global = path.join(tmp, 'global', 'lib', 'node_modules', 'tslab');
  fs.cpSync(TSLAB, global, { recursive: true });
  const env = registerKernel(path.join(global, 'bin', 'tslab'), path.join(tmp, 'global-kernel'), {
    NODE_PATH: path.join(ROOT, 'node_modules'),
  });
  const work = path.join(tmp, 'work');
  fs.mkdirSync(path.join(work, 'node_modules'), { recursive: true });
  fs.symlinkSync(ROOT, path.join(work, 'node_modules', 'featscope'));
  const photo = path.join(ROOT, 'test', 'fixtures', 'images', 'camera.png');
  const source = [
    "import * as fs from 'fs';",
    "import { showPng } from 'featscope';",
    `showPng(fs.readFileSync(${JSON.stringify(photo)}));`,
    'console.log(JSON.stringify(Object.keys(require.cache).filter((f) => /tslab.dist.jupyter\\.js$/.test(f))));',
  ].join('\n');
  const notebook = path.join(work, 'show.ipynb');
  const original = JSON.parse(fs.readFileSync(NOTEBOOK, 'utf8')) as { metadata: unknown };
  fs.writeFileSync(
    notebook,
    JSON.stringify({
      cells: [{ cell_type: 'code', execution_count: null, metadata: {}, outputs: [], source }],
      metadata: original.metadata,
      nbformat: 4,
      nbformat_minor: 4,
    }),
  );
  const cells = execute(notebook, env);
  expectClean(cells);
  const loaded = JSON.parse(join(cells[0].outputs?.find((o) => o.output_type === 'stream')?.text)) as string[];
  // the kernel ran from the copy, and featscope loaded no other tslab
  expect(loaded).toEqual([path.join(fs.realpathSync(global), 'dist', 'jupyter.js')]);
  expect(pngs(cells)).toEqual([fs.readFileSync(photo)]);
});
