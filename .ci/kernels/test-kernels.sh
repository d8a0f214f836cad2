#!/usr/bin/env bash
# `make test-kernels`: run the test suite on more kernels, Debian 12's Linux 6.1 and Debian 13's 6.12, booted under
# qemu (software emulation, TCG) by run-6.1.sh beside this file (KERNELS="6.1 6.12" by default). The guest shares the host's / read-only and this checkout
# read-write, so it runs the host's .venv, clang and bpftool against its own kernel.
#
# Usage: .ci/kernels/test-kernels.sh [PYTEST ARGS...]     (default: the whole suite)
# The kernels run one after the other (KERNELS_PARALLEL=1: at the same time, see below).
# Installs qemu-system-x86 and busybox-static with apt when they are missing (needs root); downloads the kernel
# .deb once with apt into $WORK (default ${TMPDIR:-/tmp}/kernel-vm/cache). Output: the guest's log is shown live
# and kept in ${TMPDIR:-/tmp}/bpfschema-kernels/<kernel>/guest.log. Exit status: 0 if pytest passed on every kernel,
# else a failing run's (124: the guest timed out after $TIMEOUT s, default 3600; 125: it never reported).
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v curl >/dev/null || need+=(curl)
command -v xz >/dev/null || need+=(xz-utils)  # Debian 13's package index and its .ko.xz modules
case "$(ldd /bin/busybox 2>&1 || true)" in *'not a dynamic'*) ;; *) need+=(busybox-static);; esac
kernel_known() { apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' 2>/dev/null | grep -q .; }
if [ ${#need[@]} -gt 0 ] || ! kernel_known; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "test-kernels: needs root and apt to install ${need[*]:-nothing} and download Debian's linux-image-6.1" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if [ ${#need[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

export WORK=${WORK:-${TMPDIR:-/tmp}/kernel-vm/cache}
export TIMEOUT=${TIMEOUT:-3600}
genv="PYTHONUNBUFFERED=1"
[ -z "${CI:-}" ] || genv="CI=$CI $genv"  # under CI the guest's kernel tests fail instead of skipping
export GUEST_ENV="$genv ${GUEST_ENV:-}"

# Debian 13's 6.12 is not in this machine's apt sources (Debian 12): its newest amd64 image is looked up in trixie's
# package index and downloaded from the pool (run-6.1.sh caches the extracted kernel in $WORK).
trixie_kernel() {
  local idx="$WORK/trixie-Packages.xz"
  mkdir -p "$WORK"
  if [ ! -s "$idx" ] || [ -n "$(find "$idx" -mmin +720)" ]; then
    curl -fsSL --retry 3 -o "$idx.tmp" https://deb.debian.org/debian/dists/trixie/main/binary-amd64/Packages.xz
    mv "$idx.tmp" "$idx"
  fi
  xz -dc "$idx" | awk '/^Package: linux-image-6\.12\.[0-9]+\+deb13-amd64-unsigned$/ {p = $2}
                       /^Filename:/ {if (p) {print p, $2; p = ""}}' | sort -V | tail -1
}

# By default one guest after the other, the guest log shown live. KERNELS_PARALLEL=1 runs each kernel's guest in the
# background at the same time, output in $OUT/run.out (the guest log is $OUT/guest.log), the tail of each printed
# when it ends. One try on 2 cores (2026-11-30, stopped at ~45%): the two TCG guests kept the host at load 3.6, 6.12
# went about as fast as beside the host's own suite, and two tests failed, one from a mypy cache both guests wrote
# (each guest has its own now) and one probably from the load (the exporter's scrape count); so it is off in CI.
run_kernel() {  # $1: kernel; the rest: pytest args
  local k=$1; shift
  export OUT=${TMPDIR:-/tmp}/bpfschema-kernels/$k
  mkdir -p "$OUT"
  local T0 rc
  T0=$(date +%s)
  set +e
  if [ "${KERNELS_PARALLEL:-0}" = 1 ]; then
    .ci/kernels/run-6.1.sh /bin/bash .ci/kernels/guest.sh "$@" < /dev/null > "$OUT/run.out" 2>&1
  else
    .ci/kernels/run-6.1.sh /bin/bash .ci/kernels/guest.sh "$@"
  fi
  rc=$?
  set -e
  echo "test-kernels: Linux $k run took $(( $(date +%s) - T0 )) s, exit $rc (log: $OUT/guest.log)" >> "$OUT/run.out"
  return $rc
}

setup_kernel() {  # exports KPKG/KURL for $1 (6.1: the newest in this machine's apt sources)
  case $1 in
    6.1) unset KPKG KURL ;;
    6.12) read -r KPKG path < <(trixie_kernel) || true
          [ -n "${KPKG:-}" ] || { echo "test-kernels: no 6.12 kernel found in Debian 13's index" >&2; return 2; }
          export KPKG KURL="https://deb.debian.org/debian/$path" ;;
    *) echo "test-kernels: unknown kernel $1 (known: 6.1 6.12)" >&2; exit 2 ;;
  esac
}

worst=0
pids=()
kernels=()
for k in ${KERNELS:-6.1 6.12}; do
  if ! setup_kernel "$k"; then worst=2; continue; fi
  if [ "${KERNELS_PARALLEL:-0}" = 1 ]; then
    ( run_kernel "$k" "$@" ) &
    pids+=($!)
    kernels+=("$k")
    echo "test-kernels: Linux $k started in the background (output: ${TMPDIR:-/tmp}/bpfschema-kernels/$k/run.out)"
  else
    run_kernel "$k" "$@" || worst=$?
    tail -n 1 "${TMPDIR:-/tmp}/bpfschema-kernels/$k/run.out" 2>/dev/null || true
  fi
done
for i in "${!pids[@]}"; do
  k=${kernels[$i]}
  rc=0
  wait "${pids[$i]}" || rc=$?
  echo "=== Linux $k: the last lines of its run (exit $rc) ==="
  tail -n 400 "${TMPDIR:-/tmp}/bpfschema-kernels/$k/run.out" | tr -d '\r' | grep -Ev '^[.sxXFE]* *(\[ *[0-9]+%\])?$' | tail -n 80 || true
  [ "$rc" = 0 ] || worst=$rc
done
exit $worst
