#!/usr/bin/env bash
# Entrypoint of the featscope CUDA image (Dockerfile.cuda). Runs as the image's non-root user.
#
# Optional services, off unless asked for:
#   FEATSCOPE_JUPYTER=1   JupyterLab (with the tslab TypeScript kernel) on port 8888.
#                         JUPYTER_TOKEN is REQUIRED (16+ characters): it refuses to start without
#                         one, and there is no password login. Make one: openssl rand -hex 24
#   FEATSCOPE_SSHD=1      sshd on port 2222, public keys only (no passwords, no root), for the
#                         image's user. Keys: SSH_AUTHORIZED_KEYS (the key lines) or a file mounted
#                         at ~/.ssh/authorized_keys. Refuses to start without a key.
# Then it runs the command given (`docker run ... featscope:cuda npx featscope ...`); with no
# command it waits on the services it started, or opens a shell when none was asked for.
set -euo pipefail

die() {
  echo "featscope entrypoint: $*" >&2
  exit 64
}

enabled() {
  case "${1:-}" in 1 | true | yes | on) return 0 ;; *) return 1 ;; esac
}

if [ "$(id -u)" = "0" ]; then
  die "refusing to run as root; the image runs as its own user (do not pass --user 0 / -u root)"
fi

pids=()

start_sshd() {
  local state="$HOME/.sshd"
  local keys="$HOME/.ssh/authorized_keys"
  mkdir -p "$state" "$HOME/.ssh"
  chmod 700 "$state" "$HOME/.ssh"
  if [ -n "${SSH_AUTHORIZED_KEYS:-}" ]; then
    printf '%s\n' "$SSH_AUTHORIZED_KEYS" >"$keys"
  fi
  if [ ! -s "$keys" ] || ! grep -qE '^(ssh-|ecdsa-|sk-)' "$keys"; then
    die "FEATSCOPE_SSHD=1 needs a public key: set SSH_AUTHORIZED_KEYS or mount one at $keys (password login is disabled)"
  fi
  chmod 600 "$keys" 2>/dev/null || true
  # Host keys live in the container (regenerated per container unless ~/.sshd is a volume).
  [ -f "$state/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$state/ssh_host_ed25519_key"
  # An unprivileged sshd can only log in the user it runs as: that is the point.
  cat >"$state/sshd_config" <<EOF
Port ${FEATSCOPE_SSHD_PORT:-2222}
HostKey $state/ssh_host_ed25519_key
PidFile $state/sshd.pid
AuthorizedKeysFile $keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
PermitRootLogin no
UsePAM no
AllowUsers $(id -un)
X11Forwarding no
PrintMotd no
EOF
  # sshd wants an absolute path (it re-executes itself); /usr/sbin is not on every user's PATH.
  local sshd
  sshd="$(PATH="$PATH:/usr/sbin" command -v sshd)" || die "FEATSCOPE_SSHD=1 but sshd is not in this image (it was built with WITH_SSHD=false)"
  "$sshd" -D -e -f "$state/sshd_config" &
  pids+=("$!")
  echo "featscope entrypoint: sshd (keys only) on port ${FEATSCOPE_SSHD_PORT:-2222} for user $(id -un)"
}

start_jupyter() {
  local token="${JUPYTER_TOKEN:-}"
  if [ -z "$token" ]; then
    die "FEATSCOPE_JUPYTER=1 needs JUPYTER_TOKEN (there is no default and no password login); e.g. -e JUPYTER_TOKEN=\$(openssl rand -hex 24)"
  fi
  if [ "${#token}" -lt 16 ]; then
    die "JUPYTER_TOKEN is ${#token} characters; use at least 16 (openssl rand -hex 24)"
  fi
  command -v jupyter >/dev/null || die "FEATSCOPE_JUPYTER=1 but JupyterLab is not in this image (it was built with WITH_JUPYTER=false)"
  # Jupyter Server reads the token from JUPYTER_TOKEN; it is not put on the command line (ps shows that).
  export JUPYTER_TOKEN="$token"
  jupyter lab --no-browser --ip=0.0.0.0 --port="${FEATSCOPE_JUPYTER_PORT:-8888}" \
    --ServerApp.root_dir=/workspace --ServerApp.allow_root=False --ServerApp.allow_remote_access=True \
    --PasswordIdentityProvider.hashed_password='' --PasswordIdentityProvider.allow_password_change=False &
  pids+=("$!")
  echo "featscope entrypoint: JupyterLab on port ${FEATSCOPE_JUPYTER_PORT:-8888} (token required; kernels: Python 3, TypeScript via tslab)"
}

if enabled "${FEATSCOPE_SSHD:-}"; then start_sshd; fi
if enabled "${FEATSCOPE_JUPYTER:-}"; then start_jupyter; fi

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
if [ "${#pids[@]}" -gt 0 ]; then
  # Stop the services on docker stop; leave when any of them exits.
  trap 'kill "${pids[@]}" 2>/dev/null || true' TERM INT
  wait -n "${pids[@]}"
  exit $?
fi
exec bash
