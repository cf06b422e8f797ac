# lib.sh - helpers shared by the build scripts and the test runners.
# Source it after setting $prog (the name messages start with):
#     prog=build-qemu; . "$(dirname "$0")/lib.sh"
# Defines $top (the repository) and $cache ($VTMEM_CACHE, by default
# ~/.cache/virtio-tmem).

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${VTMEM_CACHE:-$HOME/.cache/virtio-tmem}

log() { echo "${prog:-vtmem}: $*"; }
die() { echo "${prog:-vtmem}: $*" >&2; exit 1; }

# Copy a file only when its contents differ, so that an unchanged file
# keeps its mtime and make/ninja rebuild nothing for it.
copy_if_changed() { # from to
	if ! cmp -s "$1" "$2"; then
		mkdir -p "$(dirname "$2")"
		cp "$1" "$2"
	fi
}

# Hold an exclusive lock on FILE (fd 9) until the script exits: one build
# of a tree at a time, as e2e scenarios run side by side.
lock_or_wait() { # file
	mkdir -p "$(dirname "$1")"
	exec 9>"$1"
	flock 9
}

# ---- test runners: TAP-like lines and one summary line ---------------------
# A runner sets $suite, calls ok/nok/check, and ends with finish, which
# prints '$suite: N passed, M failed' (the line scripts/test.sh counts).
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
nok() { fail=$((fail + 1)); echo "not ok - $1"; }
check() { # description, condition (shell expression)
	if eval "$2"; then ok "$1"; else nok "$1 [$2]"; fi
}
# A value the guest printed as 'KEY=value' on its console.
gval() { # log, key
	grep -a -m1 "^$2=" "$1" | cut -d= -f2 | tr -d '\r'
}
summary() { echo "${suite:-test}: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; }
