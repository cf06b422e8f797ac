#!/usr/bin/env bash
# test.sh - build every variant and run every test suite.
#
# Stages (each timed):
#   deps       install the Debian packages (scripts/install-deps.sh)
#   asan       clang + ASan/UBSan: unit tests and bounded libFuzzer runs
#   tsan       clang + TSan: the concurrency tests
#   release    optimised build of the library, tools and benchmark
#   qemu       QEMU with virtio-tmem (scripts/build-qemu.sh), and the qtests
#              that ASan cannot run
#   qemu-fuzz  the same QEMU and all qtests built with clang, --enable-fuzzing,
#              --enable-asan and --enable-ubsan (one build for both jobs)
#   fuzz-run   QEMU's fuzz targets for virtio-tmem, bounded in time
#              (scripts/qemu-fuzz.sh: reproducers, virtio-tmem-fuzz,
#              virtio-tmem-iothread-fuzz, generic-fuzz)
#   guest      the Linux 5.10 guest kernel and driver (W=1, no warnings)
#   style      QEMU's checkpatch on qemu/, Linux's on guest/ (each from the
#              source tree the qemu and guest stages extracted)
#   e2e        end-to-end scenarios in the real guest (tests/e2e/run.sh),
#              three of them again with allocator=zsmalloc
#   e2e-debug  frontswap, toggles, unplug, stall_invalidate, image_corrupt
#              and cleancache_filter with the debug kernel (lockdep,
#              DEBUG_ATOMIC_SLEEP, DEBUG_VM, KASAN): the log must stay clean
#   peer-smoke scripts/peer-bench --smoke: the benchmark harness, every
#              configuration once at the smallest sizes
#   libvirt    the domain XML schema and tool, and a guest started by a real
#              libvirtd (tests/libvirt/run.sh)
# Ends with one line 'N passed, N failed' and exits non-zero on any failure.
set -uo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/test.sh [--help] [--quick]

Builds the project in build/{asan,tsan,release} and runs all tests.
  --quick   shorter fuzzing and model runs (for local iteration)
Environment: FUZZ_SECONDS (default 60), QEMU_FUZZ_SECONDS (default 90),
MODEL_OPS (default 3000000), CONCURRENCY_OPS (default 150000 per thread).
USAGE
}

quick=0
for a in "$@"; do
	case "$a" in
	-h|--help) usage; exit 0 ;;
	--quick) quick=1 ;;
	*) echo "test.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
	esac
done

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ $quick = 1 ]; then
	: "${FUZZ_SECONDS:=10}" "${MODEL_OPS:=300000}" "${CONCURRENCY_OPS:=20000}"
	: "${QEMU_FUZZ_SECONDS:=20}"
else
	: "${FUZZ_SECONDS:=60}" "${MODEL_OPS:=3000000}" "${CONCURRENCY_OPS:=150000}"
	: "${QEMU_FUZZ_SECONDS:=90}"
fi

passed=0
failed=0
failures=()
t_all=$(date +%s)

stage() { # name, command...
	local name=$1 t0 rc
	shift
	echo "=== stage $name"
	t0=$(date +%s)
	"$@"
	rc=$?
	echo "=== stage $name: $(( $(date +%s) - t0 ))s (exit $rc)"
	return $rc
}

# Count a build's meson test results into passed/failed.
count_results() { # builddir
	local log=$1/meson-logs/testlog.json line
	[ -f "$log" ] || return 0
	while IFS= read -r line; do
		case "$line" in
		OK\ *|EXPECTEDFAIL\ *) passed=$((passed + 1)) ;;
		SKIP\ *) ;;
		*) failed=$((failed + 1)); failures+=("$1: ${line#* }") ;;
		esac
	done < <(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    t = json.loads(l)
    print(t["result"], t["name"])' "$log")
}

# A step that is not a meson test but must succeed (a build, a setup).
must() { # label, command...
	local label=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$label")
	fi
}

setup() { # dir, meson args...
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
}

run_suites() { # dir, test env..., -- suites
	local dir=$1
	shift
	meson test -C "$dir" --print-errorlogs --num-processes 2 "$@"
}

asan() {
	CC=clang setup build/asan -Db_sanitize=address,undefined \
		-Db_lundef=false -Dfuzzing=true \
		-Dfuzz_seconds="$FUZZ_SECONDS" &&
	ninja -C build/asan &&
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	TMEM_MODEL_OPS=$MODEL_OPS TMEM_WB_OPS=$((MODEL_OPS / 3)) \
		run_suites build/asan --suite unit \
		--suite fuzz
}

tsan() {
	CC=clang setup build/tsan -Db_sanitize=thread -Db_lundef=false &&
	ninja -C build/tsan tests/test-pool-concurrency \
		tests/test-pool-writeback-tsan tests/test-zspage-tsan \
		tests/test-pool-migrate-tsan tests/test-pool-resize-tsan &&
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	TMEM_CONCURRENCY_OPS=$CONCURRENCY_OPS \
	TMEM_WB_OPS=$((CONCURRENCY_OPS * 4)) \
		run_suites build/tsan --suite concurrency
}

release() {
	setup build/release --buildtype=release -Dwerror=true &&
	ninja -C build/release
}

# A script whose output ends with 'qtest (...): N passed, M failed'.
count_summary() { # label, command...
	local label=$1 out line log
	shift
	log=$(mktemp)
	"$@" 2>&1 | tee "$log"
	out=$(tail -1 "$log")
	rm -f "$log"
	line=$(grep -oE '[0-9]+ passed, [0-9]+ failed' <<<"$out")
	if [ -z "$line" ]; then
		failed=$((failed + 1))
		failures+=("$label: no result")
		return
	fi
	passed=$((passed + ${line%% passed*}))
	local f=${line##*, }
	f=${f%% failed}
	failed=$((failed + f))
	[ "$f" -eq 0 ] || failures+=("$label: $f failed")
}

qemu_stage() { # variant, qtest.sh options...
	local variant=$1
	shift
	scripts/build-qemu.sh --variant "$variant" --tests &&
	count_summary "qtest-$variant" scripts/qtest.sh --variant "$variant" "$@"
}

checkpatch_all() {
	local q=${VTMEM_CACHE:-$HOME/.cache/virtio-tmem}/qemu-10.0.2/src
	local l=${VTMEM_CACHE:-$HOME/.cache/virtio-tmem}/linux-5.10/src
	local f rel p=0 n=0 out
	for f in "$q/scripts/checkpatch.pl" "$l/scripts/checkpatch.pl"; do
		[ -f "$f" ] || { echo "checkpatch: $f missing (the qemu and guest stages extract it)"; echo "checkpatch: 0 passed, 1 failed"; return; }
	done
	for f in $(cd qemu && find hw include tests -name '*.[ch]'); do
		# QEMU's rules depend on where a file lives: check it in place
		n=$((n + 1))
		if out=$(cd "$q" && perl scripts/checkpatch.pl --no-tree -f "$f" 2>&1) &&
		   grep -q "total: 0 errors, 0 warnings" <<<"$out"; then
			p=$((p + 1))
		else
			echo "checkpatch (QEMU): $f"; grep -E "^(ERROR|WARNING)" -A3 <<<"$out"
		fi
	done
	for f in guest/drivers/virtio/*.c; do
		n=$((n + 1))
		if out=$(perl "$l/scripts/checkpatch.pl" --no-tree -f "$f" 2>&1) &&
		   grep -q "total: 0 errors, 0 warnings" <<<"$out"; then
			p=$((p + 1))
		else
			echo "checkpatch (Linux): $f"; grep -E "^(ERROR|WARNING)" -A3 <<<"$out"
		fi
	done
	echo "checkpatch: $p passed, $((n - p)) failed"
}

e2e_stage() { # kernel variant, scenarios...
	local variant=$1
	shift
	scripts/build-guest.sh --variant "$variant" &&
	scripts/build-rootfs.sh &&
	E2E_KERNEL=$variant count_summary "e2e-$variant" tests/e2e/run.sh "$@"
}

must deps stage deps scripts/install-deps.sh build
stage asan asan
count_results build/asan
stage tsan tsan
count_results build/tsan
must release-build stage release release
# Every qtest runs once, in the ASan/UBSan build below; the release build
# (which the guest stages run) only the ones ASan cannot run (their
# g_test_skip() under QEMU_SANITIZE_ADDRESS).
must qemu-build stage qemu qemu_stage release --only reset-failure
# One clang build serves the ASan/UBSan qtests and the fuzz targets.
must qemu-fuzz-build stage qemu-fuzz qemu_stage fuzz
# The IOThread target too, for a third of that time: it is slower per input
# (it waits for the IOThread) and tests the same code but for the races
# between the IOThread and the vCPUs (docs/benchmarks.md, "QEMU fuzz target").
stage fuzz-run count_summary qemu-fuzz \
	scripts/qemu-fuzz.sh --seconds "$QEMU_FUZZ_SECONDS" \
	--iothread-seconds "$((QEMU_FUZZ_SECONDS / 3))"
must guest-w1 stage guest scripts/build-guest.sh --w1
# after the guest stage: Linux's checkpatch.pl comes with the kernel source
stage style count_summary style checkpatch_all
# every scenario, and the one the allocator changes most with the other
# one (writeback@zsmalloc and clients@zsmalloc, 3 minutes, run by hand:
# the cold run's budget)
must e2e-release stage e2e e2e_stage release frontswap clients cleancache \
	cleancache_keys cleancache_filter pool_full writeback toggles smp reboot unplug \
	stall_invalidate stall_get stall_unplug mq_pools image_corrupt \
	migrate_idle migrate_live migrate_image migrate_shared resize \
	frontswap@zsmalloc
# the debug kernel (KASAN, lockdep) runs 3x slower under TCG: the
# scenarios that exercise the most driver paths, the one whose
# invalidations wait in atomic context, and the presence filter's resets
# (a worker that takes the driver's mutexes and waits for the device)
must e2e-debug stage e2e-debug e2e_stage debug frontswap toggles unplug \
	stall_invalidate image_corrupt cleancache_filter
# the peer benchmark's harness: every configuration once at the smallest
# sizes, two at a time; it checks that each ran, verified its data and
# used its mechanism, not how fast (docs/benchmarks.md)
must peer-smoke stage peer-smoke scripts/peer-bench --smoke --out build/peer-smoke
stage libvirt count_summary libvirt tests/libvirt/run.sh

echo "=== total: $(( $(date +%s) - t_all ))s"
for f in "${failures[@]}"; do
	echo "FAILED: $f"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
