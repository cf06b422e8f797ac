#!/usr/bin/env bash
# cleancache-bench.sh - measure what cleancache saves: hit rate of a second
# pass, disk sectors read, puts, puts not staged, puts skipped (WasActive),
# host pool bytes; for the workloads of issue 20 and docs/benchmarks.md.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/cleancache-bench.sh [--help] [--workload a|b|c|d] [--config NAME]
                                   [--busy] [--runs N] [--out DIR]
                                   [--module-args 'k=v ...'] [--tag NAME]

Boots the release guest (256 MiB RAM, 512 MiB pool, ext4 on a 1 GiB data
disk) once per run and prints one Markdown table row per run.
Workloads:
  a  48 files of 8 MiB (1.5x RAM) read, then read again
  b  the same with 'sync; echo 3 > drop_caches' (inode eviction: the sync
     cleans the inodes that the atime update dirtied) between passes
  c  hot set (8 x 8 MiB, read three times) + a 512 MiB one-pass stream,
     then the hot set again (its hit rate is the one reported)
  d  2 vCPUs: two sets of 24 x 8 MiB read at once, twice
Configs (driver and kernel knobs; the kernel carries guest/patches/0003-4):
  today    batch_buffers=4 batch_buffers_max=4 batch_size=64,
           cleancache.keep_evicted=0: the staging of the driver before
           issue 20 (four fixed buffers of 64 ops)
  staging  the driver's defaults, keep_evicted=0
  active   + active_only=1 (WasActive filtering)
  inode    + keep_evicted=1 (pages kept across inode eviction)
  all      active_only=0, keep_evicted=1
  --busy   a CPU-bound process competes with QEMU: both pinned to CPU 0
  --module-args  more virtio_tmem parameters (after the config's)
  --tag    added to the run's name
Output: DIR/<workload>-<config>[-busy]-<n>.log and .json (default
/tmp/vtmem-ccbench).  Uses $VTMEM_CACHE like the other scripts.
USAGE
}

workload=a config=staging busy=0 runs=1 out=/tmp/vtmem-ccbench extra= tag=
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help) usage; exit 0 ;;
	--workload) workload=$2; shift ;;
	--config) config=$2; shift ;;
	--busy) busy=1 ;;
	--runs) runs=$2; shift ;;
	--out) out=$2; shift ;;
	--module-args) extra=$2; shift ;;
	--tag) tag=-$2; shift ;;
	*) echo "cleancache-bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
top=$(cd "$(dirname "$0")/.." && pwd)
case "$config" in
today) margs="batch_buffers=4 batch_buffers_max=4 batch_size=64" keep=0 ;;
staging) margs="" keep=0 ;;
active) margs="active_only=1" keep=0 ;;
inode) margs="active_only=1" keep=1 ;;
all) margs="" keep=1 ;;
*) echo "cleancache-bench.sh: --config '$config' (see --help)" >&2; exit 2 ;;
esac
margs="$margs${extra:+ $extra}"
margs=${margs# }
smp=1
[ "$workload" = d ] && smp=2
case "$workload" in a|b|c|d) ;; *) usage >&2; exit 2 ;; esac
mkdir -p "$out"

# The guest side: files are made, the page cache emptied, then the passes;
# counters are printed as NAME=VALUE before and after the measured pass.
guest_cmd() {
	cat <<EOF
D=/sys/kernel/debug/virtio_tmem
K=/sys/module/cleancache/parameters/keep_evicted
[ -w \$K ] && echo $keep > \$K
echo KEEP_EVICTED=\$(cat \$K 2>/dev/null || echo absent)
mkfs.ext4 -q -b 4096 /dev/vdd && mkdir -p /data && mount /dev/vdd /data || exit 1
mk() { for i in \$(seq 1 \$2); do
	yes "\$1 \$i cleancache bench" | head -c 8M > /data/\$1\$i; done; }
rd() { awk '\$3 == "vdd" { print \$6 }' /proc/diskstats; }
snap() { echo "\$1 sectors=\$(rd) puts=\$(cat \$D/puts) put_drops=\$(cat \$D/put_drops) \
inactive=\$(cat \$D/puts_inactive 2>/dev/null || echo 0) gets=\$(cat \$D/gets) hits=\$(cat \$D/hits) \
grown=\$(cat \$D/buffers_grown 2>/dev/null || echo 0) high=\$(cat \$D/buffers_high 2>/dev/null || echo 0)"; }
case $workload in
a|b) mk f 48 ;;
c) mk hot 8; mk s 64 ;;
d) mk x 24; mk y 24 ;;
esac
sync; echo 3 > /proc/sys/vm/drop_caches
snap START
case $workload in
a) cat /data/f* > /dev/null; snap MID; cat /data/f* > /dev/null ;;
b) cat /data/f* > /dev/null; sync; echo 3 > /proc/sys/vm/drop_caches; snap MID
   cat /data/f* > /dev/null ;;
c) for p in 1 2 3; do cat /data/hot* > /dev/null; done; cat /data/s* > /dev/null
   snap MID; cat /data/hot* > /dev/null ;;
d) cat /data/x* > /dev/null & cat /data/y* > /dev/null; wait; snap MID
   cat /data/x* > /dev/null & cat /data/y* > /dev/null; wait ;;
esac
snap END
$( [ "$workload" = c ] && echo 'set -- /data/hot*' || echo 'set -- /data/[fxy]*' )
echo PAGES=\$(( \$# * 2048 ))
EOF
}

hog=
cleanup() { [ -n "$hog" ] && kill "$hog" 2>/dev/null; true; }
trap cleanup EXIT
pin=()
if [ $busy = 1 ]; then
	taskset -c 0 bash -c 'while :; do :; done' &
	hog=$!
	pin=(taskset -c 0)
fi

for n in $(seq 1 "$runs"); do
	suffix=
	[ $busy = 1 ] && suffix=-busy
	name=$workload-$config$tag$suffix-$n
	"${pin[@]}" "$top/scripts/tmem-run" --mem 256M --smp $smp --pool-size 512M \
		--swap 0 --data-disk 1G --timeout 1500 ${margs:+--module-args "$margs"} \
		--stats-json "$out/$name.json" -- "$(guest_cmd)" > "$out/$name.log" 2>&1 ||
		{ echo "cleancache-bench.sh: run failed, see $out/$name.log" >&2; exit 1; }
	python3 - "$out/$name.log" "$out/$name.json" "$name" <<'PY'
import json, re, sys
log, js, name = sys.argv[1:]
snaps, pages = {}, 0
for line in open(log, errors="replace"):
    m = re.match(r"(START|MID|END) (.*)", line.strip())
    if m:
        snaps[m.group(1)] = {k: int(v) for k, v in
                             (kv.split("=") for kv in m.group(2).split())}
    m = re.match(r"PAGES=(\d+)", line.strip())
    if m:
        pages = int(m.group(1))
s, m, e = snaps["START"], snaps["MID"], snaps["END"]
st = json.load(open(js))
hits2 = e["hits"] - m["hits"]
puts = e["puts"] - s["puts"]
drops = e["put_drops"] - s["put_drops"]
print(f"| {name} | {100.0 * hits2 / pages:.1f} % ({hits2}/{pages}) "
      f"| {e['sectors'] - m['sectors']} | {puts} | {drops} ({100.0 * drops / max(puts, 1):.2f} %; "
      f"{e['grown'] - s['grown']} buffers added, {e['high']} at most) "
      f"| {e['inactive'] - s['inactive']} | {st['used-bytes'] >> 20} MiB "
      f"({st['ephemeral']['stored-pages']} pages) |")
PY
done
