#!/usr/bin/env bash
# build-guest.sh - build the Linux 5.10 guest kernel with the virtio_tmem
# driver.
#
# The source is Debian's linux-source-5.10 (bullseye); our driver, the batch
# codec and the protocol header are copied into drivers/virtio/ and
# guest/patches/ applied.  Builds are out of tree (O=) under $VTMEM_CACHE
# (default ~/.cache/virtio-tmem), one directory per variant, with ccache;
# a stamp of the inputs' hash makes an unchanged build free.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/build-guest.sh [--help] [--variant release|debug] [--module-only]
                              [--w1] [--print-dir]

Builds bzImage and virtio_tmem.ko (x86_64: tinyconfig + kvm_guest.config +
guest/configs/virtio-tmem.config; the debug variant adds
guest/configs/debug.config: lockdep, DEBUG_ATOMIC_SLEEP, DEBUG_VM, KASAN).
  --module-only  rebuild only drivers/virtio/virtio_tmem.ko
  --w1           build the driver with W=1 and fail on any warning
  --print-dir    print the build directory and exit
Outputs: $VTMEM_CACHE/linux-5.10/build-VARIANT/{arch/x86/boot/bzImage,
drivers/virtio/virtio_tmem.ko}
USAGE
}

variant=release
module_only=0
w1=0
print_dir=0
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help) usage; exit 0 ;;
	--variant)
		[ $# -ge 2 ] || { echo "build-guest.sh: --variant needs a value" >&2; exit 2; }
		variant=$2; shift ;;
	--module-only) module_only=1 ;;
	--w1) w1=1 ;;
	--print-dir) print_dir=1 ;;
	*) echo "build-guest.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
case "$variant" in
release|debug) ;;
*) echo "build-guest.sh: --variant '$variant': must be release or debug" >&2; exit 2 ;;
esac

prog=build-guest
. "$(dirname "$0")/lib.sh"
kdir=$cache/linux-5.10
src=$kdir/src
build=$kdir/build-$variant
jobs=${JOBS:-$(nproc)}
if [ $print_dir = 1 ]; then
	echo "$build"
	exit 0
fi
kmake() {
	make -C "$src" O="$build" ARCH=x86_64 CC="ccache gcc" HOSTCC="ccache gcc" \
		KBUILD_BUILD_TIMESTAMP="virtio-tmem" KBUILD_BUILD_USER=vtmem \
		KBUILD_BUILD_HOST=vtmem -j "$jobs" "$@"
}

"$top/scripts/install-deps.sh" build guest

# One build per tree at a time: e2e scenarios running side by side each
# make sure the kernel is current.
lock_or_wait "$kdir/.lock-$variant"

prepare_source() {
	local tarball=/usr/src/linux-source-5.10.tar.xz phash
	[ -f "$tarball" ] || die "$tarball missing (package linux-source-5.10)"
	phash=$( (cat "$top"/guest/patches/*.patch; dpkg-query -W -f='${Version}' linux-source-5.10) |
		sha256sum | cut -d' ' -f1)
	if [ "$(cat "$src/.vtmem-patches" 2>/dev/null)" = "$phash" ]; then
		return
	fi
	log "extracting $tarball and applying guest/patches"
	rm -rf "$src.new"
	mkdir -p "$src.new"
	tar -xJf "$tarball" -C "$src.new" --strip-components=1
	for p in "$top"/guest/patches/*.patch; do
		patch -d "$src.new" -p1 --quiet --forward < "$p" ||
			die "$p does not apply to linux-source-5.10"
	done
	if [ -d "$src" ]; then
		# Only files whose contents changed are copied, and they get
		# the time of the copy (--no-times), never the tarball's: a
		# file going back to its pristine contents when a patch is
		# dropped is older than its object, and make would keep the
		# object built from the patched source.
		rsync -a --no-times --checksum --delete "$src.new/" "$src/"
		rm -rf "$src.new"
	else
		mv "$src.new" "$src"
	fi
	echo "$phash" > "$src/.vtmem-patches"
}


# The module is the driver (virtio_tmem_main.c) linked with the batch
# codec, which the device shares; the headers travel with them.
overlay() {
	copy_if_changed "$top/guest/drivers/virtio/virtio_tmem_main.c" "$src/drivers/virtio/virtio_tmem_main.c"
	rm -f "$src/drivers/virtio/virtio_tmem.c"	# the single-file driver of old
	copy_if_changed "$top/batching/vtmem_codec.c" "$src/drivers/virtio/vtmem_codec.c"
	copy_if_changed "$top/batching/vtmem_codec.h" "$src/drivers/virtio/vtmem_codec.h"
	copy_if_changed "$top/batching/virtio_tmem.h" "$src/drivers/virtio/virtio_tmem.h"
}

configure() {
	local frags=("$src/kernel/configs/kvm_guest.config" "$top/guest/configs/virtio-tmem.config")
	[ "$variant" = debug ] && frags+=("$top/guest/configs/debug.config")
	local want
	want=$(cat "${frags[@]}" | sha256sum | cut -d' ' -f1)
	if [ -f "$build/.config" ] && [ "$(cat "$build/.vtmem-config" 2>/dev/null)" = "$want" ]; then
		return
	fi
	log "configuring ($variant): tinyconfig + ${frags[*]##*/}"
	mkdir -p "$build"
	kmake tinyconfig >/dev/null
	(cd "$build" && "$src/scripts/kconfig/merge_config.sh" -m -O "$build" \
		"$build/.config" "${frags[@]}" >/dev/null)
	kmake olddefconfig >/dev/null
	local opt
	for opt in CONFIG_64BIT=y CONFIG_CLEANCACHE=y CONFIG_FRONTSWAP=y CONFIG_SWAP=y \
		   CONFIG_VIRTIO_PCI=y CONFIG_VIRTIO_BLK=y CONFIG_EXT4_FS=y \
		   CONFIG_VIRTIO_TMEM=m CONFIG_MODULE_UNLOAD=y CONFIG_MEMORY_FAILURE=y; do
		grep -qx "$opt" "$build/.config" ||
			die "$build/.config: $opt did not stick (see guest/configs)"
	done
	if [ "$variant" = debug ]; then
		for opt in CONFIG_PROVE_LOCKING=y CONFIG_DEBUG_ATOMIC_SLEEP=y CONFIG_KASAN=y; do
			grep -qx "$opt" "$build/.config" ||
				die "$build/.config: $opt did not stick"
		done
	fi
	echo "$want" > "$build/.vtmem-config"
}

t0=$(date +%s)
prepare_source
overlay
configure
if [ $module_only = 0 ]; then
	log "building bzImage and modules ($variant, $jobs jobs)"
	kmake bzImage modules 2>&1 | awk '/^  (CC|LD|AR)/ { n++; if (n % 300 == 0) { print "build-guest: " n " objects"; fflush() } next } { print }'
	[ "${PIPESTATUS[0]}" -eq 0 ] || die "kernel build failed in $build"
fi
if [ $w1 = 1 ]; then
	rm -f "$build"/drivers/virtio/{virtio_tmem,virtio_tmem_main,vtmem_codec}.o
	out=$(kmake W=1 drivers/virtio/virtio_tmem.ko 2>&1) || { echo "$out"; die "driver build failed"; }
	if grep -E "warning:" <<<"$out"; then
		die "virtio_tmem.ko: warnings with W=1"
	fi
	log "virtio_tmem.ko builds with W=1 without warnings"
else
	kmake drivers/virtio/virtio_tmem.ko >/dev/null
fi
log "done in $(( $(date +%s) - t0 ))s: $build"
