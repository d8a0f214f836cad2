#!/usr/bin/env bash
# `make test-kernels`: run the test suite on a second kernel, Debian 12's Linux 6.1, booted under qemu (software
# emulation, TCG) by run-6.1.sh beside this file. The guest shares the host's / read-only and this checkout
# read-write, so it runs the host's .venv, clang and bpftool against its own kernel.
#
# Usage: .ci/kernels/test-kernels.sh [PYTEST ARGS...]     (default: the whole suite)
# Installs qemu-system-x86 and busybox-static with apt when they are missing (needs root); downloads the kernel
# .deb once with apt into $WORK (default ${TMPDIR:-/tmp}/kernel-vm/cache). Output: the guest's log is shown live
# and kept in $OUT/guest.log (default ${TMPDIR:-/tmp}/bpfschema-kernels/6.1). Exit status: pytest's in the guest,
# 124 if the guest timed out ($TIMEOUT s, default 3600), 125 if it never reported.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
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

export OUT=${OUT:-${TMPDIR:-/tmp}/bpfschema-kernels/6.1}
export WORK=${WORK:-${TMPDIR:-/tmp}/kernel-vm/cache}
export TIMEOUT=${TIMEOUT:-3600}
genv="PYTHONUNBUFFERED=1"
[ -z "${CI:-}" ] || genv="CI=$CI $genv"  # under CI the guest's kernel tests fail instead of skipping
export GUEST_ENV="$genv ${GUEST_ENV:-}"
T0=$(date +%s)
set +e
.ci/kernels/run-6.1.sh /bin/bash .ci/kernels/guest.sh "$@"
rc=$?
set -e
echo "test-kernels: Linux 6.1 run took $(( $(date +%s) - T0 )) s, exit $rc (log: $OUT/guest.log)"
exit $rc
