#!/usr/bin/env bash
# The project's copy of the shared recipe (../shared/kernels/run-6.1.sh); `make test-kernels` runs it through
# .ci/kernels/test-kernels.sh. Boot Debian 12's Linux 6.1 under qemu TCG (no KVM) with the host's / shared read-only over virtio-9p,
# and run a command as root, chrooted into that root, in the project directory (shared read-write).
#
# Usage: run-6.1.sh [COMMAND...]        (default: .venv/bin/python -m pytest -q -p no:cacheprovider)
# Env:   PROJ      project dir on the host (default: the current directory); mounted read-write at the same path
#        OUT       host dir for results (default: ${TMPDIR:-/tmp}/kernel-vm/out): guest.log (the command's output, also shown live),
#                  console.log (boot messages), rc; the guest sees it as /run/k61out (write reports there)
#        KPKG      kernel package (default: newest linux-image-6.1.0-*-amd64-unsigned apt knows)
#        KURL      download KPKG's .deb from this URL instead of with apt (test-kernels.sh sets it for Debian 13's 6.12)
#        WORK      cache for the extracted kernel and the initramfs (default: ${TMPDIR:-/tmp}/kernel-vm/cache)
#        MEM=2048 SMP=2 TIMEOUT=3600 (seconds of wall time before qemu is killed)
#        GUEST_ENV  extra "K=V K=V" exported inside the guest (e.g. "CI=true PYTHONUNBUFFERED=1")
#        ACCEL=tcg (default, software emulation; ~11 min for this suite on 2 vCPUs) or ACCEL=kvm (-cpu host; untested
#                   here: KVM guests hang in early boot on the machine this was written on)
# The project's .venv must already exist on the host (make test / make .venv/.installed-stamp): the guest only runs.
# Needs (Debian 12 host, root): qemu-system-x86 (--no-install-recommends), busybox-static, and apt access to
# download the kernel .deb once. The chroot is the host's own /, so the project's .venv, clang, bpftool, etc.
# are whatever the host has. Exit status: the command's, or 124 if the guest timed out, 125 if it never reported.
set -euo pipefail

PROJ=$(readlink -f "${PROJ:-$PWD}")
OUT=${OUT:-${TMPDIR:-/tmp}/kernel-vm/out}
WORK=${WORK:-${TMPDIR:-/tmp}/kernel-vm/cache}
MEM=${MEM:-2048}
SMP=${SMP:-2}
TIMEOUT=${TIMEOUT:-3600}
ACCEL=${ACCEL:-tcg}
if [ "$ACCEL" = kvm ]; then QACCEL=(-accel kvm -cpu host); else QACCEL=(-accel tcg,thread=multi -cpu max); fi
GUEST_ENV=${GUEST_ENV:-}
if [ $# -eq 0 ]; then set -- .venv/bin/python -m pytest -q -p no:cacheprovider; fi

command -v qemu-system-x86_64 >/dev/null || { echo "need: apt-get install --no-install-recommends qemu-system-x86" >&2; exit 2; }
case "$(ldd /bin/busybox 2>&1 || true)" in *'not a dynamic'*) ;; *) echo "need: apt-get install busybox-static" >&2; exit 2;; esac

mkdir -p "$WORK" "$OUT"
# 1. Kernel: download and extract once.
if [ -z "${KPKG:-}" ]; then
  KPKG=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' | awk '{print $1}' | sort -V | tail -1)
fi
KDIR=$WORK/$KPKG
if [ ! -d "$KDIR/boot" ]; then
  if [ -n "${KURL:-}" ]; then
    (cd "$WORK" && rm -f "$KPKG"_*.deb && curl -fsSL --retry 3 -o "${KPKG}_download.deb" "$KURL")
  else
    (cd "$WORK" && rm -f "$KPKG"_*.deb && apt-get download -q "$KPKG" >/dev/null 2>&1)
  fi
  rm -rf "$KDIR.tmp" && mkdir -p "$KDIR.tmp" && dpkg-deb -x "$WORK/$KPKG"_*.deb "$KDIR.tmp" && mv "$KDIR.tmp" "$KDIR"
  rm -f "$WORK/$KPKG"_*.deb
fi
VMLINUZ=$(ls "$KDIR"/boot/vmlinuz-*)
KVER=${VMLINUZ##*/vmlinuz-}
MODDIR=$KDIR/lib/modules/$KVER/kernel
[ -d "$MODDIR" ] || MODDIR=$KDIR/usr/lib/modules/$KVER/kernel  # merged /usr (Debian 13)

# 2. Initramfs: static busybox, the virtio/9p modules, /init.
INITRD=$WORK/initrd-$KVER.cpio.gz
if [ ! -s "$INITRD" ] || [ "$0" -nt "$INITRD" ]; then
  R=$(mktemp -d)
  mkdir -p "$R"/{bin,dev,proc,sys,mod,newroot}
  cp /bin/busybox "$R/bin/busybox"
  for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
           drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/9p/9pnet net/9p/9pnet_virtio \
           fs/netfs/netfs fs/fscache/fscache fs/9p/9p; do
    n=${m##*/}
    if [ -f "$MODDIR/$m.ko" ]; then cp "$MODDIR/$m.ko" "$R/mod/"
    elif [ -f "$MODDIR/$m.ko.xz" ]; then xz -dc "$MODDIR/$m.ko.xz" > "$R/mod/$n.ko"
    elif [ -f "$MODDIR/$m.ko.zst" ]; then zstd -qdc "$MODDIR/$m.ko.zst" > "$R/mod/$n.ko"
    fi  # absent: built in, or merged into another module (fscache is part of netfs on newer kernels)
  done
  cat > "$R/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p; do
  [ -f /mod/$m.ko ] && { insmod /mod/$m.ko || echo "k61: insmod $m failed"; }
done
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -1; }
PROJ=$(arg k61.proj)
O9="trans=virtio,version=9p2000.L,msize=262144"
N=/newroot
mount -t 9p -o "$O9,ro,cache=loose" hostroot $N || { echo "k61: cannot mount hostroot"; poweroff -f; }
mount -t tmpfs -o mode=1777 tmpfs $N/tmp
mount -t tmpfs tmpfs $N/run
mount -t tmpfs -o mode=1777 tmpfs $N/var/tmp
mkdir -p $N$PROJ $N/run/k61out
mount -t 9p -o "$O9,cache=loose" proj $N$PROJ || echo "k61: cannot mount proj"
mount -t 9p -o "$O9" out $N/run/k61out || echo "k61: cannot mount out"
mount -t proc proc $N/proc
mount -t sysfs sys $N/sys
mount -t devtmpfs dev $N/dev
mkdir -p $N/dev/shm $N/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $N/dev/shm
mount -t devpts devpts $N/dev/pts
mount -t bpf bpf $N/sys/fs/bpf
mount -t tracefs tracefs $N/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $N/sys/kernel/debug 2>/dev/null
mount -t cgroup2 cgroup2 $N/sys/fs/cgroup 2>/dev/null
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null
echo "k61: guest up at $(cut -d' ' -f1 /proc/uptime)s: $(uname -r)"
START=$(cut -d' ' -f1 /proc/uptime)
{
  chroot $N /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    TERM=dumb LANG=C.UTF-8 XDG_CACHE_HOME=/tmp/.cache TMPDIR=/tmp K61_PROJ=$PROJ \
    /bin/bash -c 'cd "$K61_PROJ" && set -a && . /run/k61out/env && set +a && exec /bin/bash /run/k61out/cmd.sh'
  echo $? > $N/run/k61out/rc
} > $N/run/k61out/guest.log 2>&1  # not through the emulated UART: the host tails this file instead
END=$(cut -d' ' -f1 /proc/uptime)
echo "k61: command exited $(cat $N/run/k61out/rc) after $START..$END s guest uptime"
sync
umount $N/run/k61out 2>/dev/null
poweroff -f
EOF
  chmod +x "$R/init"
  (cd "$R" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
  rm -rf "$R"
fi

# 3. The command, its environment, and the run.
rm -f "$OUT/rc" "$OUT/console.log"
printf '%q ' "$@" > "$OUT/cmd.sh"; echo >> "$OUT/cmd.sh"
: > "$OUT/env"; for kv in $GUEST_ENV; do printf '%s\n' "$kv" >> "$OUT/env"; done

T0=$(date +%s)
: > "$OUT/guest.log"
tail -n +1 -F "$OUT/guest.log" 2>/dev/null &
TAIL=$!
set +e
timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
  "${QACCEL[@]}" -smp "$SMP" -m "$MEM" -nographic -no-reboot -monitor none -serial stdio -nic none \
  -kernel "$VMLINUZ" -initrd "$INITRD" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 k61.proj=$PROJ" \
  -fsdev local,id=r,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=r,mount_tag=hostroot \
  -fsdev local,id=p,path="$PROJ",security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=p,mount_tag=proj \
  -fsdev local,id=o,path="$(readlink -f "$OUT")",security_model=none \
  -device virtio-9p-pci,fsdev=o,mount_tag=out \
  < /dev/null 2>&1 | tee "$OUT/console.log"
QRC=${PIPESTATUS[0]}
sleep 1; kill "$TAIL" 2>/dev/null; wait "$TAIL" 2>/dev/null
set -e
echo "k61: wall $(( $(date +%s) - T0 )) s, qemu exit $QRC" | tee -a "$OUT/console.log"
[ "$QRC" = 124 ] && exit 124
[ -s "$OUT/rc" ] || exit 125
exit "$(cat "$OUT/rc")"
