/**
 * Dockerfile.cuda cannot be built here (no Docker): lint it with dockerfile-utils (the validator
 * behind VS Code's Docker support, offline), and check its security properties by reading it and
 * by running scripts/docker-entrypoint.sh with stand-ins for id, jupyter and sshd.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { validate } from 'dockerfile-utils';

const ROOT = path.join(__dirname, '..', '..');
const DOCKERFILE = path.join(ROOT, 'Dockerfile.cuda');
const ENTRYPOINT = path.join(ROOT, 'scripts', 'docker-entrypoint.sh');
const dockerfile = fs.readFileSync(DOCKERFILE, 'utf8');
const entrypoint = fs.readFileSync(ENTRYPOINT, 'utf8');

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Instructions with continuation lines joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!buf && (line === '' || line.startsWith('#'))) return;
    if (buf && line.startsWith('#')) return;
    if (!buf) start = i + 1;
    buf += `${line.replace(/\\$/, '')} `;
    if (!line.endsWith('\\')) {
      const m = /^(\S+)\s*(.*)$/.exec(buf.trim())!;
      out.push({ keyword: m[1].toUpperCase(), args: m[2], line: start });
      buf = '';
    }
  });
  return out;
}

const all = instructions(dockerfile);
const froms = all.map((ins, i) => ({ ins, i })).filter(({ ins }) => ins.keyword === 'FROM');
const finalStage = all.slice(froms[froms.length - 1].i);

describe('Dockerfile.cuda lint (dockerfile-utils)', () => {
  it('has zero problems', () => {
    const problems = validate(dockerfile).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
    expect(problems).toEqual([]);
  });

  it('the linter does report problems (so zero means something)', () => {
    expect(validate('FROM node:20\nEXPOSE 99999\nWORKDIR relative\nCMD ["a"]\nCMD ["b"]\n').length).toBeGreaterThan(0);
  });
});

describe('Dockerfile.cuda structure', () => {
  it('builds on the PyTorch -devel image and runs on the matching -runtime image', () => {
    expect(dockerfile).toMatch(/^ARG PYTORCH_TAG=2\.7\.1-cuda12\.6-cudnn9$/m);
    expect(froms.map(({ ins }) => ins.args)).toEqual([
      'node:20-bookworm-slim AS node',
      'pytorch/pytorch:${PYTORCH_TAG}-devel AS build',
      'pytorch/pytorch:${PYTORCH_TAG}-runtime',
    ]);
  });

  it('takes Node.js from the official image, never from a piped download', () => {
    expect(all.filter((i) => i.keyword === 'COPY' && i.args.startsWith('--from=node ')).length).toBeGreaterThanOrEqual(
      2,
    );
    const runs = all.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runs.filter((r) => /(curl|wget)[^|]*\|\s*(sudo\s+)?(ba)?sh/.test(r))).toEqual([]);
  });

  it('builds the addon against the image torch, compiles TypeScript and packs the prebuild', () => {
    const runs = all
      .filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join('\n');
    expect(runs).toMatch(/npm ci\b/);
    expect(runs).toContain('CMAKE_PREFIX_PATH="$(python -c \'import torch;print(torch.utils.cmake_prefix_path)\')"');
    expect(runs).toMatch(/node scripts\/build-native\.js/);
    expect(runs).toMatch(/node node_modules\/typescript\/bin\/tsc -p tsconfig\.json/);
    expect(runs).toMatch(/node scripts\/pack-prebuild\.js/);
    expect(all.some((i) => i.keyword === 'COPY' && /^--from=build \/opt\/featscope /.test(i.args))).toBe(true);
  });

  it('runs as a non-root user in the final stage, with /workspace as volume and workdir', () => {
    const users = finalStage.filter((i) => i.keyword === 'USER').map((i) => i.args.trim());
    expect(users.length).toBeGreaterThan(0);
    const last = users[users.length - 1];
    expect(last).not.toMatch(/^(root|0)(:|$)/);
    const lastUserIdx = finalStage.map((i) => i.keyword).lastIndexOf('USER');
    const entryIdx = finalStage.map((i) => i.keyword).lastIndexOf('ENTRYPOINT');
    expect(entryIdx).toBeGreaterThan(lastUserIdx);
    expect(finalStage.find((i) => i.keyword === 'VOLUME')?.args).toBe('["/workspace"]');
    const workdirs = finalStage.filter((i) => i.keyword === 'WORKDIR');
    expect(workdirs[workdirs.length - 1].args).toBe('/workspace');
    expect(finalStage.find((i) => i.keyword === 'ENTRYPOINT')?.args).toBe('["/usr/local/bin/featscope-entrypoint"]');
  });

  it('sets no password, token or key in the image', () => {
    for (const [name, text] of [
      ['Dockerfile.cuda', dockerfile],
      ['docker-entrypoint.sh', entrypoint],
    ]) {
      // A literal value: a letter or digit right after `=`/`:` (an optional quote between).
      const assigns = text.match(/\b\w*(passw(or)?d|secret|token)\w*\s*[=:]\s*['"]?[A-Za-z0-9_][^\s'"]*/gi) ?? [];
      expect({ name, assigns: assigns.filter((a) => !/^allow_password_change=False$/i.test(a)) }).toEqual({
        name,
        assigns: [],
      });
      expect(text).not.toMatch(/chpasswd|passwd\s+\w|--(NotebookApp|ServerApp|IdentityProvider)\.token/i);
    }
    const envArgs = all
      .filter((i) => i.keyword === 'ENV' || i.keyword === 'ARG')
      .map((i) => i.args)
      .join(' ');
    expect(envArgs).not.toMatch(/TOKEN|PASSWORD|SSH_AUTHORIZED_KEYS/i);
  });

  it('makes the stock sshd configuration keys-only with no root login', () => {
    expect(dockerfile).toMatch(/PasswordAuthentication no/);
    expect(dockerfile).toMatch(/PermitRootLogin no/);
    expect(dockerfile).toMatch(/rm -rf [^\n]*\/etc\/ssh\/ssh_host_\*/); // no host keys baked into the image
  });
});

describe('scripts/docker-entrypoint.sh', () => {
  let dir: string;
  let home: string;
  let bin: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'featscope-entrypoint-'));
    home = path.join(dir, 'home');
    bin = path.join(dir, 'bin');
    fs.mkdirSync(home);
    fs.mkdirSync(bin);
    // Stand-ins: a non-root id (the tests may run as root), and jupyter/sshd that record how they were started.
    const stub = (name: string, body: string) =>
      fs.writeFileSync(path.join(bin, name), `#!/usr/bin/env bash\n${body}\n`, { mode: 0o755 });
    stub('id', 'case "$1" in -u) echo 1000 ;; -un) echo featscope ;; *) echo "uid=1000(featscope)" ;; esac');
    stub(
      'jupyter',
      `printf '%s\\n' "$@" > "${dir}/jupyter.args"; printf '%s' "\${JUPYTER_TOKEN:-}" > "${dir}/jupyter.token"`,
    );
    stub('sshd', `printf '%s\\n' "$@" > "${dir}/sshd.args"; cat "\${@: -1}" > "${dir}/sshd.config"`);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function run(env: Record<string, string>, args: string[] = [], fakeId = true) {
    return spawnSync('bash', [ENTRYPOINT, ...args], {
      encoding: 'utf8',
      env: { PATH: `${fakeId ? `${bin}:` : ''}/usr/bin:/bin`, HOME: home, ...env },
      timeout: 30000,
    });
  }

  it('runs the given command when no service is asked for', () => {
    const r = run({}, ['echo', 'hello']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('hello');
  });

  it('refuses to run as root', () => {
    if (process.getuid?.() !== 0) return; // only observable when the test itself runs as root
    const r = run({}, ['true'], false);
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/refusing to run as root/);
  });

  it('refuses to start JupyterLab without a token, or with a short one', () => {
    const none = run({ FEATSCOPE_JUPYTER: '1' });
    expect(none.status).toBe(64);
    expect(none.stderr).toMatch(/needs JUPYTER_TOKEN .*no default and no password login/);
    const short = run({ FEATSCOPE_JUPYTER: '1', JUPYTER_TOKEN: 'abc123' });
    expect(short.status).toBe(64);
    expect(short.stderr).toMatch(/JUPYTER_TOKEN is 6 characters; use at least 16/);
    expect(fs.existsSync(path.join(dir, 'jupyter.args'))).toBe(false);
  });

  it('starts JupyterLab with the token from the environment, not on its command line', () => {
    const token = 'f00dcafe'.repeat(4);
    const r = run({ FEATSCOPE_JUPYTER: '1', JUPYTER_TOKEN: token });
    expect(r.status).toBe(0);
    const args = fs.readFileSync(path.join(dir, 'jupyter.args'), 'utf8');
    expect(args).toMatch(/^lab$/m);
    expect(args).not.toContain(token);
    expect(args).toMatch(/--ServerApp.allow_root=False/);
    expect(fs.readFileSync(path.join(dir, 'jupyter.token'), 'utf8')).toBe(token);
  });

  it('refuses to start sshd without a public key', () => {
    const r = run({ FEATSCOPE_SSHD: '1' });
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/needs a public key.*password login is disabled/);
    expect(fs.existsSync(path.join(dir, 'sshd.args'))).toBe(false);
  });

  it('starts sshd keys-only, without root login, for the image user alone', () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000000 test@example';
    const r = run({ FEATSCOPE_SSHD: '1', SSH_AUTHORIZED_KEYS: key });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const config = fs.readFileSync(path.join(dir, 'sshd.config'), 'utf8');
    expect(config).toMatch(/^PasswordAuthentication no$/m);
    expect(config).toMatch(/^KbdInteractiveAuthentication no$/m);
    expect(config).toMatch(/^PermitRootLogin no$/m);
    expect(config).toMatch(/^PubkeyAuthentication yes$/m);
    expect(config).toMatch(/^AllowUsers featscope$/m);
    expect(fs.readFileSync(path.join(home, '.ssh', 'authorized_keys'), 'utf8').trim()).toBe(key);
    expect(fs.existsSync(path.join(home, '.sshd', 'ssh_host_ed25519_key'))).toBe(true);
  });
});
