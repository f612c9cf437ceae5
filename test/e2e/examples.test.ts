// The README's example (examples/quickstart.js) runs and prints what the README says it prints.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { ensureTestModels, MODELS, ROOT } from '../support/models';

test('examples/quickstart.js hooks two layers, prints their shapes and writes a grid', async () => {
  ensureTestModels();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-example-'));
  try {
    const grid = path.join(dir, 'grid.png');
    const out = execFileSync(process.execPath, ['examples/quickstart.js', 'test/fixtures/images/dog.jpg', grid], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, FEATSCOPE_MODEL: MODELS.scripted },
    });
    expect(out.trim().split('\n')).toEqual([
      'layer1.0.conv1 [1,64,56,56]',
      'layer4 [1,512,7,7]',
      'output [1,1000] (untrained weights)',
    ]);
    const meta = await sharp(grid).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(600);
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain(
      fs
        .readFileSync(path.join(ROOT, 'examples', 'quickstart.js'), 'utf8')
        .split('\n')
        .slice(3, 20)
        .join('\n'),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
