#!/usr/bin/env bash
# make-heap-corpus.sh - core images of real programs with realistic heaps,
# as a corpus for tmem-pool-bench (what swap holds is process memory, not
# file contents).
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/make-heap-corpus.sh [--help] [--mib N] OUTDIR

Starts three programs that build heaps the way real ones do, lets each grow
to about N MiB (default 64), dumps its memory with gdb's gcore into OUTDIR
and stops it:
  python  a list of dicts (records: names, ints, floats, short lists) and
          the JSON text of part of them, as a web service's cache holds
  perl    a hash of arrays built from the words of /usr/share text files,
          with counters, as a log or text indexer holds
  sort    GNU sort holding lines of generated CSV in its buffers
Then run: tmem-pool-bench --corpus OUTDIR
The cores hold each process's writable memory (heap, stacks, anonymous
mappings, the data of its libraries), not the read-only text of its files.
USAGE
}

mib=64
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help) usage; exit 0 ;;
	--mib) mib=${2:?--mib needs a value}; shift 2 ;;
	-*) echo "make-heap-corpus.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { usage >&2; exit 2; }
case "$mib" in ''|*[!0-9]*) echo "make-heap-corpus.sh: --mib $mib: not a number" >&2; exit 2 ;; esac
out=$1
top=$(cd "$(dirname "$0")/.." && pwd)
"$top"/scripts/install-deps.sh bench
mkdir -p "$out"

# Waits until PID's resident set reaches the target (or it becomes ready).
wait_rss() { # pid
	local kb=$((mib * 1024)) rss i
	for i in $(seq 600); do
		rss=$(awk '/^VmRSS/ {print $2}' /proc/"$1"/status 2>/dev/null || echo 0)
		[ "${rss:-0}" -ge "$kb" ] && return 0
		[ -e /proc/"$1" ] || return 1
		sleep 0.2
	done
	return 0
}

dump() { # name pid
	wait_rss "$2" || { echo "make-heap-corpus.sh: $1 exited early" >&2; exit 1; }
	sleep 0.5
	echo "make-heap-corpus: dumping $1 (pid $2, $(awk '/^VmRSS/ {print $2}' /proc/"$2"/status) KiB resident)" >&2
	gcore -o "$out/$1" "$2" >/dev/null 2>&1 ||
		{ echo "make-heap-corpus.sh: gcore of $1 failed" >&2; kill "$2"; exit 1; }
	kill "$2" 2>/dev/null || true
	wait "$2" 2>/dev/null || true
}

python3 - "$mib" <<'PY' &
import json, random, sys, time
random.seed(1)
mib = int(sys.argv[1])
syl = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "bo", "den", "ar", "el", "vin"]
def word():
    return "".join(random.choice(syl) for _ in range(random.randint(2, 4)))
records, text = [], []
while sum(len(t) for t in text) < mib * 1024 * 1024 // 4 or len(records) < mib * 2000:
    r = {"id": len(records), "name": word().title() + " " + word().title(),
         "email": word() + "@" + word() + ".example", "age": random.randint(18, 90),
         "score": random.random() * 100, "tags": [word() for _ in range(random.randint(0, 5))],
         "active": random.random() < 0.8}
    records.append(r)
    if len(records) % 8 == 0:
        text.append(json.dumps(r))
time.sleep(3600)
PY
dump python $!

perl -e '
	my $mib = shift; my %idx; my $n = 0;
	my @files = grep { -f } glob("/usr/share/doc/*/copyright /usr/share/common-licenses/*");
	while (1) {
		for my $f (@files) {
			open(my $h, "<", $f) or next;
			while (<$h>) {
				for my $w (split /\W+/) {
					next unless length $w;
					push @{$idx{lc $w}}, $n++;
				}
			}
			close $h;
		}
		last if $n > $mib * 40000;
		@files = (@files) x 1;
	}
	sleep 3600;' "$mib" &
dump perl $!

python3 -c '
import random, sys
random.seed(2)
for i in range(int(sys.argv[1]) * 24000):
    print("%d,%s,%08.3f,%s" % (random.randint(0, 10**9),
          random.choice(["GET", "PUT", "POST", "DELETE"]), random.random() * 1e4,
          "".join(random.choice("abcdefghij") for _ in range(random.randint(8, 40)))))
' "$mib" 2>/dev/null | sort -S "$((mib * 2))M" --parallel=1 -t, -k3 > /dev/null &
sleep 1
dump sort "$(pgrep -n -x sort)"

ls -l "$out" >&2
