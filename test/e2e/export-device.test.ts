/**
 * scripts/export-model.py --device: a .pt2 package is compiled for one device. Without a GPU,
 * `--device cuda` stops with exit 2 and a line saying why and what to do (the CUDA export itself
 * runs in test/gpu/pt2-cuda.test.ts on a GPU machine); `--device` on a TorchScript export is a usage
 * error. Nothing is written in either case.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { PYTHON, ROOT } from '../support/models';
import { tempDir } from '../support/cli';

const EXPORTER = path.join(ROOT, 'scripts', 'export-model.py');
const torchSeesCuda =
  spawnSync(PYTHON, ['-c', 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)']).status === 0;

function exportModel(args: string[]) {
  const r = spawnSync(PYTHON, [EXPORTER, ...args], { encoding: 'utf8', env: { ...process.env, FEATSCOPE_DEBUG: '' } });
  return { code: r.status, stderr: r.stderr };
}

(torchSeesCuda ? test.skip : test)('--device cuda without a GPU: exit 2, says why, writes nothing', () => {
  const dir = tempDir('export-device');
  const out = path.join(dir, 'm.pt2');
  const r = exportModel([out, '--format', 'pt2', '--device', 'cuda']);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(
    /--device cuda: this Python's torch .* sees no CUDA GPU \(torch\.cuda\.is_available\(\) is False/,
  );
  expect(r.stderr).toMatch(/export for the CPU \(--device cpu, the default\)/);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(fs.readdirSync(dir)).toEqual([]);
});

test('--device on a TorchScript export is a usage error naming loadModel({ device })', () => {
  const dir = tempDir('export-device-ts');
  const r = exportModel([path.join(dir, 'm.pt'), '--device', 'cuda']);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/--device applies only to --format pt2 \(a TorchScript file loads on any device/);
  expect(fs.readdirSync(dir)).toEqual([]);
});
