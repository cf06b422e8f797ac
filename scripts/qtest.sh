#!/usr/bin/env bash
# qtest.sh - run the virtio-tmem qos tests against a built QEMU.
# Usage: scripts/qtest.sh [--help] [--variant release|fuzz|asan] [--only NAME,...]
# Prints TAP lines and a summary; exits non-zero if any test failed.
# (asan is the fuzz build: clang, ASan, UBSan; see build-qemu.sh.)
# --only runs just the tests of those names (the last part of the path).
set -uo pipefail

variant=release
only=
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help)
		sed -n '2,6p' "$0" | sed 's/^# //'
		exit 0 ;;
	--variant) variant=${2:-}; shift ;;
	--only) only=${2:-}; shift ;;
	*) echo "qtest.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
case "$variant" in
release|fuzz) ;;
asan) variant=fuzz ;;
*) echo "qtest.sh: --variant '$variant': must be release, fuzz or asan" >&2; exit 2 ;;
esac
cache=${VTMEM_CACHE:-$HOME/.cache/virtio-tmem}
build=$cache/qemu-10.0.2/build-$variant
[ -x "$build/tests/qtest/qos-test" ] ||
	{ echo "qtest.sh: $build/tests/qtest/qos-test missing; run scripts/build-qemu.sh --variant $variant --tests" >&2; exit 1; }
cd "$build"
export QTEST_QEMU_BINARY=./qemu-system-x86_64
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# Leaks are checked in QEMU, not in the test harness: qos-test's walk_path()
# hands each test path to GLib without a destroy function, GLib frees its
# test cases at exit, and LeakSanitizer then reports the paths.  The stacks
# stop in GLib (no frame pointers), so the pattern is the harness's module
# name, which no frame of a QEMU process has.
supp=$(mktemp)
trap 'rm -f "$supp"' EXIT
echo "leak:qos-test" > "$supp"
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$supp:print_suppressions=0}
mapfile -t paths < <(./tests/qtest/qos-test -l 2>/dev/null |
	grep '/virtio-tmem-pci/' | grep -v '^#')
[ ${#paths[@]} -gt 0 ] || { echo "qtest.sh: no virtio-tmem tests listed" >&2; exit 1; }
if [ -n "$only" ]; then
	want=()
	for name in ${only//,/ }; do
		n=${#want[@]}
		for p in "${paths[@]}"; do
			[ "${p##*/}" = "$name" ] && want+=("$p")
		done
		[ ${#want[@]} -gt "$n" ] ||
			{ echo "qtest.sh: --only: no test named '$name'" >&2; exit 2; }
	done
	paths=("${want[@]}")
fi
pass=0 fail=0
for p in "${paths[@]}"; do
	out=$(timeout 600 ./tests/qtest/qos-test --tap -k -p "$p" 2>&1)
	if [ $? -eq 0 ] && grep -q "^ok " <<<"$out"; then
		pass=$((pass + 1))
		echo "ok - $variant $p$(grep -o ' # SKIP.*' <<<"$out" | head -1)"
	else
		fail=$((fail + 1))
		echo "not ok - $variant $p"
		grep -vE '^# (Start|End)|starting QEMU' <<<"$out" | tail -20 | sed 's/^/#   /'
	fi
done
echo "qtest ($variant): $pass passed, $fail failed"
[ $fail -eq 0 ]
