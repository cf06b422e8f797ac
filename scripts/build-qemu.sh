#!/usr/bin/env bash
# build-qemu.sh - build qemu-system-x86_64 with the virtio-tmem device.
#
# QEMU 10.0.2 comes from Debian's source package (bookworm-backports); our
# files in qemu/ are copied over it and qemu/patches/ applied.  Everything
# lives outside the clone, under $VTMEM_CACHE (default ~/.cache/virtio-tmem),
# and is rebuilt only when its inputs change: a stamp holds the hash of the
# patches, the overlay and the host pool sources.  ccache makes a rebuild
# after a change to our files take seconds.
set -euo pipefail

QEMU_VERSION=10.0.2
QEMU_DEB_VERSION=1:10.0.2+ds-2+deb13u1~bpo12+1
QEMU_ORIG=qemu_10.0.2+ds.orig.tar.xz
QEMU_ORIG_SHA256=0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1

usage() {
	cat <<'USAGE'
Usage: scripts/build-qemu.sh [--help] [--variant release|fuzz|asan] [--tests]
                             [--print-binary]

Builds qemu-system-x86_64 with -device virtio-tmem-pci under
$VTMEM_CACHE/qemu-10.0.2/build-VARIANT (default variant: release).
  --variant fuzz   clang with --enable-fuzzing --enable-asan --enable-ubsan,
                   the host pool built with ASan/UBSan too: the same
                   qemu-system-x86_64 and qos-test serve the ASan qtests,
                   and qemu-fuzz-x86_64 (libFuzzer) is built beside them
  --variant asan   the same build as fuzz (one sanitizer build, not two)
  --tests          also build the qtest binaries (tests/qtest/qos-test)
  --print-binary   print the path of qemu-system-x86_64 and exit 0 if it
                   is up to date, 1 if it needs a build
Environment: VTMEM_CACHE, JOBS (default: nproc).
USAGE
}

variant=release
want_tests=0
print_only=0
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help) usage; exit 0 ;;
	--variant)
		[ $# -ge 2 ] || { echo "build-qemu.sh: --variant needs a value" >&2; exit 2; }
		variant=$2
		shift ;;
	--tests) want_tests=1 ;;
	--print-binary) print_only=1 ;;
	*) echo "build-qemu.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
case "$variant" in
release|fuzz) ;;
asan) variant=fuzz ;;
*) echo "build-qemu.sh: --variant '$variant': must be release, fuzz or asan" >&2; exit 2 ;;
esac

prog=build-qemu
. "$(dirname "$0")/lib.sh"
jobs=${JOBS:-$(nproc)}
qdir=$cache/qemu-$QEMU_VERSION
src=$qdir/src
build=$qdir/build-$variant
# The sanitized QEMU links a sanitized host pool: a bad access the device
# causes inside the library is reported where it happens.
prefix=$cache/host-pool-prefix
[ "$variant" = release ] || prefix=$cache/host-pool-prefix-$variant
binary=$build/qemu-system-x86_64


# Everything that goes into the binary, hashed.
inputs_hash() {
	(cd "$top" && find qemu batching host-pool meson.build meson_options.txt \
		-type f ! -path '*/tools/*' -print0 | sort -z | xargs -0 sha256sum;
	 echo "$variant $QEMU_DEB_VERSION") | sha256sum | cut -d' ' -f1
}
stamp=$build/.vtmem-stamp
# qos-test has its own stamp: a build without --tests must not make an old
# qos-test look current.
tests_stamp=$build/.vtmem-stamp-tests
hash=$(inputs_hash)
if [ $print_only = 1 ]; then
	echo "$binary"
	[ -x "$binary" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]
	exit
fi
# One build at a time, of any variant: all of them build from the one
# source tree in $src (the patches applied, this worktree's files laid over
# it), which a build from another worktree may re-extract or overlay.
lock_or_wait "$qdir/.lock"
if [ -x "$binary" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ] &&
   { [ $want_tests = 0 ] || [ "$(cat "$tests_stamp" 2>/dev/null)" = "$hash" ]; }; then
	log "up to date: $binary"
	exit 0
fi

"$top/scripts/install-deps.sh" build qemu

fetch_source() {
	mkdir -p "$cache/src"
	if [ -f "$cache/src/$QEMU_ORIG" ] &&
	   echo "$QEMU_ORIG_SHA256  $cache/src/$QEMU_ORIG" | sha256sum -c --quiet 2>/dev/null; then
		return
	fi
	log "fetching $QEMU_ORIG (Debian qemu $QEMU_DEB_VERSION)"
	grep -qsx "deb-src http://deb.debian.org/debian bookworm-backports main" \
		/etc/apt/sources.list.d/vtmem-backports-src.list || {
		echo "deb-src http://deb.debian.org/debian bookworm-backports main" |
			${SUDO:-} tee /etc/apt/sources.list.d/vtmem-backports-src.list >/dev/null
		${SUDO:-} apt-get update -q >/dev/null
	}
	# The .dsc itself may fail to download; the orig tarball is what we need.
	(cd "$cache/src" && apt-get source --download-only -q "qemu=$QEMU_DEB_VERSION" \
		>/dev/null 2>&1) || true
	[ -f "$cache/src/$QEMU_ORIG" ] || die "could not download $QEMU_ORIG"
	echo "$QEMU_ORIG_SHA256  $cache/src/$QEMU_ORIG" | sha256sum -c --quiet ||
		die "$cache/src/$QEMU_ORIG: sha256 mismatch (want $QEMU_ORIG_SHA256)"
}

# A pristine tree with our patches applied; re-extracted when they change.
prepare_tree() {
	local phash
	phash=$(cat "$top"/qemu/patches/*.patch | sha256sum | cut -d' ' -f1)
	if [ "$(cat "$src/.vtmem-patches" 2>/dev/null)" = "$phash" ]; then
		return
	fi
	log "extracting QEMU $QEMU_VERSION (without roms/) and applying qemu/patches"
	rm -rf "$src.new"
	mkdir -p "$src.new"
	tar -xJf "$cache/src/$QEMU_ORIG" -C "$src.new" --strip-components=1 \
		--no-same-owner --exclude="qemu-$QEMU_VERSION/roms/*"
	for p in "$top"/qemu/patches/*.patch; do
		patch -d "$src.new" -p1 --quiet --forward < "$p" ||
			die "$p does not apply to QEMU $QEMU_VERSION"
	done
	# Keep unchanged files' mtimes: ninja then rebuilds only what changed.
	if [ -d "$src" ]; then
		rsync -a --checksum --delete "$src.new/" "$src/" 2>/dev/null ||
			{ rm -rf "$src"; mv "$src.new" "$src"; }
		rm -rf "$src.new"
	else
		mv "$src.new" "$src"
	fi
	echo "$phash" > "$src/.vtmem-patches"
}


overlay() {
	local f
	(cd "$top/qemu" && find hw include tests -type f 2>/dev/null || true) | while read -r f; do
		copy_if_changed "$top/qemu/$f" "$src/$f"
	done
}

# libtmem-pool and the codec, installed where QEMU's pkg-config finds them.
install_host_pool() {
	local b=$cache/host-pool-build opts=(--buildtype=release)
	if [ "$variant" = fuzz ]; then
		b=$cache/host-pool-build-$variant
		# fuzzer-no-link: the pool's branches count as coverage too.
		# shellcheck disable=SC2054 # the comma belongs to the option
		opts+=(-Db_sanitize=address,undefined -Db_lundef=false
		       -Dc_args=-fsanitize=fuzzer-no-link)
		local -x CC="ccache clang"
	fi
	log "building host-pool for QEMU ($b)"
	if [ -f "$b/build.ninja" ]; then
		meson setup --reconfigure "$b" "$top" "${opts[@]}" \
			--prefix="$prefix" --libdir=lib >/dev/null
	else
		meson setup "$b" "$top" "${opts[@]}" --prefix="$prefix" \
			--libdir=lib >/dev/null
	fi
	ninja -C "$b" >/dev/null
	meson install -C "$b" --quiet >/dev/null
}

configure_qemu() {
	local args=(--target-list=x86_64-softmmu --without-default-features
		--enable-tcg --enable-kvm --disable-docs --disable-download
		--disable-install-blobs --python=/usr/bin/python3
		--prefix=/usr/local)
	if [ "$variant" = fuzz ]; then
		# As QEMU's scripts/oss-fuzz/build.sh: --enable-fuzzing compiles
		# everything with -fsanitize=fuzzer-no-link, so qemu-system and
		# the qtests still build and run as usual.
		args+=(--cc="ccache clang" --cxx="ccache clang++" --enable-fuzzing
		       --enable-asan --enable-ubsan)
	else
		args+=(--cc="ccache gcc")
	fi
	local want="${args[*]}" pc
	# meson caches what pkg-config said of tmem-pool: when the library's
	# own dependencies change (libzstd came), it must look again, or the
	# emulator links without them
	pc=$(sha256sum < "$prefix/lib/pkgconfig/tmem-pool.pc" | cut -d' ' -f1)
	if [ -f "$build/build.ninja" ] && [ "$(cat "$build/.vtmem-configure" 2>/dev/null)" = "$want" ]; then
		[ "$(cat "$build/.vtmem-pc" 2>/dev/null)" = "$pc" ] && return
		log "tmem-pool.pc changed: meson looks its dependencies up again"
		(cd "$build" && PKG_CONFIG_PATH=$prefix/lib/pkgconfig \
			./pyvenv/bin/meson setup --reconfigure --clearcache "$src" . \
			> "$build/reconfigure.log" 2>&1) ||
			{ tail -30 "$build/reconfigure.log"; die "reconfigure failed; see $build/reconfigure.log"; }
		echo "$pc" > "$build/.vtmem-pc"
		return
	fi
	log "configuring QEMU ($variant): ${args[*]}"
	mkdir -p "$build"
	(cd "$build" && PKG_CONFIG_PATH=$prefix/lib/pkgconfig "$src/configure" "${args[@]}" \
		> "$build/configure.log" 2>&1) ||
		{ tail -30 "$build/configure.log"; die "configure failed; see $build/configure.log"; }
	echo "$want" > "$build/.vtmem-configure"
	echo "$pc" > "$build/.vtmem-pc"
}

# Firmware from Debian's seabios, ipxe-qemu and qemu-system-data, where a
# QEMU run from its build directory looks for it.
link_firmware() {
	local d=$build/qemu-bundle/usr/local/share/qemu f
	mkdir -p "$d"
	for f in /usr/share/qemu/* /usr/share/seabios/* /usr/lib/ipxe/qemu/*; do
		[ -e "$f" ] && [ ! -e "$d/$(basename "$f")" ] && ln -s "$f" "$d/"
	done
	true
}

build_qemu() {
	local targets=(qemu-system-x86_64)
	[ $want_tests = 1 ] && targets+=(tests/qtest/qos-test)
	[ "$variant" = fuzz ] && targets+=(qemu-fuzz-x86_64)
	log "building ${targets[*]} ($variant, $jobs jobs; progress below)"
	# Our library changed: make sure the emulator relinks against it.
	rm -f "$binary"
	PKG_CONFIG_PATH=$prefix/lib/pkgconfig ninja -C "$build" -j "$jobs" "${targets[@]}" |
		awk '/^\[[0-9]+\/[0-9]+\]/ { n++; if (n % 200 == 0) { print; fflush() } next } { print }'
	[ "${PIPESTATUS[0]}" -eq 0 ] || die "ninja failed in $build"
}

t0=$(date +%s)
fetch_source
prepare_tree
overlay
install_host_pool
configure_qemu
build_qemu
link_firmware
echo "$hash" > "$stamp"
if [ $want_tests = 1 ]; then echo "$hash" > "$tests_stamp"; else rm -f "$tests_stamp"; fi
log "done in $(( $(date +%s) - t0 ))s: $binary"
