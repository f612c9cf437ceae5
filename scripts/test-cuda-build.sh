#!/usr/bin/env bash
# The CUDA compile leg: builds featscope against Debian trixie's CUDA libtorch (libtorch-cuda-dev 2.6,
# CUDA 12.4 from non-free) inside a chroot, with no GPU: compile and link only. It fails when the
# CUDA code (native/cuda_graphs.cc and anything under FEATSCOPE_HAVE_CUDA) does not compile or
# link, or when the addon does not name libtorch_cuda and libcudart. Nothing is run on a GPU here;
# the addon cannot even be loaded (cuDNN is absent, see below).
#
#   bash scripts/test-cuda-build.sh            (as root, or through sudo)
#   bash scripts/test-cuda-build.sh --prepare  only make or update the chroot (CI runs this in the
#                                              background while the bookworm leg runs)
#
# The chroot lives at a fixed path outside the checkout and is reused (about 10 GB). From nothing
# it takes debootstrap (~1 min) plus apt (~3-8 min, network-bound); the build itself a few minutes
# on 2 cores.
#
# Environment:
#   FEATSCOPE_CUDA_ROOT      the chroot (default /var/cache/featscope/trixie-cuda)
#   FEATSCOPE_DEBIAN_MIRROR  the Debian mirror (default: the one this machine's apt sources name)
#   FEATSCOPE_CUDA_FRESH=1   throw the chroot away and make it again
#   FEATSCOPE_CUDA_WORK      the checkout's folder name under the chroot's /work (default featscope)
#
# Traps handled here (see ../shared/LIBTORCH-NOTES.md, "A CUDA libtorch without a GPU"):
# - libtorch-cuda-dev is in contrib and its CUDA libraries in non-free: both are in the sources.
# - libtorch-cuda-2.6 depends on `nvidia-cudnn`, an installer that downloads cuDNN at install time
#   and fails offline. A stand-in package of that name (empty, built here with dpkg-deb) is
#   installed and held instead; linking against libtorch_cuda.so does not need cuDNN, loading does.
# - Without nvcc (nvidia-cuda-toolkit), Caffe2Config.cmake stops with "uses CUDA but I cannot find
#   the CUDA libraries"; it is installed after libtorch-cuda-dev.
# - It conflicts with the CPU libtorch2.6, so it cannot share test-torch2.sh's chroot.
# - npm cannot reach the registry from inside the chroot: node_modules is installed by the host's
#   npm with --ignore-scripts and the addon built inside.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tag=test-cuda-build
# shellcheck source=scripts/chroot-common.sh
. "$root/scripts/chroot-common.sh"  # say, die, elapsed, as_root, in_chroot, ...
as_root FEATSCOPE_CUDA_ROOT,FEATSCOPE_DEBIAN_MIRROR,FEATSCOPE_CUDA_FRESH,FEATSCOPE_CUDA_WORK "$@"

chroot_dir=${FEATSCOPE_CUDA_ROOT:-/var/cache/featscope/trixie-cuda}
suite=trixie
packages=(libtorch-cuda-dev g++ cmake ninja-build nodejs)
toolkit=(nvidia-cuda-toolkit)
outside_checkout FEATSCOPE_CUDA_ROOT
find_mirror

# 1. The base system, made in a side folder renamed when complete.
[ "${FEATSCOPE_CUDA_FRESH:-}" = 1 ] && { say "FEATSCOPE_CUDA_FRESH=1: removing $chroot_dir"; no_mounts_below "$chroot_dir"; rm -rf "$chroot_dir"; }
if [ ! -f "$chroot_dir/.featscope-base" ]; then
  command -v debootstrap >/dev/null 2>&1 || { say "installing debootstrap"; apt-get install -y -qq --no-install-recommends debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }; }
  no_mounts_below "$chroot_dir"; no_mounts_below "$chroot_dir.partial"
  rm -rf "$chroot_dir" "$chroot_dir.partial"
  mkdir -p "$(dirname "$chroot_dir")"
  say "debootstrap $suite from $mirror into $chroot_dir (about 1-3 min)"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$chroot_dir.partial" "$mirror" >/tmp/featscope-cuda-debootstrap.log 2>&1 ||
    { tail -20 /tmp/featscope-cuda-debootstrap.log; die "debootstrap failed (log: /tmp/featscope-cuda-debootstrap.log)"; }
  echo "deb $mirror $suite main contrib non-free" >"$chroot_dir.partial/etc/apt/sources.list"
  rm -f "$chroot_dir.partial/etc/apt/sources.list.d/"*
  mv "$chroot_dir.partial" "$chroot_dir"
  date -u +%FT%TZ >"$chroot_dir/.featscope-base"
else
  say "reusing the chroot at $chroot_dir (made $(cat "$chroot_dir/.featscope-base"))"
fi
grep -q "VERSION_CODENAME=$suite" "$chroot_dir/etc/os-release" ||
  die "$chroot_dir is not a Debian $suite root; remove it or set FEATSCOPE_CUDA_ROOT elsewhere"
cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"

# 2. Packages: installed when the list changed or a day has passed; otherwise checked with dpkg.
stamp=$chroot_dir/.featscope-packages
all=("${packages[@]}" "${toolkit[@]}" nvidia-cudnn)
want="${all[*]} cudnn-stand-in-1"
all_installed() {
  local n
  n=$(in_chroot dpkg-query -W -f='${Status}\n' "${all[@]}" 2>/dev/null | grep -c 'ok installed' || true)
  [ "$n" = "${#all[@]}" ]
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -z "$(find "$stamp" -mmin +1440)" ] && all_installed; then
  say "packages present (checked with dpkg; updated when the list changes or a day has passed)"
else
  rm -f "$stamp"
  log=/tmp/featscope-cuda-apt.log
  : >"$log"
  in_chroot apt-get update -qq >>"$log" 2>&1 || { tail -20 "$log"; die "apt-get update in the chroot failed (log: $log)"; }
  # The stand-in for the cuDNN downloader: an empty package of the same name, held so that apt
  # never replaces it with the real installer.
  if ! in_chroot dpkg-query -W -f='${Status}' nvidia-cudnn 2>/dev/null | grep -q 'ok installed'; then
    say "installing an empty stand-in for nvidia-cudnn (the real one downloads cuDNN at install time)"
    pkg=$chroot_dir/tmp/nvidia-cudnn-standin
    rm -rf "$pkg"; mkdir -p "$pkg/DEBIAN"
    cat >"$pkg/DEBIAN/control" <<'EOF'
Package: nvidia-cudnn
Version: 9.0.0.312~cuda12
Architecture: amd64
Maintainer: featscope CI <ci@featscope.invalid>
Description: empty stand-in for the cuDNN downloader (featscope's compile-only CUDA leg)
 Linking against libtorch_cuda needs no cuDNN; this package only satisfies the dependency.
EOF
    in_chroot dpkg-deb --build /tmp/nvidia-cudnn-standin /tmp/nvidia-cudnn-standin.deb >>"$log" 2>&1
    in_chroot dpkg -i /tmp/nvidia-cudnn-standin.deb >>"$log" 2>&1 || { tail -20 "$log"; die "installing the nvidia-cudnn stand-in failed (log: $log)"; }
  fi
  in_chroot apt-mark hold nvidia-cudnn >>"$log" 2>&1
  say "apt-get install in the chroot: ${packages[*]} ($(elapsed) so far)"
  in_chroot apt-get install -y -qq --no-install-recommends "${packages[@]}" >>"$log" 2>&1 ||
    { tail -20 "$log"; die "apt-get install ${packages[*]} in the chroot failed (log: $log)"; }
  say "apt-get install in the chroot: ${toolkit[*]} ($(elapsed) so far)"
  in_chroot apt-get install -y -qq --no-install-recommends "${toolkit[@]}" >>"$log" 2>&1 ||
    { tail -20 "$log"; die "apt-get install ${toolkit[*]} in the chroot failed (log: $log)"; }
  in_chroot apt-get clean >>"$log" 2>&1 || true
  all_installed || die "apt-get in the chroot left packages missing: ${all[*]}"
  echo "$want" >"$stamp"
fi
if [ "${1:-}" = --prepare ]; then say "chroot ready ($(elapsed))"; exit 0; fi
say "chroot: $(in_chroot dpkg-query -W -f='${Package} ${Version}' libtorch-cuda-dev), $(in_chroot nvcc --version | tail -2 | head -1), $(in_chroot g++ --version | head -1)"

# 3. The checkout, copied in (tracked and addable files, with their times; node_modules and the
#    build folder are kept between runs so the build stays incremental).
work_name FEATSCOPE_CUDA_WORK "${FEATSCOPE_CUDA_WORK:-featscope}"
mkdir -p "$work"
find "$work" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name build -exec rm -rf {} +
copy_checkout
npm_ci_into_work

# 4. Build with CUDA on: compile and link only. The addon must export native/cuda_graphs.cc's
#    marker (its CUDA code went in, not the CPU stand-in) and name libtorch_cuda and libcudart
#    (ldd also prints libcudnn as not found: cuDNN is the stand-in, so the addon cannot be loaded
#    here, by design).
say "building against the chroot's CUDA libtorch ($(elapsed) so far)"
t_build=$(date +%s)
set +e
in_chroot bash -c 'set -o pipefail; cd /work/$FEATSCOPE_WORK && export CMAKE_GENERATOR=Ninja &&
  node scripts/build-native.js 2>&1 | grep -Ev "^\[[0-9]+/[0-9]+\] Building|^INFO|kineto|^$" &&
  ldd build/Release/featscope.node >/tmp/featscope-cuda-ldd.txt &&
  grep -E "libtorch_cuda|libcudart|libc10_cuda|not found" /tmp/featscope-cuda-ldd.txt | sed "s/ (0x.*//" &&
  grep -q "libtorch_cuda" /tmp/featscope-cuda-ldd.txt && grep -q "libcudart" /tmp/featscope-cuda-ldd.txt &&
  nm -D --defined-only build/Release/featscope.node | grep -q featscope_cuda_graphs_built &&
  echo "the addon holds the CUDA code (featscope_cuda_graphs_built) and links libtorch_cuda and libcudart"'
rc=$?
set -e
say "build took $(( $(date +%s) - t_build )) s"
say "done in $(elapsed): $([ $rc = 0 ] && echo "the CUDA build compiled and linked" || echo "FAILED (exit $rc): the CUDA build did not compile, link or name libtorch_cuda/libcudart")"
exit $rc
