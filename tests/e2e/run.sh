#!/usr/bin/env bash
# run.sh - end-to-end scenarios: the real guest kernel with the real driver
# against the real device (TCG), via scripts/tmem-run.
#
# Usage: tests/e2e/run.sh [--help] [SCENARIO...]
# Scenarios: frontswap cleancache pool-full toggles (default: all).  Each
# checks the guest's own counters and the device's statistics; the output
# ends with 'e2e: N passed, M failed'.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
run=$top/scripts/tmem-run
out=${E2E_OUT:-$(mktemp -d /tmp/vtmem-e2e.XXXXXX)}
mkdir -p "$out"
pass=0
fail=0

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

ok() { pass=$((pass + 1)); echo "ok - $1"; }
nok() { fail=$((fail + 1)); echo "not ok - $1"; }
check() { # description, condition (shell expression)
	if eval "$2"; then ok "$1"; else nok "$1 [$2]"; fi
}
jget() { # file, python expression over s (the stats dict)
	python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($2)" "$1"
}
gval() { # log, key: value printed by the guest as 'KEY=value'
	grep -a -m1 "^$2=" "$1" | cut -d= -f2 | tr -d '\r'
}

# 1 and 4: swap 2x RAM of verified data through virtio-tmem, in batches.
scenario_frontswap() {
	local log=$out/frontswap.log js=$out/frontswap.json t0=$SECONDS
	"$run" --mem 256M --pool-size 512M --swap 1G --stats-json "$js" -- '
		memhog --mib 512 --verify-passes 2; rc=$?
		echo MEMHOG_RC=$rc
		echo SUCC_STORES=$(cat /sys/kernel/debug/frontswap/succ_stores)
		echo FAILED_STORES=$(cat /sys/kernel/debug/frontswap/failed_stores)
		echo PSWPOUT=$(grep pswpout /proc/vmstat | cut -d" " -f2)
		echo LOST=$(cat /sys/kernel/debug/virtio_tmem/lost_pages)
		exit $rc' > "$log" 2>&1
	local rc=$?
	echo "# frontswap: $((SECONDS - t0))s"
	check "frontswap: guest command exit 0" "[ $rc -eq 0 ]"
	check "frontswap: memhog verified 0 bad pages" "[ '$(gval "$log" MEMHOG_RC)' = 0 ]"
	local succ fail_st
	succ=$(gval "$log" SUCC_STORES)
	fail_st=$(gval "$log" FAILED_STORES)
	check "frontswap: most swap-outs went to virtio-tmem ($succ stored, $fail_st to disk)" \
		"[ ${succ:-0} -gt 0 ] && [ ${succ:-0} -ge $(( 9 * (${succ:-0} + ${fail_st:-0}) / 10 )) ]"
	check "frontswap: no acknowledged page lost" "[ '$(gval "$log" LOST)' = 0 ]"
	[ -f "$js" ] || { nok "frontswap: device statistics"; return; }
	check "frontswap: host stored persistent pages" \
		"[ $(jget "$js" "s['persistent']['puts']") -gt 0 ]"
	local opn
	opn=$(jget "$js" "round(s['ops'] / max(s['notifications'], 1), 1)")
	echo "# frontswap: $opn ops per notification"
	check "batching: >= 32 ops per notification ($opn)" \
		"python3 -c 'import sys; sys.exit(0 if $opn >= 32 else 1)'"
}

# 3: read a file set larger than RAM twice; the second pass hits cleancache.
scenario_cleancache() {
	local log=$out/cleancache.log js=$out/cleancache.json t0=$SECONDS
	"$run" --mem 256M --pool-size 512M --swap 0 --data-disk 1G --stats-json "$js" -- '
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data || exit 1
		for i in $(seq 1 48); do
			yes "virtio-tmem cleancache line $i of a file set larger than guest RAM" |
				head -c 8M > /data/f$i
		done
		sync; echo 3 > /proc/sys/vm/drop_caches
		rd() { awk "\$3 == \"vdd\" { print \$6 }" /proc/diskstats; }
		a=$(rd); cat /data/f* > /dev/null; b=$(rd); cat /data/f* > /dev/null; c=$(rd)
		echo PASS1=$((b - a)); echo PASS2=$((c - b))
		echo HITS=$(cat /sys/kernel/debug/virtio_tmem/hits)
		for i in $(seq 1 48); do cat /data/f$i; done | md5sum
		for i in $(seq 1 48); do
			yes "virtio-tmem cleancache line $i of a file set larger than guest RAM" |
				head -c 8M; done | md5sum' > "$log" 2>&1
	local rc=$?
	echo "# cleancache: $((SECONDS - t0))s"
	check "cleancache: guest command exit 0" "[ $rc -eq 0 ]"
	local p1 p2
	p1=$(gval "$log" PASS1)
	p2=$(gval "$log" PASS2)
	check "cleancache: second pass read fewer sectors ($p2 < $p1)" \
		"[ ${p2:-1} -lt ${p1:-0} ]"
	local hits; hits=$(gval "$log" HITS)
	check "cleancache: guest saw hits ($hits)" "[ ${hits:-0} -gt 0 ]"
	local sums
	sums=$(grep -aE '^[0-9a-f]{32}  -' "$log" | cut -c1-32 | sort -u | wc -l)
	check "cleancache: data read back intact" "[ $sums -eq 1 ]"
	[ -f "$js" ] && check "cleancache: host counted hits" \
		"[ $(jget "$js" "s['ephemeral']['hits']") -gt 0 ]"
}

for a in "$@"; do
	case "$a" in -h|--help) usage; exit 0 ;; esac
done
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(frontswap cleancache)
for s in "${scenarios[@]}"; do
	if ! declare -F "scenario_$s" >/dev/null; then
		echo "run.sh: unknown scenario '$s' (see --help)" >&2
		exit 2
	fi
	"scenario_$s"
done
echo "# logs in $out"
echo "e2e: $pass passed, $fail failed"
[ $fail -eq 0 ]
