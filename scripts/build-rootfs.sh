#!/usr/bin/env bash
# build-rootfs.sh - the test guest's root file system: Debian bookworm
# (debootstrap --variant=minbase) with stress-ng, memtester and fio, and
# guest/rootfs/vtmem-init as /sbin/vtmem-init, written to an ext4 image with
# 4 KiB blocks (cleancache gets never happen with 1 KiB blocks) by
# mkfs.ext4 -d, without a loop mount.  Cached under $VTMEM_CACHE/rootfs,
# keyed by the package list and the init script.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/build-rootfs.sh [--help] [--print-image]

Builds $VTMEM_CACHE/rootfs/rootfs-HASH.img (1 GiB sparse ext4) unless it
is up to date.  --print-image prints its path.
USAGE
}
print=0
for a in "$@"; do
	case "$a" in
	-h|--help) usage; exit 0 ;;
	--print-image) print=1 ;;
	*) echo "build-rootfs.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
	esac
done

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${VTMEM_CACHE:-$HOME/.cache/virtio-tmem}
packages=stress-ng,memtester,fio,kmod,procps,util-linux,e2fsprogs,mount
key=$( (echo "$packages bookworm"; cat "$top/guest/rootfs/vtmem-init") | sha256sum | cut -c1-16)
img=$cache/rootfs/rootfs-$key.img
if [ $print = 1 ]; then
	echo "$img"
	exit 0
fi
mkdir -p "$cache/rootfs"
exec 9>"$cache/rootfs/.lock"
flock 9
if [ -f "$img" ]; then
	echo "build-rootfs: up to date: $img"
	exit 0
fi
"$top/scripts/install-deps.sh" guest
dir=$cache/rootfs/tree-$key
t0=$(date +%s)
if [ ! -x "$dir/usr/bin/stress-ng" ]; then
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "build-rootfs: debootstrap bookworm (minbase + $packages)"
	debootstrap --variant=minbase --include="$packages" bookworm "$dir" \
		http://deb.debian.org/debian > "$cache/rootfs/debootstrap.log" 2>&1 ||
		{ tail -20 "$cache/rootfs/debootstrap.log"; echo "build-rootfs: debootstrap failed" >&2; exit 1; }
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
fi
install -m 0755 "$top/guest/rootfs/vtmem-init" "$dir/sbin/vtmem-init"
mkdir -p "$dir/job"
rm -f "$img.tmp"
truncate -s 1G "$img.tmp"
mkfs.ext4 -q -F -b 4096 -L vtmem-root -d "$dir" "$img.tmp"
mv "$img.tmp" "$img"
echo "build-rootfs: $img in $(( $(date +%s) - t0 ))s"
