# Plumbing shared by the chroot legs (scripts/test-torch2.sh, scripts/test-cuda-build.sh); sourced,
# not run. Before sourcing, set `tag` (the prefix of messages, e.g. test-torch2); the functions
# read `chroot_dir` and `name` (the checkout's folder under the chroot's /work) when called.
# shellcheck shell=bash

say() { printf '%s: %s\n' "$tag" "$*"; }
die() { printf '%s: %s\n' "$tag" "$*" >&2; exit 1; }
t_start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t_start )) s"; }

# as_root VARS "$@": re-runs the calling script through sudo unless it runs as root, keeping the
# environment variables named in VARS (comma-separated) and PATH.
as_root() {
  local keep=$1
  shift
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "needs root (debootstrap, mount, chroot); run it as root"
    exec sudo --preserve-env="$keep",PATH bash "$0" "$@"
  fi
}

# outside_checkout VAR: the chroot (chroot_dir, set from the variable VAR) must not lie in the checkout.
outside_checkout() {
  case "$chroot_dir" in "$root"|"$root"/*) die "$1 must lie outside the checkout ($root)";; esac
}

# Sets `mirror`: FEATSCOPE_DEBIAN_MIRROR, or the Debian mirror this machine's apt already uses
# (deb822 `URIs:` or one-line `deb URL suite`), or deb.debian.org.
find_mirror() {
  mirror=${FEATSCOPE_DEBIAN_MIRROR:-}
  if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
      grep -oE '(https?://[^ ]+/debian)/?( |$)' | grep -v security | head -1 | tr -d ' ' || true)
    mirror=${mirror:-http://deb.debian.org/debian}
  fi
}

# Every command in the chroot runs in a mount namespace of its own, with /proc and /dev (devpts
# included) mounted there: the mounts end with the command, whatever way it ends, concurrent runs
# do not unmount each other's, and removing the chroot can never reach the host's /dev.
in_chroot() {  # a clean environment: nothing of the host's (LD_PRELOAD, PATH, npm config) leaks in
  unshare --mount --propagation private -- /bin/sh -c 'r=$1; shift
    mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && exec chroot "$r" "$@"' sh "$chroot_dir" \
    /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive CI="${CI:-}" FEATSCOPE_WORK="${name:-featscope}" "$@"
}
no_mounts_below() {  # refuse to delete a chroot something is still mounted in (an older run's mounts)
  ! findmnt -rn -o TARGET | grep -q "^$1/" || die "something is still mounted under $1 (findmnt | grep $1): unmount it first"
}

# work_name VAR VALUE: sets `name` and `work` (the checkout's copy in the chroot), refusing a VALUE
# that is not a plain folder name.
work_name() {
  name=$2
  case "$name" in *[!A-Za-z0-9_.-]*|.*|'') die "$1 must be a plain folder name, not $name";; esac
  work=$chroot_dir/work/$name
}

# Copies what git tracks or would add into `work` (with its times, so the native build stays
# incremental); outside a git checkout, the folder less its build outputs.
copy_checkout() {
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$root" ls-files -z -co --exclude-standard | (cd "$root" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$work"
  else
    tar -C "$root" --exclude=./node_modules --exclude=./build --exclude=./dist --exclude=./models --exclude=./test/.cache -cf - . | tar -xf - -C "$work"
  fi
}

# npm cannot reach the registry from inside the chroot (it does not trust the host's certificates):
# node_modules is installed by the host's npm with --ignore-scripts, when package-lock.json changed.
npm_ci_into_work() {
  if ! cmp -s package-lock.json "$work/node_modules/.package-lock.json.featscope" 2>/dev/null; then
    say "npm ci --ignore-scripts (on the host, into the chroot's copy)"
    (cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    cp package-lock.json "$work/node_modules/.package-lock.json.featscope"
  fi
}
