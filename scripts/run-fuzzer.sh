#!/usr/bin/env bash
# run-fuzzer.sh - run one libFuzzer target for a bounded time from fresh seeds.
# Usage: scripts/run-fuzzer.sh FUZZER SEED_TOOL NAME SECONDS
# Exits non-zero (and keeps the crashing input in the work dir) on a crash.
set -euo pipefail
if [ $# -ne 4 ] || [ "$1" = --help ]; then
	echo "usage: $0 FUZZER SEED_TOOL NAME SECONDS" >&2
	exit 2
fi
fuzzer=$1 seeds=$2 name=$3 secs=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/vtmem-fuzz-$name.XXXXXX")
"$seeds" "$name" "$work/seeds"
mkdir -p "$work/corpus"
if "$fuzzer" -max_total_time="$secs" -print_final_stats=1 \
	-artifact_prefix="$work/" "$work/corpus" "$work/seeds" \
	>"$work/log" 2>&1; then
	grep -E "stat::number_of_executed_units|Done" "$work/log" | tail -2
	rm -rf "$work"
	exit 0
fi
tail -40 "$work/log"
echo "fuzz-$name: crash; inputs and log kept in $work" >&2
exit 1
