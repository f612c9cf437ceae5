#!/usr/bin/env bash
# The libtorch 2.x test leg: builds featscope against Debian trixie's libtorch 2.6 inside a chroot
# and runs the native and analysis suites there, so that their Python oracles use torch 2.6 too,
# and the install with scripts blocked (test/e2e/install.test.ts) against that libtorch.
#
#   npm run test:torch2                 (as root, or through sudo)
#   bash scripts/test-torch2.sh [jest args...]   e.g. test/native/loops.test.ts
#   bash scripts/test-torch2.sh --prepare        only make or update the chroot (CI runs this in
#                                                the background while the bookworm leg runs)
#
# The chroot lives at a fixed path outside the checkout and is reused: a second run only checks
# it, updates its packages when the list changed or a day has passed, copies the checkout in and
# rebuilds what changed (the addon build, node_modules and test models are kept between runs).
# From nothing it takes about 9 min (debootstrap, then apt) plus the native build.
#
# Environment:
#   FEATSCOPE_TORCH2_ROOT    the chroot (default /var/cache/featscope/trixie)
#   FEATSCOPE_DEBIAN_MIRROR  the Debian mirror (default: the one this machine's apt sources name)
#   FEATSCOPE_TORCH2_FRESH=1 throw the chroot away and make it again
#   FEATSCOPE_TORCH2_WORK    the checkout's folder name under the chroot's /work (default
#                            featscope): several checkouts can share one chroot
# Traps handled here (see ../shared/LIBTORCH-NOTES.md): npm cannot reach the registry from inside
# the chroot (the chroot does not trust the host's certificates), so node_modules is installed by
# the host's npm with --ignore-scripts and the addon is built inside; /proc, /dev and /dev/pts are
# mounted and /etc/resolv.conf copied for apt.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tag=test-torch2
# shellcheck source=scripts/chroot-common.sh
. "$root/scripts/chroot-common.sh"  # say, die, elapsed, as_root, in_chroot, ...
as_root FEATSCOPE_TORCH2_ROOT,FEATSCOPE_DEBIAN_MIRROR,FEATSCOPE_TORCH2_FRESH,FEATSCOPE_TORCH2_WORK "$@"

chroot_dir=${FEATSCOPE_TORCH2_ROOT:-/var/cache/featscope/trixie}
suite=trixie
packages=(libtorch-dev python3-torch python3-torchvision python3-numpy python3-matplotlib python3-dev python3-setuptools
  fonts-dejavu-core nodejs g++ cmake ninja-build make python3-scipy)
packages+=(python3-sklearn) # concepts: the NMF oracle (test/analysis/concepts.test.ts)
outside_checkout FEATSCOPE_TORCH2_ROOT
find_mirror

# 1. The base system: made once, in a side folder that is renamed when complete, so that an
#    interrupted debootstrap never passes for a chroot.
[ "${FEATSCOPE_TORCH2_FRESH:-}" = 1 ] && { say "FEATSCOPE_TORCH2_FRESH=1: removing $chroot_dir"; no_mounts_below "$chroot_dir"; rm -rf "$chroot_dir"; }
if [ ! -f "$chroot_dir/.featscope-base" ]; then
  command -v debootstrap >/dev/null 2>&1 || { say "installing debootstrap"; apt-get install -y -qq --no-install-recommends debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }; }
  no_mounts_below "$chroot_dir"; no_mounts_below "$chroot_dir.partial"
  rm -rf "$chroot_dir" "$chroot_dir.partial"
  mkdir -p "$(dirname "$chroot_dir")"
  say "debootstrap $suite from $mirror into $chroot_dir (about 2-3 min)"
  debootstrap --variant=minbase "$suite" "$chroot_dir.partial" "$mirror" >/tmp/featscope-debootstrap.log 2>&1 ||
    { tail -20 /tmp/featscope-debootstrap.log; die "debootstrap failed (log: /tmp/featscope-debootstrap.log)"; }
  mv "$chroot_dir.partial" "$chroot_dir"
  date -u +%FT%TZ >"$chroot_dir/.featscope-base"
else
  say "reusing the chroot at $chroot_dir (made $(cat "$chroot_dir/.featscope-base"))"
fi
grep -q "VERSION_CODENAME=$suite" "$chroot_dir/etc/os-release" ||
  die "$chroot_dir is not a Debian $suite root; remove it or set FEATSCOPE_TORCH2_ROOT elsewhere"
cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"

# 2. Packages: installed when the list changed or a day has passed (apt-get also upgrades them
#    then); otherwise only checked with dpkg.
stamp=$chroot_dir/.featscope-packages
want="${packages[*]}"
all_installed() {
  local n
  n=$(in_chroot dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null | grep -c 'install ok installed' || true)
  [ "$n" = "${#packages[@]}" ]
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -z "$(find "$stamp" -mmin +1440)" ] && all_installed; then
  say "packages present (checked with dpkg; updated when the list changes or a day has passed)"
else
  say "apt-get install in the chroot: ${packages[*]} (about 6 min the first time)"
  rm -f "$stamp"
  in_chroot apt-get update -qq
  in_chroot apt-get install -y -qq --no-install-recommends "${packages[@]}" >/tmp/featscope-chroot-apt.log 2>&1 ||
    { tail -20 /tmp/featscope-chroot-apt.log; die "apt-get in the chroot failed (log: /tmp/featscope-chroot-apt.log)"; }
  all_installed || die "apt-get in the chroot left packages missing: ${packages[*]}"
  echo "$want" >"$stamp"
fi
if [ "${1:-}" = --prepare ]; then say "chroot ready ($(elapsed))"; exit 0; fi
torch_version=$(in_chroot /usr/bin/python3 -c 'import torch; print(torch.__version__)')
say "chroot: torch $torch_version, node $(in_chroot node --version), $(in_chroot g++ --version | head -1)"

# 3. The checkout, copied in. What git tracks or would add is copied (with its times, so the
#    native build stays incremental); what the leg keeps between runs (node_modules, build, the
#    exported models) stays; everything else there is removed first, so a deleted test cannot linger.
work_name FEATSCOPE_TORCH2_WORK "${FEATSCOPE_TORCH2_WORK:-featscope}"
mkdir -p "$work"
find "$work" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name build ! -name models ! -name test -exec rm -rf {} +
[ -d "$work/test" ] && find "$work/test" -mindepth 1 -maxdepth 1 ! -name .cache -exec rm -rf {} +
copy_checkout
# Models exported by another torch, or by older export scripts, are made again.
models_key="$torch_version $(cat scripts/export-model.py scripts/pt2_export.py test/support/*.py | sha256sum | cut -c1-16)"
if [ "$(cat "$work/test/.cache/.featscope-key" 2>/dev/null)" != "$models_key" ]; then
  rm -rf "$work/test/.cache" "$work/models"
  mkdir -p "$work/test/.cache"; echo "$models_key" >"$work/test/.cache/.featscope-key"
fi
npm_ci_into_work

# The host's npm, for test/e2e/install.test.ts (npm pack + an install with scripts blocked; Debian's
# nodejs has no npm, and the test installs from a loopback registry, so nothing is fetched).
host_npm=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
rm -rf "$chroot_dir/opt/featscope-npm" && mkdir -p "$chroot_dir/opt" && cp -a "$host_npm" "$chroot_dir/opt/featscope-npm"

# 4. Build and test inside.
say "building against the chroot's libtorch ($(elapsed) so far)"
in_chroot bash -c 'cd /work/$FEATSCOPE_WORK && export CMAKE_GENERATOR=Ninja FEATSCOPE_PYTHON=/usr/bin/python3 &&
  node scripts/build-native.js 2>&1 | grep -Ev "^\[[0-9]+/[0-9]+\] Building|^INFO|kineto|^$" &&
  ldd build/Release/featscope.node | grep -E "libtorch|libc10" && ! ldd build/Release/featscope.node | grep -q "not found" &&
  node node_modules/typescript/bin/tsc -p tsconfig.json && node scripts/pack-prebuild.js &&
  { [ -f models/resnet18.pt ] || /usr/bin/python3 scripts/export-model.py models/resnet18.pt --weights none; }'
# The 2.6 prebuild joins the checkout's prebuilds/, for the package CI packs (.ci/run).
mkdir -p prebuilds && cp -a "$work"/prebuilds/linux-* prebuilds/ && say "prebuild for the package: $(ls "$work/prebuilds")"
say "running the suites on torch $torch_version ($(elapsed) so far)"
set +e
if [ $# -gt 0 ]; then
  in_chroot bash -c 'cd /work/$FEATSCOPE_WORK && FEATSCOPE_NPM_CLI=/opt/featscope-npm/bin/npm-cli.js ./node_modules/.bin/jest "$@"' jest "$@"
else
  in_chroot bash -c 'cd /work/$FEATSCOPE_WORK && FEATSCOPE_NPM_CLI=/opt/featscope-npm/bin/npm-cli.js ./node_modules/.bin/jest test/native test/analysis test/e2e/install.test.ts'
fi
rc=$?
set -e
say "done in $(elapsed): $([ $rc = 0 ] && echo passed || echo "FAILED (exit $rc)") on libtorch $torch_version"
exit $rc
