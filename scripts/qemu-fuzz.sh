#!/usr/bin/env bash
# qemu-fuzz.sh - a bounded run of QEMU's virtio-tmem fuzz targets.
#
# Runs qemu-fuzz-x86_64 (scripts/build-qemu.sh --variant fuzz: clang,
# libFuzzer, ASan, UBSan) for a fixed time: first every saved reproducer
# once (tests/qemu-fuzz/repro/: inputs that found a bug must stay fixed),
# then the virtio-tmem-fuzz target from the seeds of tests/qemu-fuzz/seeds.py,
# then (if asked) virtio-tmem-iothread-fuzz from the same seeds, then QEMU's
# generic-fuzz with the virtio-tmem config.  Prints executions, exec/s and
# coverage (libFuzzer's cov/ft) of each run, and ends with
# 'qemu-fuzz: N passed, N failed'.  A crash keeps its input and log.
set -uo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/qemu-fuzz.sh [--help] [--seconds N] [--generic-seconds N]
                            [--iothread-seconds N] [--keep DIR]
                            [--reproduce FILE]

  --seconds N          time for virtio-tmem-fuzz (default 120)
  --generic-seconds N  time for generic-fuzz-virtio-tmem (default N/4;
                       0 skips it)
  --iothread-seconds N time for virtio-tmem-iothread-fuzz, the queues
                       served by an IOThread (default 0: skipped)
  --keep DIR           keep the corpus and logs in DIR (default: a
                       temporary directory, removed unless a run failed)
  --reproduce FILE     run FILE once and exit with its status (with
                       virtio-tmem-iothread-fuzz if its name starts
                       with 'iothread-', else virtio-tmem-fuzz)
Environment: VTMEM_CACHE (where build-qemu.sh built the fuzz variant).
USAGE
}

secs=120
gsecs=
isecs=0
keep=
repro=
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help) usage; exit 0 ;;
	--seconds) secs=${2:-}; shift ;;
	--generic-seconds) gsecs=${2:-}; shift ;;
	--iothread-seconds) isecs=${2:-}; shift ;;
	--keep) keep=${2:-}; shift ;;
	--reproduce) repro=${2:-}; shift ;;
	*) echo "qemu-fuzz.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "qemu-fuzz.sh: --seconds needs a number" >&2; exit 2; }
: "${gsecs:=$((secs / 4))}"
[[ "$gsecs" =~ ^[0-9]+$ ]] || { echo "qemu-fuzz.sh: --generic-seconds needs a number" >&2; exit 2; }
[[ "$isecs" =~ ^[0-9]+$ ]] || { echo "qemu-fuzz.sh: --iothread-seconds needs a number" >&2; exit 2; }

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${VTMEM_CACHE:-$HOME/.cache/virtio-tmem}
build=$cache/qemu-10.0.2/build-fuzz
fuzzer=$build/qemu-fuzz-x86_64
[ -x "$fuzzer" ] ||
	{ echo "qemu-fuzz.sh: $fuzzer missing; run scripts/build-qemu.sh --variant fuzz" >&2; exit 1; }
# QEMU finds its firmware next to the binary (build-qemu.sh links it).
cd "$build" || exit 1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# The target a reproducer is for, from its name.
target_of() { # file
	case "$(basename "$1")" in
	iothread-*) echo virtio-tmem-iothread-fuzz ;;
	*) echo virtio-tmem-fuzz ;;
	esac
}

if [ -n "$repro" ]; then
	f=$(realpath "$repro" 2>/dev/null) || f=$(realpath "$top/$repro") ||
		{ echo "qemu-fuzz.sh: $repro: no such file" >&2; exit 2; }
	exec "$fuzzer" --fuzz-target="$(target_of "$f")" -timeout=60 "$f"
fi

work=${keep:-$(mktemp -d "${TMPDIR:-/tmp}/vtmem-qemu-fuzz.XXXXXX")}
mkdir -p "$work/corpus" "$work/seeds" "$work/generic"
python3 "$top/tests/qemu-fuzz/seeds.py" "$work/seeds" || exit 1
pass=0 fail=0

# libFuzzer's last status line and final stats, in one line.
summary() { # log
	local last execs rate
	last=$(grep -E '^#[0-9]+' "$1" | tail -1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$1")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$1")
	echo "execs ${execs:-?}, ${rate:-?} exec/s, $(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$last" | tail -1)"
}

result() { # name, exit status, log
	if [ "$2" -eq 0 ]; then
		pass=$((pass + 1))
		if grep -q '^stat::' "$3"; then
			echo "ok - $1: $(summary "$3")"
		else
			echo "ok - $1"
		fi
	else
		fail=$((fail + 1))
		echo "not ok - $1 (exit $2)"
		[ "$2" -eq 124 ] && echo "#   still running past its time limit: a hang (see the log's last lines)"
		grep -E 'ERROR|SUMMARY|runtime error|Assertion|ERROR:|^    #[0-9]' "$3" | head -30 | sed 's/^/#   /'
		echo "#   inputs and log kept in $work"
	fi
}

# libFuzzer's own -timeout is a SIGALRM, which QEMU's threads block: a
# deadlocked input (a thread waiting for the BQL that another holds while it
# waits for the first) would hang the run for ever.  A hard limit per run
# makes it a failure with the log kept.
bounded() { # seconds, command...
	local t=$1
	shift
	timeout -k 10 "$((t + 120))" "$@"
}

# Each saved reproducer once.
for f in "$top"/tests/qemu-fuzz/repro/*; do
	[ -f "$f" ] || continue
	case "$f" in *.md) continue ;; esac
	log=$work/repro-$(basename "$f").log
	bounded 60 "$fuzzer" --fuzz-target="$(target_of "$f")" -timeout=60 "$f" >"$log" 2>&1
	result "reproducer $(basename "$f")" $? "$log"
done

if [ "$secs" -gt 0 ]; then
	log=$work/virtio-tmem-fuzz.log
	bounded "$secs" "$fuzzer" --fuzz-target=virtio-tmem-fuzz -max_total_time="$secs" \
		-print_final_stats=1 -timeout=60 -max_len=8192 \
		-artifact_prefix="$work/" "$work/corpus" "$work/seeds" >"$log" 2>&1
	result "virtio-tmem-fuzz ${secs}s" $? "$log"
fi

if [ "$isecs" -gt 0 ]; then
	log=$work/virtio-tmem-iothread-fuzz.log
	mkdir -p "$work/corpus-iothread"
	bounded "$isecs" "$fuzzer" --fuzz-target=virtio-tmem-iothread-fuzz -max_total_time="$isecs" \
		-print_final_stats=1 -timeout=60 -max_len=8192 \
		-artifact_prefix="$work/iothread-" "$work/corpus-iothread" \
		"$work/seeds" >"$log" 2>&1
	result "virtio-tmem-iothread-fuzz ${isecs}s" $? "$log"
fi

if [ "$gsecs" -gt 0 ]; then
	log=$work/generic-fuzz.log
	bounded "$gsecs" "$fuzzer" --fuzz-target=generic-fuzz-virtio-tmem -max_total_time="$gsecs" \
		-print_final_stats=1 -timeout=60 \
		-artifact_prefix="$work/generic-" "$work/generic" >"$log" 2>&1
	result "generic-fuzz-virtio-tmem ${gsecs}s" $? "$log"
fi

echo "qemu-fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ -z "$keep" ] && rm -rf "$work"
[ $fail -eq 0 ]
