#!/usr/bin/env bash
# run.sh - end-to-end scenarios: the real guest kernel with the real driver
# against the real device (TCG), via scripts/tmem-run.
#
# Usage: tests/e2e/run.sh [--help] [SCENARIO...]
# Scenarios: frontswap clients cleancache pool_full writeback toggles smp
# reboot unplug stall_invalidate stall_get stall_unplug mq_pools
# image_corrupt cleancache_keys cleancache_filter migrate_idle migrate_live
# migrate_image migrate_shared resize (default: all), in two lanes side by side
# (E2E_JOBS=1: one).  E2E_KERNEL=debug boots the debug kernel; the driver
# must run clean under it.  SCENARIO@A runs a scenario with the device's
# allocator=A (E2E_ALLOCATOR=A: all of them).  Each checks the guest's own
# counters and the device's statistics; the output ends with 'e2e: N
# passed, M failed'.
set -uo pipefail

prog=e2e suite=e2e
. "$(dirname "$0")/../../scripts/lib.sh"
kernel=${E2E_KERNEL:-release}
run() {
	"$top/scripts/tmem-run" --kernel-variant "$kernel" \
		${E2E_ALLOCATOR:+--device-opts "allocator=$E2E_ALLOCATOR"} "$@"
}
out=${E2E_OUT:-$(mktemp -d /tmp/vtmem-e2e.XXXXXX)}
mkdir -p "$out"
# Anything the debug kernel reports about the guest (lockdep, KASAN,
# sleeping in atomic context, VM_BUG, warnings) counts as a failure.
KCHECK='echo KERNEL_ISSUES=$(dmesg | grep -cE "BUG:|WARNING:|KASAN|possible circular|possible recursive|inconsistent lock|sleeping function called|Call Trace")'

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

jget() { # file, python expression over s (the stats dict)
	python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($2)" "$1"
}

# The guest side of a swap workload: memhog, then what the checks read.
swap_cmd() { # MiB [verify passes, default 2]
	echo 'memhog --mib '"$1"' --verify-passes '"${2:-2}"'; rc=$?
		echo MEMHOG_RC=$rc
		echo SUCC_STORES=$(cat /sys/kernel/debug/frontswap/succ_stores)
		echo FAILED_STORES=$(cat /sys/kernel/debug/frontswap/failed_stores)
		echo PSWPOUT=$(grep pswpout /proc/vmstat | cut -d" " -f2)
		[ -d /sys/kernel/debug/virtio_tmem ] &&
		echo NO_CREDIT=$(cat /sys/kernel/debug/virtio_tmem/store_no_credit) &&
		echo LOST=$(cat /sys/kernel/debug/virtio_tmem/lost_pages)
		'"$KCHECK"'
		exit $rc'
}
# What every swap workload must show: it ran, verified, lost nothing.
check_swap_run() { # name, log, guest exit status
	check "$1: guest command exit 0" "[ $3 -eq 0 ]"
	check "$1: memhog verified 0 bad pages" "[ '$(gval "$2" MEMHOG_RC)' = 0 ]"
	check "$1: no acknowledged page lost" "[ '$(gval "$2" LOST)' = 0 ]"
	check "$1: kernel log clean ($kernel kernel)" "[ '$(gval "$2" KERNEL_ISSUES)' = 0 ]"
}
check_most_to_tmem() { # name, log
	local succ fs
	succ=$(gval "$2" SUCC_STORES)
	fs=$(gval "$2" FAILED_STORES)
	check "$1: most swap-outs went to virtio-tmem ($succ stored, $fs to disk)" \
		"[ ${succ:-0} -gt 0 ] && [ ${succ:-0} -ge $(( 9 * (${succ:-0} + ${fs:-0}) / 10 )) ]"
}
# A small pool: credits honoured, limit kept, QEMU's memory bounded.
check_pool_bounds() { # name, stats, stats without the device, pool MiB
	check "$1: the device never refused a credited put" \
		"[ $(jget "$2" "s['persistent']['reject-full']") -eq 0 ]"
	check "$1: the pool stayed within its limit" \
		"[ $(jget "$2" "s['used-bytes']") -le $(jget "$2" "s['limit-bytes']") ]"
	local with without
	with=$(jget "$2" "s['qemu-vmhwm-bytes'] >> 20")
	without=$(jget "$3" "s['qemu-vmhwm-bytes'] >> 20")
	echo "# $1: QEMU peak RSS $with MiB with the device, $without MiB without"
	# the bound of docs/qemu-device.md: pool + slot table and buffers,
	# within 16 MiB
	check "$1: QEMU RSS within the run without the device + pool + 16 MiB" \
		"[ $with -le $((without + $4 + 16)) ]"
}

# 1 and 4: swap 2x RAM of verified data through virtio-tmem, in batches.
scenario_frontswap() {
	local log=$out/frontswap.log js=$out/frontswap.json t0=$SECONDS
	# the debug kernel is 3x slower under TCG: 1.5x RAM, verified once
	local work=(512 2)
	[ "$kernel" = debug ] && work=(384 1)
	run --mem 256M --pool-size 512M --swap 1G --stats-json "$js" -- \
		"$(swap_cmd "${work[@]}")" > "$log" 2>&1
	local rc=$?
	echo "# frontswap: $((SECONDS - t0))s"
	check_swap_run frontswap "$log" $rc
	check_most_to_tmem frontswap "$log"
	[ -f "$js" ] || { nok "frontswap: device statistics"; return; }
	check "frontswap: host stored persistent pages" \
		"[ $(jget "$js" "s['persistent']['puts']") -gt 0 ]"
	local opn
	opn=$(jget "$js" "round(s['ops'] / max(s['notifications'], 1), 1)")
	echo "# frontswap: $opn ops per notification"
	# a threshold on timing: the debug kernel is too slow to fill batches
	# before flush_us, so it is checked on the release kernel only
	[ "$kernel" = release ] &&
	check "batching: >= 32 ops per notification ($opn)" \
		"python3 -c 'import sys; sys.exit(0 if $opn >= 32 else 1)'"
}

# Issue 20's target: at most 1 % of cleancache puts not staged.
check_drops() { # label, puts, drops
	check "$1: puts not staged <= 1 % of puts ($3 of $2)" \
		"[ ${2:-0} -gt 0 ] && [ $(( 100 * ${3:-1} )) -le ${2:-0} ]"
}

# 3: read a file set larger than RAM twice; the second pass hits cleancache.
# Then 'drop_caches 3' (inodes evicted) and a third pass: with
# guest/patches/0004 (cleancache.keep_evicted) the pages outlive their
# inodes and the third pass hits too; with keep_evicted=0 (a kernel without
# the patch) eviction invalidates them and a read after it finds nothing.
# Two batch buffers to start with, so that the streaming passes and the
# drop_caches burst (~50,000 puts at once) need buffers added under load,
# and given back once the queue has been idle (batch_buffers_max).
scenario_cleancache() {
	local log=$out/cleancache.log js=$out/cleancache.json t0=$SECONDS
	run --mem 256M --pool-size 512M --swap 0 --data-disk 1G --stats-json "$js" \
		--module-args batch_buffers=2 -- '
		D=/sys/kernel/debug/virtio_tmem K=/sys/module/cleancache/parameters/keep_evicted
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data || exit 1
		for i in $(seq 1 48); do
			yes "virtio-tmem cleancache line $i of a file set larger than guest RAM" |
				head -c 8M > /data/f$i
		done
		sync; echo 3 > /proc/sys/vm/drop_caches
		rd() { awk "\$3 == \"vdd\" { print \$6 }" /proc/diskstats; }
		p0=$(cat $D/puts)
		a=$(rd); cat /data/f* > /dev/null; b=$(rd); cat /data/f* > /dev/null; c=$(rd)
		echo PASS1=$((b - a)); echo PASS2=$((c - b))
		echo HITS=$(cat $D/hits)
		echo PUTS=$(( $(cat $D/puts) - p0 )); echo DROPS=$(cat $D/put_drops)
		if [ -w $K ]; then
			echo KEEP=1
			# sync: an inode dirtied by the atime update is not evicted
			p=$(cat $D/puts) d=$(cat $D/put_drops)
			sync; echo 3 > /proc/sys/vm/drop_caches
			echo BURST_PUTS=$(( $(cat $D/puts) - p ))
			echo BURST_DROPS=$(( $(cat $D/put_drops) - d ))
			h=$(cat $D/hits); cat /data/f* > /dev/null
			echo PASS3_HITS=$(( $(cat $D/hits) - h ))
			echo 0 > $K; sync; echo 3 > /proc/sys/vm/drop_caches; echo 1 > $K
			h=$(cat $D/hits); cat /data/f1 /data/f2 /data/f3 /data/f4 > /dev/null
			echo NOKEEP_HITS=$(( $(cat $D/hits) - h ))
		fi
		for i in $(seq 1 48); do cat /data/f$i; done | md5sum
		for i in $(seq 1 48); do
			yes "virtio-tmem cleancache line $i of a file set larger than guest RAM" |
				head -c 8M; done | md5sum
		echo GROWN=$(cat $D/buffers_grown); echo HIGH=$(cat $D/buffers_high)
		# the trim worker runs every 10 s and frees what has not run
		# short for 10 s: within 20 s of the last shortage
		for i in $(seq 1 30); do
			[ $(cat $D/buffers_trimmed) = $(cat $D/buffers_grown) ] && break
			sleep 1
		done
		echo TRIMMED=$(cat $D/buffers_trimmed)
		'"$KCHECK"'' > "$log" 2>&1
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
	check_drops cleancache "$(gval "$log" PUTS)" "$(gval "$log" DROPS)"
	if [ "$(gval "$log" KEEP)" = 1 ]; then
		# 98,304 pages (all of them in a quiet run; puts dropped while
		# drop_caches puts 50,000 pages at once cost some on a busy host)
		local h3 h0
		h3=$(gval "$log" PASS3_HITS)
		h0=$(gval "$log" NOKEEP_HITS)
		check "cleancache: after drop_caches 3 the third pass hits ($h3 of 98304 pages)" \
			"[ ${h3:-0} -ge 78643 ]"
		check_drops "cleancache: drop_caches burst" "$(gval "$log" BURST_PUTS)" \
			"$(gval "$log" BURST_DROPS)"
		check "cleancache: keep_evicted=0: eviction invalidated them ($h0 hits of 8192)" \
			"[ ${h0:-1} -le 100 ]"
	else
		echo "# cleancache: the kernel lacks guest/patches/0004: drop_caches 3 not checked"
	fi
	local sums
	sums=$(grep -aE '^[0-9a-f]{32}  -' "$log" | cut -c1-32 | sort -u | wc -l)
	check "cleancache: data read back intact" "[ $sums -eq 1 ]"
	local grown high trimmed
	grown=$(gval "$log" GROWN)
	high=$(gval "$log" HIGH)
	trimmed=$(gval "$log" TRIMMED)
	check "cleancache: buffers were added under load ($grown, at most $high on a queue)" \
		"[ ${grown:-0} -gt 0 ]"
	check "cleancache: every buffer added was given back once idle ($trimmed of $grown)" \
		"[ ${trimmed:--1} -eq ${grown:-0} ]"
	check "cleancache: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
	[ -f "$js" ] && check "cleancache: host counted hits" \
		"[ $(jget "$js" "s['ephemeral']['hits']") -gt 0 ]"
}

# Issue 20: cleancache pages that outlive their inode (guest/patches/0004)
# are never returned for changed data.  Each case gets its pages to the host,
# evicts the inode (drop_caches 3), changes the file, evicts again and reads
# it back verified.  active_only=1: puts of pages that were not active
# are skipped, which must never let the host's old copy come back (a
# buffered overwrite: the kernel invalidates pages it did not read).
scenario_cleancache_keys() {
	local log=$out/cleancache-keys.log t0=$SECONDS
	run --mem 256M --pool-size 128M --swap 0 --data-disk 256M \
		--module-args "active_only=1" -- '
		D=/sys/kernel/debug/virtio_tmem K=/sys/module/cleancache/parameters/keep_evicted
		[ -w $K ] && echo KEEP=$(cat $K)
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data || exit 1
		gen() { yes "$1" | head -c ${2:-4M}; }
		evict() { sync; echo 3 > /proc/sys/vm/drop_caches; echo 3 > /proc/sys/vm/drop_caches; }
		# pages reach the host when pages read from disk leave the page
		# cache (written ones are invalidated); read twice: active
		warm() { evict; cat "$@" > /dev/null; cat "$@" > /dev/null; evict; }
		verify() { # name file want-file
			evict
			if cmp -s "$2" "$3"; then echo "CASE_$1=ok"; else echo "CASE_$1=BAD"; fi
		}
		# control: an unchanged file comes back from the host
		gen control > /data/c; gen control > /tmp/c
		warm /data/c; h=$(cat $D/hits); verify control /data/c /tmp/c
		echo CONTROL_HITS=$(( $(cat $D/hits) - h ))
		# delete and recreate, the inode number reused
		gen v1-deleted > /data/d; ino=$(stat -c %i /data/d); warm /data/d
		rm /data/d; sync
		gen v2-reused > /tmp/d; reused=none
		for i in $(seq 1 64); do
			cp /tmp/d /data/n$i
			[ "$(stat -c %i /data/n$i)" = "$ino" ] && { reused=/data/n$i; break; }
		done
		echo REUSED=$reused
		[ "$reused" != none ] && verify reuse "$reused" /tmp/d
		# rename over
		gen v1-renamed-over > /data/r1; gen v2-renamed > /data/r2; gen v2-renamed > /tmp/r
		warm /data/r1 /data/r2; mv /data/r2 /data/r1; verify rename /data/r1 /tmp/r
		# truncate, then grow with new data
		gen v1-truncated > /data/t; warm /data/t
		truncate -s 1M /data/t; gen v2-appended 3M >> /data/t
		{ gen v1-truncated 1M; gen v2-appended 3M; } > /tmp/t; verify truncate /data/t /tmp/t
		# collapse and insert a range: the data after it moves to other
		# indexes, so every index must lose what the host held for it
		# (numbered lines: no two pages alike)
		seq -f "shifted line %.0f" 1 500000 | head -c 4M > /tmp/x0
		cp /tmp/x0 /data/x; warm /data/x
		fallocate --collapse-range -o 1M -l 1M /data/x
		{ head -c 1M /tmp/x0; tail -c +2097153 /tmp/x0; } > /tmp/x
		verify collapse /data/x /tmp/x
		cp /tmp/x0 /data/y; warm /data/y
		fallocate --insert-range -o 1M -l 1M /data/y
		{ head -c 1M /tmp/x0; head -c 1M /dev/zero; tail -c +1048577 /tmp/x0; } > /tmp/y
		verify insert /data/y /tmp/y
		# O_DIRECT overwrite
		gen v1-direct > /data/o; warm /data/o; gen v2-direct > /tmp/o
		dd if=/tmp/o of=/data/o bs=1M oflag=direct conv=notrunc 2>/dev/null
		verify direct /data/o /tmp/o
		# buffered overwrite of whole pages that are not cached
		gen v1-buffered > /data/b; warm /data/b; gen v2-buffered > /tmp/b
		dd if=/tmp/b of=/data/b bs=1M conv=notrunc 2>/dev/null
		verify buffered /data/b /tmp/b
		# remount (umount: the pool goes) and ro/rw remount, the file
		# changed in between
		gen v1-remount > /data/m; warm /data/m
		umount /data && mount /dev/vdd /data || exit 1
		gen v2-remount > /tmp/m; dd if=/tmp/m of=/data/m bs=1M conv=notrunc 2>/dev/null
		mount -o remount,ro /data && mount -o remount,rw /data || exit 1
		verify remount /data/m /tmp/m
		umount /data && mount /dev/vdd /data || exit 1
		verify remount_again /data/m /tmp/m
		echo PUTS_INACTIVE=$(cat $D/puts_inactive)
		'"$KCHECK"'' > "$log" 2>&1
	local rc=$?
	echo "# cleancache_keys: $((SECONDS - t0))s"
	check "cleancache_keys: guest command exit 0" "[ $rc -eq 0 ]"
	local c
	for c in control rename truncate collapse insert direct buffered remount remount_again; do
		check "cleancache_keys: $c: verified after inode eviction" \
			"[ '$(gval "$log" CASE_$c)' = ok ]"
	done
	check "cleancache_keys: delete + recreate reused the inode number" \
		"[ '$(gval "$log" REUSED)' != none ]"
	check "cleancache_keys: reuse: verified after inode eviction" \
		"[ '$(gval "$log" CASE_reuse)' = ok ]"
	if [ "$(gval "$log" KEEP)" = Y ]; then
		check "cleancache_keys: the control file came back from the host ($(gval "$log" CONTROL_HITS) of 1024)" \
			"[ $(gval "$log" CONTROL_HITS) -ge 1000 ]"
	else
		echo "# cleancache_keys: the kernel lacks guest/patches/0004: no pages kept"
	fi
	check "cleancache_keys: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
}

# The cleancache presence filter: gets of pages the host cannot hold are
# answered in the guest (filter_skips), and a filter far too small for the
# file set (the smallest, 4096 counters) resets every thousand puts or so,
# emptying the host's pools each time.  None of that may bring back old
# data: files of numbered lines are read three times, verified against
# sums computed from their generators, with parts overwritten by
# incompressible data (puts the host refuses) and truncated in between,
# and two batch buffers so that puts are dropped under the eviction bursts.
scenario_cleancache_filter() {
	local log=$out/cleancache-filter.log t0=$SECONDS
	run --mem 128M --pool-size 64M --swap 0 --data-disk 256M \
		--module-args "batch_buffers=2 cleancache_filter_counters=4096" -- '
		D=/sys/kernel/debug/virtio_tmem
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data || exit 1
		N=24
		gen() { seq -f "file $1 line %.0f of the cleancache filter set" 1 200000 | head -c 8M; }
		for i in $(seq 1 $N); do gen $i > /data/f$i; done
		# overwrite 1 MiB at 2 MiB of every fourth file with random data,
		# cut every fifth at 6 MiB and append its own lines again
		for i in $(seq 4 4 $N); do head -c 1M /dev/urandom > /tmp/r$i; done
		want() {
			if [ $((i % 4)) = 0 ]; then
				{ gen $i | head -c 2M; cat /tmp/r$i; gen $i | tail -c +3145729; }
			elif [ $((i % 5)) = 0 ]; then
				{ gen $i | head -c 6M; gen $i | head -c 1M; }
			else
				gen $i
			fi
		}
		check() { # pass
			sync; echo 3 > /proc/sys/vm/drop_caches
			bad=0
			for i in $(seq 1 $N); do
				[ "$(md5sum < /data/f$i)" = "$(cat /tmp/s$i)" ] || bad=$((bad + 1))
			done
			echo "BAD_$1=$bad"
		}
		sync; echo 3 > /proc/sys/vm/drop_caches
		for i in $(seq 1 $N); do gen $i | md5sum > /tmp/s$i; done
		g=$(cat $D/gets); k=$(cat $D/filter_skips)
		check 1
		echo COLD_GETS=$(( $(cat $D/gets) - g )); echo COLD_SKIPS=$(( $(cat $D/filter_skips) - k ))
		for i in $(seq 4 4 $N); do
			dd if=/tmp/r$i of=/data/f$i bs=1M seek=2 conv=notrunc 2>/dev/null
		done
		for i in $(seq 5 5 $N); do
			[ $((i % 4)) = 0 ] && continue
			truncate -s 6M /data/f$i; gen $i | head -c 1M >> /data/f$i
		done
		for i in $(seq 1 $N); do want | md5sum > /tmp/s$i; done
		check 2
		check 3
		echo HITS=$(cat $D/hits); echo SKIPS=$(cat $D/filter_skips)
		echo RESETS=$(cat $D/filter_resets); echo DROPS=$(cat $D/put_drops)
		echo COUNTERS=$(sed -n "s/^queue 0: counters \([0-9]*\).*/\1/p" $D/cleancache_filter)
		dmesg | grep -A20 -E "WARNING:|BUG:" | head -40
		'"$KCHECK"'' > "$log" 2>&1
	local rc=$?
	echo "# cleancache_filter: $((SECONDS - t0))s"
	check "cleancache_filter: guest command exit 0" "[ $rc -eq 0 ]"
	local p
	for p in 1 2 3; do
		check "cleancache_filter: pass $p: all 24 files verified ($(gval "$log" BAD_$p) bad)" \
			"[ '$(gval "$log" BAD_$p)' = 0 ]"
	done
	check "cleancache_filter: the filter has the 4096 counters asked for" \
		"[ '$(gval "$log" COUNTERS)' = 4096 ]"
	local cg cs resets hits
	resets=$(gval "$log" RESETS)
	hits=$(gval "$log" HITS)
	cg=$(gval "$log" COLD_GETS)
	cs=$(gval "$log" COLD_SKIPS)
	check "cleancache_filter: the guest answered most cold gets itself ($cs of $cg)" \
		"[ $(( 2 * ${cs:-0} )) -gt ${cg:-0} ]"
	check "cleancache_filter: it reset, and pages still came back ($resets resets, $hits hits)" \
		"[ ${resets:-0} -ge 5 ] && [ ${hits:-0} -gt 0 ]"
	check "cleancache_filter: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
}

# 6: a pool too small for the workload: credits run out, frontswap stores
# fall back to the guest's swap disk, nothing is lost, and QEMU's memory
# stays within what a run without the device needs plus the pool.
scenario_pool_full() {
	local log=$out/pool-full.log js=$out/pool-full.json t0=$SECONDS
	local base=$out/pool-full-nodev.json
	run --mem 256M --no-device --swap 1G --stats-json "$base" -- "$(swap_cmd 384)" \
		> "$log.nodev" 2>&1
	run --mem 256M --pool-size 16M --swap 1G --stats-json "$js" -- "$(swap_cmd 384)" \
		> "$log" 2>&1
	local rc=$?
	echo "# pool-full: $((SECONDS - t0))s"
	check_swap_run pool-full "$log" $rc
	local nc fs
	nc=$(gval "$log" NO_CREDIT)
	fs=$(gval "$log" FAILED_STORES)
	check "pool-full: stores without credit went to the swap disk ($nc refused, $fs to disk)" \
		"[ ${nc:-0} -gt 0 ] && [ ${fs:-0} -gt 0 ]"
	[ -f "$js" ] && [ -f "$base" ] || { nok "pool-full: statistics"; return; }
	check_pool_bounds pool-full "$js" "$base" 16
}

# 5: frontswap off brings every page back, with data intact; cleancache off
# stops puts; both back on work.  (The held data is small enough to fit
# back in RAM on the debug kernel too, where KASAN takes 1/8 of memory;
# otherwise switching off is refused, as specified.)
scenario_toggles() {
	local log=$out/toggles.log t0=$SECONDS files=40
	[ "$kernel" = debug ] && files=16	# 3x slower: 128 MiB of files
	run --mem 256M --pool-size 512M --swap 1G --data-disk 512M -- '
		N='"$files"'
		P=/sys/module/virtio_tmem/parameters D=/sys/kernel/debug/virtio_tmem
		memhog --mib 64 --verify-passes 1 --ready-file /tmp/a --hold-file /tmp/go &
		A=$!
		while [ ! -f /tmp/a ]; do sleep 0.2; done
		memhog --mib 288 --verify-passes 0 >/dev/null	# push A out to swap
		echo STORED_BEFORE=$(cat $D/frontswap_pages)
		echo 0 > $P/frontswap; echo OFF_RC=$?
		echo STORED_AFTER=$(cat $D/frontswap_pages)
		echo 1 > $P/frontswap; echo ON_RC=$?
		dmesg | grep virtio_tmem | tail -3
		touch /tmp/go; wait $A; echo MEMHOG_RC=$?
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data
		for i in $(seq 1 $N); do yes "toggle $i" | head -c 8M > /data/f$i; done
		sync; echo 0 > $P/cleancache; echo 3 > /proc/sys/vm/drop_caches
		p0=$(cat $D/puts); cat /data/f* > /dev/null; echo 3 > /proc/sys/vm/drop_caches
		echo PUTS_OFF=$(( $(cat $D/puts) - p0 ))
		echo 1 > $P/cleancache
		p0=$(cat $D/puts); cat /data/f* > /dev/null; echo 3 > /proc/sys/vm/drop_caches
		echo PUTS_ON=$(( $(cat $D/puts) - p0 ))
		'"$KCHECK"'' > "$log" 2>&1
	local rc=$?
	echo "# toggles: $((SECONDS - t0))s"
	check "toggles: guest command exit 0" "[ $rc -eq 0 ]"
	local before after
	before=$(gval "$log" STORED_BEFORE)
	after=$(gval "$log" STORED_AFTER)
	check "toggles: pages were in the pool before ($before)" "[ ${before:-0} -gt 0 ]"
	check "toggles: frontswap off succeeded and drained the pool ($after left)" \
		"[ '$(gval "$log" OFF_RC)' = 0 ] && [ '${after:-x}' = 0 ]"
	check "toggles: frontswap back on" "[ '$(gval "$log" ON_RC)' = 0 ]"
	check "toggles: data intact after the drain" "[ '$(gval "$log" MEMHOG_RC)' = 0 ]"
	check "toggles: cleancache off stops puts ($(gval "$log" PUTS_OFF))" \
		"[ '$(gval "$log" PUTS_OFF)' = 0 ]"
	local pon
	pon=$(gval "$log" PUTS_ON)
	check "toggles: cleancache on puts again ($pon)" "[ ${pon:-0} -gt 0 ]"
	check "toggles: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
}

# 7: two vCPUs swap and read files at the same time.
scenario_smp() {
	local log=$out/smp.log js=$out/smp.json t0=$SECONDS
	run --mem 256M --smp 2 --pool-size 512M --swap 1G --data-disk 512M \
		--stats-json "$js" -- '
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data
		for i in $(seq 1 32); do yes "smp $i" | head -c 8M > /data/f$i; done
		sync; echo 3 > /proc/sys/vm/drop_caches
		(memhog --mib 320 --verify-passes 2 >/tmp/hog; echo HOG_RC=$?) &
		for p in 1 2 3; do
			for i in $(seq 1 32); do cat /data/f$i; done | md5sum
		done
		for i in $(seq 1 32); do yes "smp $i" | head -c 8M; done | md5sum
		wait; tail -1 /tmp/hog
		'"$KCHECK"'' > "$log" 2>&1
	local rc=$?
	echo "# smp: $((SECONDS - t0))s"
	check "smp: guest command exit 0" "[ $rc -eq 0 ]"
	check "smp: memhog verified 0 bad pages" "[ '$(gval "$log" HOG_RC)' = 0 ]"
	local sums
	sums=$(grep -aE '^[0-9a-f]{32}  -' "$log" | cut -c1-32 | sort -u | wc -l)
	check "smp: files read back intact while swapping" "[ $sums -eq 1 ]"
	check "smp: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
	[ -f "$js" ] && check "smp: both kinds of pages went through the device" \
		"[ $(jget "$js" "min(s['persistent']['puts'], s['ephemeral']['puts'])") -gt 0 ]"
}

# 8: the guest reboots: reset frees the pools, the driver comes back, the
# workload passes again.
scenario_reboot() {
	local log=$out/reboot.log js=$out/reboot.json t0=$SECONDS
	run --mem 256M --pool-size 512M --swap 1G --data-disk 64M --allow-reboot \
		--stats-json "$js" -- '
		mkdir -p /state
		mount /dev/vdd /state 2>/dev/null || { mkfs.ext4 -q /dev/vdd; mount /dev/vdd /state; }
		boot=$(( $(cat /state/boots 2>/dev/null || echo 0) + 1 ))
		echo $boot > /state/boots; sync
		memhog --mib 384 --verify-passes 1 --pattern text > /tmp/hog; rc=$?
		echo BOOT${boot}_RC=$rc
		echo BOOT${boot}_CREDITS=$(cat /sys/kernel/debug/virtio_tmem/credits | head -1)
		if [ $boot = 1 ]; then umount /state; hardreboot; sleep 60; fi
		echo BOOTS=$boot
		'"$KCHECK"'
		exit $rc' > "$log" 2>&1
	local rc=$?
	echo "# reboot: $((SECONDS - t0))s"
	check "reboot: the guest booted twice" "[ '$(gval "$log" BOOTS)' = 2 ]"
	check "reboot: workload verified before the reboot" "[ '$(gval "$log" BOOT1_RC)' = 0 ]"
	check "reboot: workload verified after the reboot" \
		"[ '$(gval "$log" BOOT2_RC)' = 0 ] && [ $rc -eq 0 ]"
	check "reboot: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
	[ -f "$js" ] || { nok "reboot: statistics"; return; }
	# the reset emptied the store: root, job and state file systems and
	# the swap pool of the second boot are all that is left (8 without it)
	check "reboot: reset freed the first boot's pools ($(jget "$js" "s['pools']") pools)" \
		"[ $(jget "$js" "s['pools']") -le 4 ]"
}

# 2: real clients under memory pressure: stress-ng --vm --verify and
# memtester while a hog holds memory; then fio --verify on an ext4 file set
# larger than the page cache, verified twice (the second time with
# cleancache hits).
scenario_clients() {
	local log=$out/clients.log js=$out/clients.json t0=$SECONDS
	run --mem 256M --pool-size 256M --swap 1G --data-disk 1G --stats-json "$js" -- '
		D=/sys/kernel/debug/virtio_tmem
		memhog --mib 128 --verify-passes 1 --ready-file /tmp/h --hold-file /tmp/go &
		H=$!
		while [ ! -f /tmp/h ]; do sleep 0.2; done
		stress-ng --vm 2 --vm-bytes 80M --verify --timeout 30s --metrics-brief > /tmp/sn.log 2>&1
		echo STRESS_RC=$?; grep -E "fail|passed|error" /tmp/sn.log | head -5
		# the quick tests (random value ... sequential increment) over 64 MiB
		MEMTESTER_TEST_MASK=0xff memtester 64M 1 > /tmp/mt.log 2>&1
		echo MEMTESTER_RC=$?; grep -cE "ok$" /tmp/mt.log | sed "s/^/MEMTESTER_OK=/"
		touch /tmp/go; wait $H; echo MEMHOG_RC=$?
		echo SUCC_STORES=$(cat /sys/kernel/debug/frontswap/succ_stores)
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data || exit 1
		F="--name=set --directory=/data --rw=write --bs=64k --size=48M --numjobs=8 --verify=crc32c --group_reporting"
		fio $F --do_verify=0 > /tmp/fio-w.log 2>&1; echo FIO_WRITE_RC=$?
		sync; echo 3 > /proc/sys/vm/drop_caches
		fio $F --verify_only > /tmp/fio-v1.log 2>&1; echo FIO_VERIFY1_RC=$?
		h=$(cat $D/hits)
		fio $F --verify_only > /tmp/fio-v2.log 2>&1; echo FIO_VERIFY2_RC=$?
		echo VERIFY2_HITS=$(( $(cat $D/hits) - h ))
		grep -h "err=" /tmp/fio-*.log | sed "s/^/fio: /"
		echo LOST=$(cat $D/lost_pages)
		'"$KCHECK"'' > "$log" 2>&1
	local rc=$?
	echo "# clients: $((SECONDS - t0))s"
	check "clients: guest command exit 0" "[ $rc -eq 0 ]"
	check "clients: stress-ng --vm --verify passed" "[ '$(gval "$log" STRESS_RC)' = 0 ]"
	check "clients: memtester passed ($(gval "$log" MEMTESTER_OK) tests ok)" \
		"[ '$(gval "$log" MEMTESTER_RC)' = 0 ] && [ '$(gval "$log" MEMTESTER_OK)' -ge 9 ]"
	check "clients: the held memory verified" "[ '$(gval "$log" MEMHOG_RC)' = 0 ]"
	local succ; succ=$(gval "$log" SUCC_STORES)
	check "clients: the pressure went through frontswap ($succ stores)" "[ ${succ:-0} -gt 0 ]"
	check "clients: fio wrote and verified its file set twice" \
		"[ '$(gval "$log" FIO_WRITE_RC)$(gval "$log" FIO_VERIFY1_RC)$(gval "$log" FIO_VERIFY2_RC)' = 000 ]"
	local hits; hits=$(gval "$log" VERIFY2_HITS)
	check "clients: the second verify hit cleancache ($hits hits)" "[ ${hits:-0} -gt 0 ]"
	check "clients: no acknowledged page lost" "[ '$(gval "$log" LOST)' = 0 ]"
	check "clients: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
}

# Hot-unplug with a running guest: the device goes away while it holds
# swap pages (the driver brings them all back first), the guest's data
# verifies; a new device is plugged in and used.
scenario_unplug() {
	local log=$out/unplug.log js=$out/unplug.json t0=$SECONDS
	run --mem 256M --pool-size 256M --swap 1G --hotpluggable --stats-json "$js" \
		--qmp-on 'UNPLUG-NOW={"execute":"device_del","arguments":{"id":"tmem0"}}' \
		--qmp-on 'REPLUG-NOW={"execute":"device_add","arguments":{"driver":"virtio-tmem-pci","id":"tmem0","bus":"tmem-port","size":268435456}}' \
		-- '
		D=/sys/kernel/debug/virtio_tmem F=/sys/kernel/debug/frontswap
		bound() { ls /sys/bus/virtio/drivers/virtio_tmem | grep -c "^virtio"; }
		memhog --mib 320 --verify-passes 1 --ready-file /tmp/r --hold-file /tmp/go &
		H=$!
		while [ ! -f /tmp/r ]; do sleep 0.2; done
		echo STORED_BEFORE=$(cat $D/frontswap_pages)
		echo UNPLUG-NOW
		for i in $(seq 1 300); do [ "$(bound)" = 0 ] && break; sleep 1; done
		echo BOUND_AFTER_UNPLUG=$(bound)
		echo DRAIN_ERRORS=$(dmesg | grep -c "could not be brought back")
		touch /tmp/go; wait $H; echo MEMHOG1_RC=$?
		s0=$(cat $F/succ_stores)
		echo REPLUG-NOW
		for i in $(seq 1 120); do [ "$(bound)" = 1 ] && break; sleep 1; done
		echo BOUND_AFTER_REPLUG=$(bound)
		memhog --mib 320 --verify-passes 1; echo MEMHOG2_RC=$?
		echo STORES_AFTER_REPLUG=$(( $(cat $F/succ_stores) - s0 ))
		echo LOST=$(cat $D/lost_pages)
		'"$KCHECK"'' > "$log" 2>&1
	local rc=$?
	echo "# unplug: $((SECONDS - t0))s"
	check "unplug: guest command exit 0" "[ $rc -eq 0 ]"
	check "unplug: the device held swap pages ($(gval "$log" STORED_BEFORE))" \
		"[ '$(gval "$log" STORED_BEFORE)' -gt 0 ] 2>/dev/null"
	check "unplug: device_del accepted" "grep -aq 'UNPLUG-NOW: .* -> {}' '$log'"
	check "unplug: the driver let the device go" "[ '$(gval "$log" BOUND_AFTER_UNPLUG)' = 0 ]"
	check "unplug: every swap page came back first" "[ '$(gval "$log" DRAIN_ERRORS)' = 0 ]"
	check "unplug: the held memory verified (0 bad pages)" "[ '$(gval "$log" MEMHOG1_RC)' = 0 ]"
	check "unplug: device_add of a new device accepted" "grep -aq 'REPLUG-NOW: .* -> {}' '$log'"
	check "unplug: the driver bound the new device" "[ '$(gval "$log" BOUND_AFTER_REPLUG)' = 1 ]"
	check "unplug: the new device took swap pages ($(gval "$log" STORES_AFTER_REPLUG))" \
		"[ '$(gval "$log" STORES_AFTER_REPLUG)' -gt 0 ] 2>/dev/null && [ '$(gval "$log" MEMHOG2_RC)' = 0 ]"
	check "unplug: no acknowledged page lost" "[ '$(gval "$log" LOST)' = 0 ]"
	check "unplug: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
	[ -f "$js" ] && check "unplug: the new device's stats show puts" \
		"[ $(jget "$js" "s['persistent']['puts']") -gt 0 ]"
}

# Writeback: a 32 MiB pool with a swap image takes 512 MiB of verified swap
# from a 256 MiB guest; persistent frames go to the image and come back.
scenario_writeback() {
	local log=$out/writeback.log js=$out/writeback.json t0=$SECONDS
	local base=$out/pool-full-nodev.json img=$out/writeback.img
	# QEMU's memory without the device, for the bound (pool_full's if run)
	[ -f "$base" ] ||
		run --mem 256M --no-device --swap 1G --stats-json "$base" -- "$(swap_cmd 384)" \
			> "$log.nodev" 2>&1
	run --mem 256M --pool-size 32M --swap 1G --stats-json "$js" \
		--device-opts "swap-image=$img,swap-image-size=1G" -- "$(swap_cmd 512)" > "$log" 2>&1
	local rc=$?
	echo "# writeback: $((SECONDS - t0))s"
	check_swap_run writeback "$log" $rc
	check_most_to_tmem writeback "$log"
	[ -f "$js" ] && [ -f "$base" ] || { nok "writeback: statistics"; return; }
	local written read
	written=$(jget "$js" "s['swap-image']['pages-written']")
	read=$(jget "$js" "s['swap-image']['pages-read']")
	echo "# writeback: $written pages written back, $read read back"
	check "writeback: the image was used ($written written, $read read)" \
		"[ $written -gt 100000 ] && [ $read -gt 100000 ]"
	check "writeback: no image errors, no overdraft" \
		"[ $(jget "$js" "s['swap-image']['write-errors'] + s['swap-image']['read-errors'] + s['swap-image']['checksum-errors'] + s['swap-image']['overdraft-puts']") -eq 0 ]"
	check_pool_bounds writeback "$js" "$base" 32
	rm -f "$img"
}

# Damage some written-back frames of a live swap image (as a failing disk
# would, from the host, while the guest holds the pages) and print what was
# done; then tell the guest through its data disk (/dev/vdd, sector 0).
corrupt_image() { # image, data disk image, frames to damage
	python3 - "$@" <<'PY'
import os, sys
img, data, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(img, os.O_RDWR)
frames, off = [], 0
while True:                     # every written block: the image is sparse
    try:
        off = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, off, os.SEEK_HOLE)
    frames += [b for b in range(off // 4096, end // 4096)
               if any(os.pread(fd, 4096, b * 4096))]
    off = end
pick = frames[::max(1, len(frames) // want)][:want]
for b in pick:                  # flip every bit: the checksum cannot match
    os.pwrite(fd, bytes(x ^ 0xff for x in os.pread(fd, 4096, b * 4096)), b * 4096)
os.fsync(fd)
fd = os.open(data, os.O_WRONLY)
os.pwrite(fd, b"IMAGE-CORRUPTED\n".ljust(4096, b"\0"), 0)
os.fsync(fd)
print(f"DAMAGED={len(pick)}")
print(f"# image_corrupt: damaged {len(pick)} of {len(frames)} written frames")
PY
}
# memhog's verdict in the guest's log: bad or lost pages of one pass.
mh_count() { # log, memhog (A|B), pass, bad|lost
	grep -a -m1 "^$2: memhog: pass $3: " "$1" | grep -oE "[0-9]+ $4" | cut -d' ' -f1
}

# Swap-image read faults: the pages of two memhogs are written back to a
# swap image, then the host damages frames in it, so that their gets fail
# their checksum (S_IO_ERROR).  The driver poisons those pages; the guest
# kernel (guest/patches/0002) must never map them: memhog A's own faults
# (do_swap_page) and memhog B's pages brought back by frontswap=0
# (frontswap_shrink -> unuse_pte) each get SIGBUS (BUS_MCEERR_AR, si_code
# 4), in every pass, and never read wrong data; the guest stays up.
scenario_image_corrupt() {
	local log=$out/image_corrupt.log js=$out/image_corrupt.json t0=$SECONDS
	local img=$out/image_corrupt.img host=$out/image_corrupt.host
	run --mem 256M --pool-size 32M --swap 1G --data-disk 4M --stats-json "$js" \
		--device-opts "swap-image=$img,swap-image-size=1G" -- '
		P=/sys/module/virtio_tmem/parameters D=/sys/kernel/debug/virtio_tmem
		mh() { # name, seed
			memhog --mib 64 --seed $2 --pageout --sigbus \
				--ready-file /tmp/r$1 --hold-file /tmp/h$1 > /tmp/$1.out 2>&1 &
			while [ ! -e /tmp/r$1 ]; do sleep 0.2; done
		}
		mh A 1; A=$!
		mh B 2; B=$!
		echo STORED=$(cat $D/frontswap_pages)
		echo CORRUPT-NOW
		i=0
		until dd if=/dev/vdd bs=4096 count=1 iflag=direct 2>/dev/null |
			grep -aq IMAGE-CORRUPTED; do
			i=$((i + 1)); [ $i -lt 1200 ] || { echo NO_CORRUPTION; exit 1; }
			sleep 0.5
		done
		touch /tmp/hA; wait $A; echo MEMHOG_A_RC=$?
		sed "s/^/A: /" /tmp/A.out
		echo 0 > $P/frontswap; echo FRONTSWAP_OFF_RC=$?
		echo LEFT=$(cat $D/frontswap_pages)
		touch /tmp/hB; wait $B; echo MEMHOG_B_RC=$?
		sed "s/^/B: /" /tmp/B.out
		echo ERRORS=$(cat $D/errors)
		echo LOST=$(cat $D/lost_pages)
		'"$KCHECK"'' > "$log" 2>&1 &
	local pid=$!
	until grep -aq '^CORRUPT-NOW' "$log"; do
		kill -0 $pid 2>/dev/null || break
		sleep 1
	done
	local data
	data=$(grep -aoE 'file=[^,]*/data\.img' "$log" | head -1 | cut -d= -f2)
	if grep -aq '^CORRUPT-NOW' "$log" && [ -f "$img" ] && [ -f "$data" ]; then
		corrupt_image "$img" "$data" 256 > "$host" 2>&1
	fi
	wait $pid
	local rc=$?
	grep "^#" "$host" 2>/dev/null
	echo "# image_corrupt: $((SECONDS - t0))s"
	local damaged m verdict la lb
	damaged=$(gval "$host" DAMAGED)
	la=$(mh_count "$log" A 1 lost)
	lb=$(mh_count "$log" B 1 lost)
	check "image_corrupt: the host damaged written-back frames (${damaged:-none})" \
		"[ '${damaged:-0}' -gt 0 ] 2>/dev/null"
	check "image_corrupt: guest command exit 0, kernel up to the end" "[ $rc -eq 0 ]"
	[ -f "$js" ] && check "image_corrupt: the device failed gets on checksums ($(jget "$js" "s['swap-image']['checksum-errors']"))" \
		"[ $(jget "$js" "s['swap-image']['checksum-errors']") -gt 0 ]"
	for m in A B; do
		verdict="$(mh_count "$log" $m 1 bad)/$(mh_count "$log" $m 2 bad) bad, $(mh_count "$log" $m 1 lost)/$(mh_count "$log" $m 2 lost) lost"
		check "image_corrupt: memhog $m read no wrong data ($verdict)" \
			"[ '$(mh_count "$log" $m 1 bad)' = 0 ] && [ '$(mh_count "$log" $m 2 bad)' = 0 ] &&
			 [ '$(gval "$log" MEMHOG_${m}_RC)' = 3 ]"
		check "image_corrupt: memhog $m lost pages to SIGBUS, the same in both passes" \
			"[ '$(mh_count "$log" $m 1 lost)' -gt 0 ] 2>/dev/null &&
			 [ '$(mh_count "$log" $m 1 lost)' = '$(mh_count "$log" $m 2 lost)' ]"
	done
	check "image_corrupt: SIGBUS was BUS_MCEERR_AR (si_code 4), for a poisoned page" \
		"! grep -a 'memhog: lost page' '$log' | grep -vq 'si_code 4)'"
	check "image_corrupt: no more pages lost than the damaged frames hold ($((${la:-0} + ${lb:-0})))" \
		"[ $((${la:-0} + ${lb:-0})) -le $((2 * ${damaged:-0})) ]"
	check "image_corrupt: frontswap=0 brought every readable page back" \
		"[ '$(gval "$log" FRONTSWAP_OFF_RC)' = 0 ] && [ '$(gval "$log" LEFT)' = 0 ]"
	check "image_corrupt: the driver counted the failed gets ($(gval "$log" ERRORS))" \
		"[ '$(gval "$log" ERRORS)' -gt 0 ] 2>/dev/null"
	check "image_corrupt: no acknowledged page lost" "[ '$(gval "$log" LOST)' = 0 ]"
	check "image_corrupt: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
	rm -f "$img"
}

# The device's x-stall property: while true it processes no request.  The
# guest prints STALL / UNSTALL; tmem-run sends the qom-set.
stall_qmp() { # LINE value
	echo "$1={\"execute\":\"qom-set\",\"arguments\":{\"path\":\"/machine/peripheral/tmem0\",\"property\":\"x-stall\",\"value\":$2}}"
}
# Four batch buffers that cannot grow (batch_buffers_max), so that
# STALL_FILL's four single-op batches leave none free: the cleancache puts
# that reclaim makes while the device is stalled would otherwise have a
# buffer added, and the stores these scenarios need waiting would use it
# (stall_unplug saw 2 stores counted).  Growth has its own checks in
# scenario_cleancache.
STALL=(--qmp-on "$(stall_qmp STALL true)" --qmp-on "$(stall_qmp UNSTALL false)"
       --module-args "batch_buffers=4 batch_buffers_max=4")
check_stalled() { # name, log
	check "$1: the device was stalled and resumed" \
		"grep -aq 'STALL: .* -> {}' '$2' && grep -aq 'UNSTALL: .* -> {}' '$2'"
}
# Guest side, before STALL: batches of one op, so that four ops fill every
# buffer of the queue; and run once every tool used while stalled (a
# page-cache miss then waits for the device: a cleancache get).
STALL_PREP='P=/sys/module/virtio_tmem/parameters D=/sys/kernel/debug/virtio_tmem
	echo 1 > $P/batch_size
	dd if=/dev/zero of=/dev/null count=1 2>/dev/null; truncate --help >/dev/null
	cmp /dev/null /dev/null; sleep 0; cat /dev/null; memhog --help >/dev/null; seq 1 >/dev/null
	ls /sys >/dev/null'
# ...and after it: four single-page reads of files whose pages the host
# holds; each get waits for the stalled device in its own batch.
STALL_FILL='for i in 1 2 3 4; do cat /data/g$i > /dev/null & done; sleep 2'
STALL_FILES='for i in 1 2 3 4; do yes "filler $i" | head -c 4096 > /data/g$i; done'
# Pages reach cleancache when pages read from disk are evicted (written
# ones are not PageMappedToDisk): read every file once, then drop them.
# Only the page cache (1): evicting an inode flushes its object.
TO_HOST='sync; echo 1 > /proc/sys/vm/drop_caches; cat /data/* > /dev/null 2>&1
	echo 1 > /proc/sys/vm/drop_caches; sleep 1'

# Defect 2: an invalidation issued while the host is slow (here: stalled,
# every batch buffer in flight) must not be dropped.  An O_DIRECT write
# invalidates the file's pages on the host (cleancache invalidate_inode,
# which may sleep: it waits); a truncation within a page invalidates it in
# the context the driver treats as atomic (held back, sent when a buffer
# frees).  Before the fix the driver gave up after 5 s and the old page
# came back from the host.
scenario_stall_invalidate() {
	local log=$out/stall-invalidate.log t0=$SECONDS
	run --mem 256M --pool-size 64M --swap 0 --data-disk 64M "${STALL[@]}" -- '
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data || exit 1
		yes old | head -c 65536 > /data/f
		yes "a file truncated within a page" | head -c 8192 > /data/t
		'"$STALL_FILES"'
		yes new | head -c 65536 > /tmp/new
		head -c 5000 /data/t > /tmp/t-want
		'"$TO_HOST"'
		cat /data/t > /dev/null
		'"$STALL_PREP"'
		echo STALL
		'"$STALL_FILL"'
		dd if=/tmp/new of=/data/f bs=65536 count=1 oflag=direct conv=notrunc 2>/dev/null &
		truncate -s 5000 /data/t &
		sleep 8
		echo UNSTALL
		wait
		echo 1 > /proc/sys/vm/drop_caches
		cmp -s /data/f /tmp/new; echo F_RC=$?
		cmp -s /data/t /tmp/t-want; echo T_RC=$?
		echo PENDING=$(cat $D/pending_flushes)
		echo HITS=$(cat $D/hits)
		'"$KCHECK"'' > "$log" 2>&1
	local rc=$?
	echo "# stall_invalidate: $((SECONDS - t0))s"
	check "stall_invalidate: guest command exit 0" "[ $rc -eq 0 ]"
	check_stalled stall_invalidate "$log"
	check "stall_invalidate: the O_DIRECT write reads back, not the host's old copy" \
		"[ '$(gval "$log" F_RC)' = 0 ]"
	check "stall_invalidate: the truncated file reads back" "[ '$(gval "$log" T_RC)' = 0 ]"
	check "stall_invalidate: a flush was held back and sent ($(gval "$log" PENDING))" \
		"[ '$(gval "$log" PENDING)' -gt 0 ] 2>/dev/null"
	check "stall_invalidate: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
}

# Defect 7: a cleancache get that times out (30 s, the device stalled)
# gives the page back to the kernel, which reads it from disk; the file is
# then written through the page cache.  The device's late answer must not
# land in that page.
scenario_stall_get() {
	local log=$out/stall-get.log t0=$SECONDS
	run --mem 256M --pool-size 64M --swap 0 --data-disk 64M "${STALL[@]}" -- '
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data || exit 1
		yes old | head -c 4096 > /data/f
		yes new | head -c 4096 > /tmp/new
		'"$TO_HOST"'
		'"$STALL_PREP"'
		read g0 < $D/gets
		echo STALL
		# tmem-run stalls the device when it reads that line; the guest
		# does not see when, so it leaves it time (a loaded host took
		# longer than the next command once)
		sleep 3
		cat /data/f > /dev/null
		read g1 < $D/gets; echo GETS=$((g1 - g0))
		dd if=/tmp/new of=/data/f bs=4096 count=1 conv=notrunc 2>/dev/null
		echo UNSTALL
		sleep 3
		cmp -s /data/f /tmp/new; echo CACHED_RC=$?
		sync; echo 3 > /proc/sys/vm/drop_caches
		cmp -s /data/f /tmp/new; echo DISK_RC=$?
		echo ERRORS=$(cat $D/errors)
		'"$KCHECK"'' > "$log" 2>&1
	local rc=$?
	echo "# stall_get: $((SECONDS - t0))s"
	check "stall_get: guest command exit 0" "[ $rc -eq 0 ]"
	check_stalled stall_get "$log"
	check "stall_get: the get timed out ($(gval "$log" ERRORS) errors)" \
		"[ '$(gval "$log" ERRORS)' -gt 0 ] 2>/dev/null"
	check "stall_get: the page written after the timeout kept its data" \
		"[ '$(gval "$log" CACHED_RC)' = 0 ]"
	check "stall_get: ... and reached the disk" "[ '$(gval "$log" DISK_RC)' = 0 ]"
	check "stall_get: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
}

# Defect 3: the device is unplugged while swap stores sleep for a batch
# buffer (the device stalled, every buffer in flight, frontswap holding no
# page yet).  The driver must wait for those stores before it drains, or
# their acknowledged pages go with the device.
scenario_stall_unplug() {
	local log=$out/stall-unplug.log t0=$SECONDS
	run --mem 256M --pool-size 64M --swap 256M --data-disk 64M --hotpluggable "${STALL[@]}" \
		--qmp-on 'UNPLUG-NOW={"execute":"device_del","arguments":{"id":"tmem0"}}' -- '
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data || exit 1
		'"$STALL_FILES"'
		'"$TO_HOST"'
		'"$STALL_PREP"'
		echo STALL
		'"$STALL_FILL"'
		memhog --mib 4 --pageout --verify-passes 1 --ready-file /tmp/r \
			--hold-file /tmp/go > /tmp/hog 2>&1 &
		H=$!
		sleep 3
		read held < $D/frontswap_pages; echo HELD_AT_UNPLUG=$held
		echo UNPLUG-NOW
		for i in $(seq 1 100); do read v < $P/frontswap; [ $v = N ] && break; sleep 0.3; done
		echo REMOVAL_STARTED=$v
		sleep 3
		echo UNSTALL
		for i in $(seq 1 120); do
			[ -z "$(ls /sys/bus/virtio/drivers/virtio_tmem | grep ^virtio)" ] && break
			sleep 1
		done
		echo UNBOUND=$i
		echo DRAIN_ERRORS=$(dmesg | grep -c "could not be brought back")
		for i in $(seq 1 300); do
			{ [ -f /tmp/r ] || ! kill -0 $H 2>/dev/null; } && break
			sleep 0.2
		done
		[ -f /tmp/r ] || { echo "memhog not ready: $(cat /proc/$H/wchan)"; dmesg | tail -30; }
		touch /tmp/go; wait $H; echo MEMHOG_RC=$?; tail -2 /tmp/hog
		'"$KCHECK"'' > "$log" 2>&1
	local rc=$?
	echo "# stall_unplug: $((SECONDS - t0))s"
	check "stall_unplug: guest command exit 0" "[ $rc -eq 0 ]"
	check_stalled stall_unplug "$log"
	check "stall_unplug: stores were waiting, none counted yet ($(gval "$log" HELD_AT_UNPLUG))" \
		"[ '$(gval "$log" HELD_AT_UNPLUG)' = 0 ]"
	check "stall_unplug: removal started while they waited" "[ '$(gval "$log" REMOVAL_STARTED)' = N ]"
	check "stall_unplug: the driver let the device go" "[ '$(gval "$log" UNBOUND)' -lt 120 ] 2>/dev/null"
	check "stall_unplug: every swap page came back first" "[ '$(gval "$log" DRAIN_ERRORS)' = 0 ]"
	check "stall_unplug: the swapped memory verified (0 bad pages)" "[ '$(gval "$log" MEMHOG_RC)' = 0 ]"
	check "stall_unplug: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
}

# Defects 11 and 12 (races that no stall makes deterministic: see
# docs/guest-driver.md): two queues and two vCPUs; file systems mounted and
# unmounted over and over (NEW_POOL, DESTROY_POOL, the host reusing ids),
# cleancache switched off and on (FLUSH_POOL) while files are read on both
# vCPUs; every read verified.  Then the device is unplugged during reads
# (batch timers armed at removal).
scenario_mq_pools() {
	local log=$out/mq-pools.log t0=$SECONDS
	run --mem 256M --smp 2 --pool-size 128M --swap 0 --data-disk 128M --hotpluggable \
		--device-opts num-queues=2,max-pools=6 \
		--qmp-on 'UNPLUG-NOW={"execute":"device_del","arguments":{"id":"tmem0"}}' -- '
		P=/sys/module/virtio_tmem/parameters D=/sys/kernel/debug/virtio_tmem
		mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data || exit 1
		bad=0
		for round in 1 2 3 4 5 6; do
			mount /dev/vdd /data || exit 1
			for i in $(seq 1 8); do yes "round $round file $i" | head -c 2M > /data/f$i; done
			sync; echo 3 > /proc/sys/vm/drop_caches
			# ro -> rw: init_fs again, the old id is forgotten; pools
			# run out and are reclaimed (DESTROY while mounted)
			for k in 1 2; do mount -o remount,ro /data; mount -o remount,rw /data; done
			want=$(for i in 1 3 5 7 2 4 6 8; do yes "round $round file $i" | head -c 2M; done | md5sum)
			for pass in 1 2; do
				(for i in 1 3 5 7; do cat /data/f$i; done | md5sum > /tmp/a) &
				(for i in 2 4 6 8; do cat /data/f$i; done | md5sum > /tmp/b) &
				[ $pass = 2 ] && { echo 0 > $P/cleancache; echo 1 > $P/cleancache; }
				wait
				got=$( (for i in 1 3 5 7; do cat /data/f$i; done;
					for i in 2 4 6 8; do cat /data/f$i; done) | md5sum)
				[ "$got" = "$want" ] || bad=$((bad + 1))
				echo 3 > /proc/sys/vm/drop_caches
			done
			umount /data
		done
		echo BAD_READS=$bad
		echo RECLAIMS=$(cat $D/pool_reclaims)
		echo HITS=$(cat $D/hits)
		mount /dev/vdd /data
		(while :; do cat /data/f* > /dev/null; echo 3 > /proc/sys/vm/drop_caches; done) &
		R=$!
		sleep 2
		echo UNPLUG-NOW
		for i in $(seq 1 120); do
			[ -z "$(ls /sys/bus/virtio/drivers/virtio_tmem | grep ^virtio)" ] && break
			sleep 1
		done
		kill $R; wait
		echo UNBOUND=$i
		'"$KCHECK"'' > "$log" 2>&1
	local rc=$?
	echo "# mq_pools: $((SECONDS - t0))s"
	check "mq_pools: guest command exit 0" "[ $rc -eq 0 ]"
	check "mq_pools: every read verified across remounts and toggles" \
		"[ '$(gval "$log" BAD_READS)' = 0 ]"
	check "mq_pools: cleancache hit ($(gval "$log" HITS))" "[ '$(gval "$log" HITS)' -gt 0 ] 2>/dev/null"
	check "mq_pools: pools were reclaimed ($(gval "$log" RECLAIMS))" \
		"[ '$(gval "$log" RECLAIMS)' -gt 0 ] 2>/dev/null"
	check "mq_pools: the driver let the device go during reads" \
		"[ '$(gval "$log" UNBOUND)' -lt 120 ] 2>/dev/null"
	check "mq_pools: kernel log clean ($kernel kernel)" "[ '$(gval "$log" KERNEL_ISSUES)' = 0 ]"
}

# Migration (issue 17): tmem-run --migrate-on moves the guest to a new QEMU
# (or snapshots it) when it prints a line, then writes "VTMEM-MIGRATED <n>
# <outcome>" to a read-only control disk; the guest tool migwait N waits
# for the Nth action and prints its outcome.
# A migration record of the stats JSON: mjget file n expression-over-m
mjget() {
	python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['migrations'][$2 - 1]; print($3)" "$1"
}
# What a completed migration must show: the guest held persistent pages
# in the pool; the destination holds as many (the guest was idle).
check_pool_moved() { # name, stats, action n
	local js=$2 n=$3 before after
	before=$(mjget "$js" "$n" "m['stats-before']['persistent']['stored-pages']")
	after=$(mjget "$js" "$n" "m['stats-after']['persistent']['stored-pages']")
	check "$1: migration $n moved the pool ($before persistent pages before, $after after)" \
		"[ '${before:-0}' -gt 1000 ] && [ \$(( ${after:-0} * 100 / ${before:-1} )) -ge 99 ]"
}
# The destination, as it starts, holds what the source held when it
# stopped (the source's statistics read at switchover).
check_switchover() { # name, stats, action n
	local src dst
	src=$(mjget "$2" "$3" "m['stats-source-end']['persistent']['stored-pages']")
	dst=$(mjget "$2" "$3" "m['stats-after']['persistent']['stored-pages']")
	check "$1: migration $3: the destination took the source's pool as it stopped ($src pages there, $dst here)" \
		"[ -n '$src' ] && [ '$src' = '$dst' ]"
}
# What every migration scenario must show: its report, the guest ran to
# the end, memhog verified on the last QEMU, nothing lost, a clean log.
check_mig_run() { # name, log, stats, guest exit status, start time
	echo "# $1: $((SECONDS - $5))s"
	[ -f "$3" ] && mig_report "$1" "$3"
	check "$1: guest command exit 0" "[ $4 -eq 0 ]"
	check "$1: memhog verified 0 bad pages on the last QEMU" \
		"[ '$(gval "$2" MEMHOG_RC)' = 0 ]"
	check "$1: no acknowledged page lost" "[ '$(gval "$2" LOST)' = 0 ]"
	check "$1: kernel log clean ($kernel kernel)" "[ '$(gval "$2" KERNEL_ISSUES)' = 0 ]"
}
mig_report() { # name, stats: one line per migration action
	python3 - "$1" "$2" <<'PY'
import json, sys
for m in json.load(open(sys.argv[2])).get("migrations", []):
    q, b = m["query-migrate"], m["stats-before"]
    ram = q.get("ram", {})
    pool = b["persistent"]["compressed-bytes"] + b["ephemeral"]["compressed-bytes"]
    print(f"# {sys.argv[1]}: migration {m['n']} {m['mode']} -> {m['outcome']}: "
          f"{m['wall-ms']} ms, downtime {q.get('downtime', '-')} ms, "
          f"{ram.get('dirty-sync-count', '-')} dirty syncs, "
          f"{ram.get('transferred', 0) >> 20} MiB sent, RAM pages "
          f"{ram.get('normal-bytes', 0) >> 20} MiB, pool {pool >> 20} MiB compressed")
PY
}

# (a), (e), (f) and the destination killed: a guest holding verified swap
# data in the pool: a migration cancelled mid-way and one whose
# destination dies leave the source running; then it migrates live, is
# saved to a file and restored, and its data verifies.
scenario_migrate_idle() {
	local log=$out/migrate-idle.log js=$out/migrate-idle.json t0=$SECONDS
	run --mem 256M --pool-size 256M --swap 1G --stats-json "$js" \
		--migrate-on MIG-CANCEL=cancel,after=2 --migrate-on MIG-KILL=kill-dest,after=2 \
		--migrate-on MIG-LIVE=live --migrate-on MIG-FILE=file -- '
		D=/sys/kernel/debug/virtio_tmem
		memhog --mib 320 --verify-passes 1 --pattern text --ready-file /tmp/r \
			--hold-file /tmp/go &
		H=$!
		while [ ! -f /tmp/r ]; do sleep 0.2; done
		echo HELD=$(cat $D/frontswap_pages)
		n=0
		for a in CANCEL KILL LIVE FILE; do
			n=$((n + 1)); echo MIG-$a; echo OUTCOME_$a=$(migwait $n)
		done
		touch /tmp/go; wait $H; echo MEMHOG_RC=$?
		echo LOST=$(cat $D/lost_pages)
		'"$KCHECK"'' > "$log" 2>&1
	check_mig_run migrate_idle "$log" "$js" $? $t0
	check "migrate_idle: migrate_cancel mid-way, the source went on" \
		"[ '$(gval "$log" OUTCOME_CANCEL)' = cancelled ]"
	check "migrate_idle: destination killed mid-way, the source went on" \
		"[ '$(gval "$log" OUTCOME_KILL)' = failed ]"
	check "migrate_idle: live migration completed" "[ '$(gval "$log" OUTCOME_LIVE)' = completed ]"
	check "migrate_idle: saved to a file and restored" "[ '$(gval "$log" OUTCOME_FILE)' = completed ]"
	[ -f "$js" ] || { nok "migrate_idle: statistics"; return; }
	check_pool_moved migrate_idle "$js" 3
	check_pool_moved migrate_idle "$js" 4
	check_switchover migrate_idle "$js" 3
}

# (b) and (c): a guest swapping verified data (memhog's verify passes
# fault pages in and push others out) migrates live with the bandwidth
# limited, so that pre-copy takes several rounds, and then back.
scenario_migrate_live() {
	local log=$out/migrate-live.log js=$out/migrate-live.json t0=$SECONDS
	run --mem 256M --pool-size 256M --swap 1G --stats-json "$js" \
		--migrate-on MIG-THERE=live,bandwidth=48M --migrate-on MIG-BACK=live,bandwidth=48M -- '
		D=/sys/kernel/debug/virtio_tmem
		memhog --mib 384 --verify-passes 4 > /tmp/hog 2>&1 &
		H=$!
		until grep -q "pass 1:" /tmp/hog; do sleep 0.5; done
		echo MIG-THERE; echo OUTCOME_THERE=$(migwait 1)
		echo MIG-BACK; echo OUTCOME_BACK=$(migwait 2)
		wait $H; echo MEMHOG_RC=$?; tail -3 /tmp/hog
		echo LOST=$(cat $D/lost_pages)
		'"$KCHECK"'' > "$log" 2>&1
	check_mig_run migrate_live "$log" "$js" $? $t0
	check "migrate_live: migrated live while swapping, and back" \
		"[ '$(gval "$log" OUTCOME_THERE)$(gval "$log" OUTCOME_BACK)' = completedcompleted ]"
	[ -f "$js" ] || { nok "migrate_live: statistics"; return; }
	local syncs moved
	syncs=$(mjget "$js" 1 "m['query-migrate']['ram']['dirty-sync-count']")
	check "migrate_live: pre-copy took several rounds ($syncs)" "[ '${syncs:-0}' -ge 3 ]"
	moved=$(mjget "$js" 1 "m['stats-before']['persistent']['stored-pages']")
	check "migrate_live: the pool held swap pages when it moved ($moved)" \
		"[ '${moved:-0}' -gt 1000 ]"
	check_switchover migrate_live "$js" 1
}

# The guest side of the image scenarios: 256 MiB of memhog's incompressible
# pages pushed out (most into the pool's image) and held; $H is the memhog.
MIG_HOLD='D=/sys/kernel/debug/virtio_tmem
	memhog --mib 256 --verify-passes 1 --ready-file /tmp/r --hold-file /tmp/go \
		> /tmp/hog 2>&1 &
	H=$!
	while [ ! -f /tmp/r ]; do sleep 0.2; done'

# (d) and savevm/loadvm: a 32 MiB pool with a swap image; the guest's
# pages are in the pool and in the image when it migrates live (each QEMU
# has its own image: the pages travel in the stream).  Then savevm; the
# guest kills the memhog (its swap pages are flushed); loadvm brings the
# guest back to the snapshot, memhog alive, and its pages verify.
scenario_migrate_image() {
	local log=$out/migrate-image.log js=$out/migrate-image.json t0=$SECONDS
	local img=$out/migrate-image.img
	run --mem 256M --pool-size 32M --swap 1G --stats-json "$js" \
		--device-opts "swap-image=$img,swap-image-size=1G" \
		--migrate-on MIG-LIVE=live --migrate-on MIG-SAVEVM=savevm \
		--migrate-on MIG-LOADVM=loadvm -- '
		'"$MIG_HOLD"'
		echo MIG-LIVE; echo OUTCOME_LIVE=$(migwait 1)
		echo MIG-SAVEVM
		o=$(migwait 2)
		if [ "$o" = saved ]; then
			echo OUTCOME_SAVEVM=$o
			kill -9 $H; wait $H 2>/dev/null
			echo KILLED_LEFT=$(cat $D/frontswap_pages)
			echo MIG-LOADVM
			sleep 600; echo LOADVM_NEVER_CAME; exit 1
		fi
		echo OUTCOME_LOADVM=$o
		touch /tmp/go; wait $H; echo MEMHOG_RC=$?; tail -2 /tmp/hog
		echo LOST=$(cat $D/lost_pages)
		'"$KCHECK"'' > "$log" 2>&1
	check_mig_run migrate_image "$log" "$js" $? $t0
	check "migrate_image: live migration completed" "[ '$(gval "$log" OUTCOME_LIVE)' = completed ]"
	check "migrate_image: savevm, then loadvm restored the snapshot" \
		"[ '$(gval "$log" OUTCOME_SAVEVM)' = saved ] && [ '$(gval "$log" OUTCOME_LOADVM)' = loaded ]"
	check "migrate_image: the memhog killed after savevm came back with loadvm" \
		"[ -n '$(gval "$log" KILLED_LEFT)' ] && [ '$(gval "$log" MEMHOG_RC)' = 0 ]"
	[ -f "$js" ] || { nok "migrate_image: statistics"; return; }
	local inimg
	inimg=$(mjget "$js" 1 "m['stats-before']['swap-image']['pages-in-image']")
	check "migrate_image: pages written back to the image migrated ($inimg)" \
		"[ '${inimg:-0}' -gt 1000 ]"
	check_pool_moved migrate_image "$js" 1
	check_switchover migrate_image "$js" 1
	rm -f "$img"
}

# The host takes memory back and gives it again: a guest swaps verified
# (incompressible) data through virtio-tmem (with a swap image) while the pool
# is shrunk 256M -> 32M and grown back to 256M (qom-set of size, as an
# operator or libvirt's qemu-monitor-command would).  Nothing may be lost;
# QEMU's RSS must drop with the shrink.  A host-side sampler reads QEMU's
# VmRSS every half second, tagged with the phase the log has reached.
scenario_resize() {
	local log=$out/resize.log js=$out/resize.json img=$out/resize.img
	local rss=$out/resize.rss t0=$SECONDS pid i
	local set='{"execute":"qom-set","arguments":{"path":"/machine/peripheral/tmem0","property":"size","value":'
	rm -f "$rss"
	(	for i in $(seq 1 600); do
			pid=$(pgrep -f "qemu-system.*swap-image=$img" | head -1)
			[ -n "$pid" ] && break
			sleep 0.2
		done
		while [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; do
			echo "$(grep -c 'tmem-run: \(SHRINK\|GROW\)-NOW' "$log" 2>/dev/null) $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")" >> "$rss"
			sleep 0.5
		done ) &
	local sampler=$!
	run --mem 256M --pool-size 256M --swap 1G --stats-json "$js" \
		--device-opts "swap-image=$img,swap-image-size=1G,swap-image-unlink=on" \
		--qmp-on "SHRINK-NOW=${set}33554432}}" \
		--qmp-on "GROW-NOW=${set}268435456}}" -- '
		memhog --mib 288 --verify-passes 2 --ready-file /tmp/ready \
			> /tmp/mh.out 2>&1 &
		M=$!
		while [ ! -e /tmp/ready ]; do sleep 1; done
		echo STORED_BEFORE=$(cat /sys/kernel/debug/frontswap/succ_stores)
		echo SHRINK-NOW
		sleep 8
		echo GROW-NOW
		wait $M; rc=$?
		cat /tmp/mh.out
		echo MEMHOG_RC=$rc
		echo SUCC_STORES=$(cat /sys/kernel/debug/frontswap/succ_stores)
		echo FAILED_STORES=$(cat /sys/kernel/debug/frontswap/failed_stores)
		echo NO_CREDIT=$(cat /sys/kernel/debug/virtio_tmem/store_no_credit)
		echo LOST=$(cat /sys/kernel/debug/virtio_tmem/lost_pages)
		'"$KCHECK"'
		exit $rc' > "$log" 2>&1
	local rc=$?
	wait "$sampler" 2>/dev/null
	echo "# resize: $((SECONDS - t0))s"
	check_swap_run resize "$log" $rc
	check "resize: the guest swapped through the pool before the shrink" \
		"[ '$(gval "$log" STORED_BEFORE)' -gt 10000 ] 2>/dev/null"
	check "resize: both size changes were accepted" \
		"[ \$(grep -c 'tmem-run: \(SHRINK\|GROW\)-NOW: .* -> {}' '$log') -eq 2 ]"
	[ -f "$js" ] && [ -s "$rss" ] || { nok "resize: statistics and RSS samples"; return; }
	local before shrunk after
	before=$(awk '$1 == 0 { v = $2 } END { print int(v / 1024) }' "$rss")
	shrunk=$(awk '$1 == 1 { if (!m || $2 < m) m = $2 } END { print int(m / 1024) }' "$rss")
	after=$(awk '{ v = $2 } END { print int(v / 1024) }' "$rss")
	echo "# resize: QEMU RSS $before MiB before the shrink, $shrunk MiB at 32M, $after MiB at the end"
	check "resize: QEMU's RSS went down with the pool ($before -> $shrunk MiB)" \
		"[ $shrunk -gt 0 ] && [ $shrunk -lt $before ]"
	local caps
	caps=$(jget "$js" "s['resize']['cap-gen']")
	check "resize: the driver acknowledged every credit cap ($caps)" \
		"[ $caps -gt 0 ] && [ $(jget "$js" "s['resize']['cap-ack-gen']") -eq $caps ]"
	check "resize: the size read back is the last target" \
		"[ $(jget "$js" "s['resize']['target-bytes']") -eq 268435456 ]"
	check "resize: the device never refused a credited put" \
		"[ $(jget "$js" "s['persistent']['reject-full']") -eq 0 ]"
	check "resize: the pool is within its limit" \
		"[ $(jget "$js" "s['used-bytes']") -le $(jget "$js" "s['limit-bytes']") ]"
	echo "# resize: $(jget "$js" "s['swap-image']['pages-written']") pages written back to the image"
	# Without an image only the guest can free its pages: memhog's data,
	# paged out to virtio-tmem, is held while the pool is shrunk to 32M;
	# the driver must bring pages back (frontswap loads) as asked.
	local log2=$out/resize-noimage.log js2=$out/resize-noimage.json
	run --mem 256M --pool-size 256M --swap 1G --stats-json "$js2" \
		--qmp-on "SHRINK-NOW=${set}33554432}}" -- '
		memhog --mib 96 --verify-passes 1 --pageout --ready-file /tmp/ready \
			--hold-file /tmp/hold > /tmp/mh.out 2>&1 &
		M=$!
		while [ ! -e /tmp/ready ]; do sleep 1; done
		L0=$(cat /sys/kernel/debug/frontswap/loads)
		echo SHRINK-NOW
		for i in $(seq 1 30); do
			sleep 1
			[ "$(cat /sys/kernel/debug/virtio_tmem/resize_shrinks)" -gt 0 ] && break
		done
		sleep 2
		echo LOADS_WHILE_SHRUNK=$(( $(cat /sys/kernel/debug/frontswap/loads) - L0 ))
		echo RESIZE_SHRINKS=$(cat /sys/kernel/debug/virtio_tmem/resize_shrinks)
		touch /tmp/hold
		wait $M; rc=$?
		cat /tmp/mh.out
		echo MEMHOG_RC=$rc
		echo LOST=$(cat /sys/kernel/debug/virtio_tmem/lost_pages)
		'"$KCHECK"'
		exit $rc' > "$log2" 2>&1
	rc=$?
	echo "# resize (no image): $((SECONDS - t0))s in all"
	check_swap_run "resize (no image)" "$log2" $rc
	check "resize (no image): the driver brought pages back when asked ($(gval "$log2" LOADS_WHILE_SHRUNK) loads)" \
		"[ '$(gval "$log2" RESIZE_SHRINKS)' -gt 0 ] && [ '$(gval "$log2" LOADS_WHILE_SHRUNK)' -gt 5000 ] 2>/dev/null"
}

# Shared storage: both QEMUs open one swap image (swap-image-shared=on);
# the pages written back to it travel as references to their slots, and
# the image's lock passes to the destination at switchover.
scenario_migrate_shared() {
	local log=$out/migrate-shared.log js=$out/migrate-shared.json t0=$SECONDS
	local img=$out/migrate-shared.img
	run --mem 256M --pool-size 32M --swap 1G --stats-json "$js" \
		--device-opts "swap-image=$img,swap-image-size=1G,swap-image-shared=on" \
		--migrate-on MIG-LIVE=live -- '
		'"$MIG_HOLD"'
		echo MIG-LIVE; echo OUTCOME_LIVE=$(migwait 1)
		touch /tmp/go; wait $H; echo MEMHOG_RC=$?; tail -2 /tmp/hog
		echo LOST=$(cat $D/lost_pages)
		'"$KCHECK"'' > "$log" 2>&1
	check_mig_run migrate_shared "$log" "$js" $? $t0
	check "migrate_shared: live migration completed" "[ '$(gval "$log" OUTCOME_LIVE)' = completed ]"
	[ -f "$js" ] || { nok "migrate_shared: statistics"; return; }
	# memhog's pages do not compress: sent as bytes, each would take 4 KiB
	local inimg held sent
	inimg=$(mjget "$js" 1 "m['stats-source-end']['swap-image']['pages-in-image']")
	held=$(mjget "$js" 1 "m['stats-source-end']['persistent']['stored-pages']")
	sent=$(mjget "$js" 1 "m['stats-source-end']['migration']['bytes-sent'] >> 20")
	check "migrate_shared: of $held pages, the $inimg in the image went as references ($sent MiB sent for the pool)" \
		"[ '${inimg:-0}' -gt 1000 ] &&
		 [ '${sent:-999}' -lt \$(( (${held:-0} - ${inimg:-0} / 2) * 4 / 1024 )) ]"
	check_switchover migrate_shared "$js" 1
	check "migrate_shared: the destination read the image without errors" \
		"[ \$(jget '$js' \"s['swap-image']['checksum-errors'] + s['swap-image']['read-errors']\") -eq 0 ]"
	rm -f "$img"
}

for a in "$@"; do
	case "$a" in -h|--help) usage; exit 0 ;; esac
done
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] ||
	scenarios=(frontswap clients cleancache pool_full writeback toggles smp reboot unplug
		   stall_invalidate stall_get stall_unplug mq_pools image_corrupt cleancache_keys
		   cleancache_filter migrate_idle migrate_live migrate_image migrate_shared resize)
for s in "${scenarios[@]}"; do
	if ! declare -F "scenario_${s%@*}" >/dev/null; then
		echo "run.sh: unknown scenario '$s' (see --help)" >&2
		exit 2
	fi
done

# Two lanes, one guest each, side by side on the two cores (E2E_JOBS=1 runs
# them one after the other).  writeback reuses pool_full's run without the
# device, so both stay in lane 0.
lane_of() {
	# the debug kernel's scenarios, in two lanes of about equal time
	if [ "$kernel" = debug ]; then
		case "$1" in frontswap|unplug) echo 0 ;; *) echo 1 ;; esac
		return
	fi
	case "$1" in
	frontswap|pool_full|writeback|smp|stall_invalidate|stall_get|stall_unplug) echo 0 ;;
	image_corrupt) echo 0 ;;
	frontswap@*|writeback@*|migrate_idle|migrate_image|migrate_shared) echo 0 ;;
	*) echo 1 ;;
	esac
}
# SCENARIO@ALLOCATOR: the scenario, its logs in $out/ALLOCATOR, with the
# device's allocator=ALLOCATOR (run() reads E2E_ALLOCATOR).
run_one() { # scenario[@allocator]
	local s=${1%@*}
	if [ "$s" != "$1" ]; then
		local base=$out out=$out/${1#*@} E2E_ALLOCATOR=${1#*@}
		mkdir -p "$out"
		# writeback's bound reuses pool_full's run without the device
		[ -f "$base/pool-full-nodev.json" ] &&
			cp "$base/pool-full-nodev.json" "$out/"
		echo "# $s with allocator=$E2E_ALLOCATOR"
	fi
	"scenario_$s"
}
run_lane() { # lane number, scenarios of that lane...
	local lane=$1 s
	shift
	for s in "$@"; do
		run_one "$s"
	done
	echo "lane $lane: $pass passed, $fail failed"
}
jobs=${E2E_JOBS:-2}
lanes=("" "")
for s in "${scenarios[@]}"; do
	l=0
	[ "$jobs" -gt 1 ] && l=$(lane_of "$s")
	lanes[$l]+=" $s"
done
for l in 0 1; do
	[ -n "${lanes[$l]}" ] || continue
	echo "# lane $l:${lanes[$l]}"
	# shellcheck disable=SC2086
	run_lane "$l" ${lanes[$l]} > "$out/lane$l.out" 2>&1 &
done
wait
for l in 0 1; do
	[ -f "$out/lane$l.out" ] || continue
	grep -v '^lane [0-9]: ' "$out/lane$l.out"
	line=$(grep -oE '^lane [0-9]: [0-9]+ passed, [0-9]+ failed' "$out/lane$l.out")
	if [ -z "$line" ]; then
		fail=$((fail + 1)); echo "not ok - lane $l did not finish"
		continue
	fi
	line=${line#lane ?: }
	pass=$((pass + ${line%% passed*}))
	f=${line##*, }
	fail=$((fail + ${f%% failed}))
done
echo "# logs in $out"
summary
