#!/usr/bin/env bash
# demo.sh - the main job: build virtio-tmem and show what it saves.
#
# Until the QEMU device and the guest driver land, this builds the host pool
# and runs its benchmark on this machine's own files: how much memory the
# pool needs for them, and how fast it stores and returns them compared
# with raw LZ4 and memcpy.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/demo.sh [--help] [-- BENCH_OPTIONS...]

Installs the build dependencies, builds build/release and runs
tmem-pool-bench (see 'build/release/host-pool/tmem-pool-bench --help' for
BENCH_OPTIONS, e.g. --corpus PATH --max-pages N).
USAGE
}

bench_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help) usage; exit 0 ;;
	--) shift; bench_args=("$@"); break ;;
	*) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
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
build() {
	if [ -f build/release/build.ninja ]; then
		meson setup --reconfigure build/release --buildtype=release >/dev/null
	else
		meson setup build/release --buildtype=release >/dev/null
	fi
	ninja -C build/release
}
stage deps scripts/install-deps.sh build
stage build build
stage bench build/release/host-pool/tmem-pool-bench "${bench_args[@]}"
