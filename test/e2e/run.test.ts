/**
 * `featscope run job.yaml|job.json`: jobs in turn, paths relative to the file, every job checked
 * before the first starts, exit codes and --resume as on the command line (a real SIGINT).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MODELS, ensureTestModels } from '../support/models';
import { DOG, ensureBuilt, runCli, startCli, tempDir } from '../support/cli';

const CHELSEA = path.join(path.dirname(DOG), 'chelsea.png');

beforeAll(() => {
  ensureTestModels();
  ensureBuilt();
});

/** A folder with the job file's photos/ and the test model as model.pt, all relative to it. */
function workspace(prefix: string, photos = [DOG, CHELSEA]): string {
  const dir = tempDir(prefix);
  fs.mkdirSync(path.join(dir, 'photos'));
  photos.forEach((p, i) =>
    fs.copyFileSync(p, path.join(dir, 'photos', `${String(i).padStart(2, '0')}-${path.basename(p)}`)),
  );
  fs.symlinkSync(MODELS.scripted, path.join(dir, 'model.pt'));
  return dir;
}

const f32 = (file: string) => {
  const b = fs.readFileSync(file);
  return b.subarray(b.length - 4000); // the data tail of an .npy: enough to tell two captures apart
};

test('a YAML file runs its jobs in turn, with paths relative to the file and defaults for every job', () => {
  const dir = workspace('run-yaml');
  fs.writeFileSync(
    path.join(dir, 'job.yaml'),
    `# the blog's workflow, shortened
defaults:
  model: model.pt
  device: cpu
jobs:
  - command: export
    name: features
    inputs: photos/
    layers: [layer1.0.conv1, layer4]
    out: out/features
  - command: stats
    inputs: [photos/*.png]
    layers: layer4
    examples: 0
    out: out/stats
  - command: weights
    layers: conv1
    out: out/weights
`,
  );
  // Run from elsewhere: the file's folder, not the working directory, anchors the paths.
  const r = runCli(['run', path.join(dir, 'job.yaml')], { cwd: os.tmpdir() });
  expect(r.stderr).not.toMatch(/warning|error/i);
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(
    /featscope run: job 1\/3 \(features\): featscope export --model \S+model\.pt --device cpu --layers layer1\.0\.conv1,layer4 --out \S+out\/features -- \S+photos/,
  );
  expect(r.stderr.indexOf('job 1/3')).toBeLessThan(r.stderr.indexOf('job 2/3'));
  expect(r.stderr).toMatch(/job 3\/3 \(weights\): exit 0/);

  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'out', 'features', 'manifest.json'), 'utf8'));
  expect(manifest.images.map((i: { name: string }) => i.name).sort()).toEqual(['00-dog', '01-chelsea']);
  const stats = JSON.parse(fs.readFileSync(path.join(dir, 'out', 'stats', 'stats.json'), 'utf8'));
  expect(stats.images).toBe(1); // the glob took chelsea.png only
  expect(fs.existsSync(path.join(dir, 'out', 'weights', 'weights.json'))).toBe(true);

  // The same export on the command line writes the same values.
  const direct = tempDir('run-direct');
  expect(
    runCli([
      'export',
      path.join(dir, 'photos'),
      '--model',
      MODELS.scripted,
      '--device',
      'cpu',
      '--layers',
      'layer1.0.conv1,layer4',
      '--out',
      direct,
    ]).code,
  ).toBe(0);
  expect(
    f32(path.join(dir, 'out', 'features', '00-dog', 'layer4.npy')).equals(
      f32(path.join(direct, '00-dog', 'layer4.npy')),
    ),
  ).toBe(true);
});

test('unknown keys, commands and values are refused with did-you-mean before any job runs', () => {
  const dir = workspace('run-bad');
  const cases: Array<[string, string, RegExp]> = [
    [
      'typo.yaml',
      'jobs:\n  - command: export\n    inputs: photos\n    out: out/a\n  - command: render\n    inputs: photos\n    overlya: true\n',
      /job 2 of 2 \(render\): unknown key "overlya"; did you mean "overlay"\?/,
    ],
    ['top.yaml', 'job:\n  - command: export\n', /unknown key "job"; did you mean "jobs"\?/],
    ['cmd.json', '[{"command": "stat", "inputs": "photos"}]', /job 1 of 1: unknown command "stat"; did you mean stats/],
    [
      'switch.yaml',
      '- command: render\n  inputs: photos\n  report: 3\n',
      /report is a switch: give true or false, not 3/,
    ],
    [
      'defaults.yaml',
      'defaults:\n  devce: cpu\njobs:\n  - command: export\n    inputs: photos\n',
      /defaults: unknown key "devce"; did you mean "device"/,
    ],
    ['noinputs.yaml', '- command: weights\n  inputs: photos\n', /weights takes no inputs; remove inputs/],
    ['broken.yaml', 'jobs:\n  - command: render\n    inputs: [a\n', /is not valid YAML: .*line 4/],
    ['broken.json', '{"jobs": [', /is not valid JSON/],
    ['job.txt', 'x', /must end in \.yaml, \.yml or \.json/],
  ];
  for (const [name, text, message] of cases) {
    fs.writeFileSync(path.join(dir, name), text);
    const r = runCli(['run', path.join(dir, name)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/\[USAGE\]/);
  }
  expect(fs.existsSync(path.join(dir, 'out'))).toBe(false); // job 1 of typo.yaml did not start
  expect(runCli(['run', path.join(dir, 'missing.yaml')]).stderr).toMatch(/job file ".*missing\.yaml": no such file/);
});

test('exit codes: failed inputs give 1 and later jobs still run; a usage error stops the run with 2; --resume skips finished jobs', () => {
  const dir = workspace('run-codes');
  fs.writeFileSync(path.join(dir, 'photos', 'broken.jpg'), 'not an image');
  const job = (layer: string) =>
    JSON.stringify({
      defaults: { model: 'model.pt', device: 'cpu' },
      jobs: [
        { command: 'export', name: 'one', inputs: 'photos', layers: 'layer1', out: 'out/one' },
        { command: 'export', name: 'two', inputs: 'photos/00-dog.jpg', layers: layer, out: 'out/two' },
        { command: 'export', name: 'three', inputs: 'photos/00-dog.jpg', layers: 'fc', out: 'out/three' },
      ],
    });
  fs.writeFileSync(path.join(dir, 'job.json'), job('layer9'));
  const r = runCli(['run', path.join(dir, 'job.json')]);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/broken\.jpg/);
  expect(r.stderr).toMatch(/job 2\/3 \(two\): .*layer9.*\[UNKNOWN_LAYER\]/);
  expect(r.stderr).toMatch(/job 1\/3 \(one\): exit 1 .*job 2\/3 \(two\): exit 2 .*job 3\/3 \(three\): not started/);
  expect(fs.existsSync(path.join(dir, 'out', 'three'))).toBe(false);

  // Fixed: --resume reruns job one (it had failures), job two and three.
  fs.writeFileSync(path.join(dir, 'job.json'), job('layer4'));
  const fixed = runCli(['run', path.join(dir, 'job.json'), '--resume']);
  expect(fixed.code).toBe(1); // broken.jpg still fails in job one
  expect(fixed.stderr).toMatch(/job 1\/3 \(one\): featscope export --resume /);
  expect(fixed.stderr).toMatch(/skipped 2 already finished, 1 failed/);
  expect(fixed.stderr).toMatch(/job 2\/3 \(two\): exit 0 .*job 3\/3 \(three\): exit 0/);

  fs.unlinkSync(path.join(dir, 'photos', 'broken.jpg'));
  const again = runCli(['run', path.join(dir, 'job.json'), '--resume']);
  expect(again.code).toBe(0);
  expect(again.stderr).toMatch(/job 2\/3 \(two\): finished in an earlier run, skipped/);
  expect(again.stderr).toMatch(/job 3\/3 \(three\): finished in an earlier run, skipped/);
  expect(again.stderr).not.toMatch(/job 2\/3 \(two\): featscope export/);
});

test('Ctrl-C stops the run after the current image with 130; --resume finishes that job and runs the rest', async () => {
  const dir = workspace(
    'run-sigint',
    Array.from({ length: 12 }, () => DOG),
  );
  fs.writeFileSync(
    path.join(dir, 'job.yaml'),
    'defaults: {model: model.pt, device: cpu}\njobs:\n  - {command: render, inputs: photos, layers: layer1.0.conv1, batch: 1, out: out/render}\n  - {command: export, inputs: photos/00-dog.jpg, layers: fc, out: out/fc}\n',
  );
  const run = startCli(['run', path.join(dir, 'job.yaml')], (err) => /\[2\/12\]/.test(err));
  await run.started;
  run.child.kill('SIGINT');
  const r = await run.done;
  expect(r.signal).toBeNull();
  expect(r.code).toBe(130);
  expect(r.stderr).toMatch(/job 2\/2 \(export\): not started/);
  expect(r.stderr).toMatch(/rerun `featscope run .*job\.yaml --resume`/);
  expect(fs.existsSync(path.join(dir, 'out', 'fc'))).toBe(false);
  const finished = fs
    .readdirSync(path.join(dir, 'out', 'render'))
    .filter((d) => fs.existsSync(path.join(dir, 'out', 'render', d, 'record.json'))).length;
  expect(finished).toBeGreaterThanOrEqual(2);
  expect(finished).toBeLessThan(12);

  const resumed = runCli(['run', path.join(dir, 'job.yaml'), '--resume']);
  expect(resumed.code).toBe(0);
  expect(resumed.stderr).toMatch(new RegExp(`rendered ${12 - finished} images, skipped ${finished} already finished`));
  expect(fs.existsSync(path.join(dir, 'out', 'fc', '00-dog', 'fc.npy'))).toBe(true);
});
