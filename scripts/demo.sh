#!/usr/bin/env bash
# demo.sh - the main job: build QEMU with virtio-tmem, the Linux 5.10 guest
# with the virtio_tmem driver and its root file system, boot the guest
# under TCG, give it more work than its RAM holds, and show what
# virtio-tmem saved.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/demo.sh [--help] [--accel tcg|kvm] [--mem SIZE] [--pool-size SIZE]

Builds everything that is not cached yet (~/.cache/virtio-tmem; a cold
build takes about 15 minutes on 2 cores), then boots a guest with 256M of
RAM and a 256M virtio-tmem pool that
  - swaps 384 MiB of verified, compressible data (frontswap -> host pool),
  - reads a 320 MiB file set twice (the second pass from cleancache),
and prints the guest's view and the device's statistics: pages stored,
compression, host memory used, cleancache hits, ops per notification.
USAGE
}

accel=tcg mem=256M pool=256M
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help) usage; exit 0 ;;
	--accel) accel=${2:?--accel needs a value}; shift ;;
	--mem) mem=${2:?--mem needs a value}; shift ;;
	--pool-size) pool=${2:?--pool-size needs a value}; shift ;;
	*) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
stage() {
	local name=$1 t0
	shift
	echo "=== stage $name"
	t0=$(date +%s)
	"$@"
	echo "=== stage $name: $(( $(date +%s) - t0 ))s"
}
stage deps scripts/install-deps.sh build qemu guest
stage qemu scripts/build-qemu.sh
stage kernel scripts/build-guest.sh
stage rootfs scripts/build-rootfs.sh
stage guest scripts/tmem-run --accel "$accel" --mem "$mem" --pool-size "$pool" \
	--swap 1G --data-disk 512M -- '
	echo "--- swapping 384 MiB of verified data through a guest with $(($(grep MemTotal /proc/meminfo | tr -s " " | cut -d" " -f2) / 1024)) MiB"
	memhog --mib 384 --verify-passes 1 --pattern text | tail -1
	echo "frontswap: $(cat /sys/kernel/debug/frontswap/succ_stores) pages stored in virtio-tmem, $(cat /sys/kernel/debug/frontswap/failed_stores) written to the swap disk"
	echo "--- reading a 320 MiB file set twice"
	mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data
	for i in $(seq 1 40); do yes "virtio-tmem demo line $i" | head -c 8M > /data/f$i; done
	sync; echo 3 > /proc/sys/vm/drop_caches
	rd() { awk "\$3 == \"vdd\" { print \$6 }" /proc/diskstats; }
	a=$(rd); cat /data/f* > /dev/null; b=$(rd); cat /data/f* > /dev/null; c=$(rd)
	echo "disk sectors read: first pass $((b - a)), second pass $((c - b))"
	echo "driver: $(cat /sys/kernel/debug/virtio_tmem/hits) cleancache hits, $(cat /sys/kernel/debug/virtio_tmem/batches) batches for $(cat /sys/kernel/debug/virtio_tmem/batch_ops) ops"'
