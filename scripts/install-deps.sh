#!/usr/bin/env bash
# install-deps.sh - install the Debian packages virtio-tmem needs (idempotent).
#
# Adds the apt sources it needs (bookworm-backports for meson >= 1.5), runs
# apt-get update once per day, and installs only what is missing.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/install-deps.sh [--help] [GROUP...]

Install the Debian packages for the named groups (default: all groups).
Groups:
  build   compilers, meson (bookworm-backports), ninja, liblz4-dev, libzstd-dev,
          sanitizer runtimes
  qemu    what QEMU 10 needs to build from Debian's source, and its firmware
  guest   Linux 5.10 source (bullseye) and what building it and a Debian
          root file system needs; qemu-img (the disks of migrating guests)
  libvirt libvirtd, virsh and the QEMU driver (bookworm's libvirt 9.0),
          xmllint; no systemd units are used (see tests/libvirt/run.sh)
  bench   gdb (gcore), python3 and perl for scripts/make-heap-corpus.sh;
          python3-matplotlib for scripts/peer-bench's plots
Idempotent: packages already installed are skipped; apt-get update runs when
a source was added or the lists are older than a day.
USAGE
}

groups=()
for a in "$@"; do
	case "$a" in
	-h|--help) usage; exit 0 ;;
	build|qemu|guest|libvirt|bench) groups+=("$a") ;;
	*) echo "install-deps.sh: unknown group '$a' (see --help)" >&2; exit 2 ;;
	esac
done
[ ${#groups[@]} -gt 0 ] || groups=(build)

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

# Builds and e2e lanes run side by side and each installs what it needs:
# one install-deps at a time, and apt waits for a dpkg lock that some
# other apt holds instead of failing at once.
lockfile=/var/lock/vtmem-install-deps.lock
if [ -z "${VTMEM_DEPS_LOCKED:-}" ]; then
	export VTMEM_DEPS_LOCKED=1
	exec $SUDO env VTMEM_DEPS_LOCKED=1 flock "$lockfile" "$0" "$@"
fi
apt_get() { $SUDO apt-get -o DPkg::Lock::Timeout=900 "$@"; }

need_update=0
add_source() { # name line
	local f=/etc/apt/sources.list.d/$1.list
	if [ ! -f "$f" ] || ! grep -qxF "$2" "$f"; then
		echo "$2" | $SUDO tee -a "$f" >/dev/null
		need_update=1
	fi
}
add_source vtmem-backports "deb http://deb.debian.org/debian bookworm-backports main"
for g in "${groups[@]}"; do
	if [ "$g" = guest ]; then
		# linux-source-5.10 is bullseye's; pin bullseye low so that
		# nothing else comes from it.
		add_source vtmem-bullseye "deb http://deb.debian.org/debian bullseye main"
		if [ ! -f /etc/apt/preferences.d/vtmem-bullseye ]; then
			printf 'Package: *\nPin: release n=bullseye\nPin-Priority: 100\n' |
				$SUDO tee /etc/apt/preferences.d/vtmem-bullseye >/dev/null
		fi
	fi
done

stamp=/var/lib/apt/periodic/vtmem-update-stamp
if [ $need_update = 1 ] || [ ! -f $stamp ] || [ -n "$(find $stamp -mmin +1440 2>/dev/null)" ]; then
	echo "install-deps: apt-get update"
	apt_get update -q >/dev/null
	$SUDO mkdir -p "$(dirname $stamp)" && $SUDO touch $stamp
fi

pkgs=()
bpo_pkgs=()
bullseye_pkgs=()
for g in "${groups[@]}"; do
	case "$g" in
	build)
		pkgs+=(gcc clang libclang-rt-14-dev llvm ninja-build pkg-config
		       liblz4-dev libzstd-dev ccache python3)
		bpo_pkgs+=(meson)
		;;
	guest)
		pkgs+=(gcc make bc flex bison libelf-dev libssl-dev cpio kmod
		       ccache xz-utils lz4 rsync patch debootstrap e2fsprogs qemu-utils)
		bullseye_pkgs+=(linux-source-5.10)
		;;
	qemu)
		pkgs+=(gcc ninja-build pkg-config ccache python3 python3-venv
		       libglib2.0-dev zlib1g-dev libfdt-dev liblz4-dev libzstd-dev bzip2
		       xz-utils dpkg-dev rsync patch seabios ipxe-qemu qemu-system-data)
		bpo_pkgs+=(meson python3-pycotap)
		;;
	bench)
		pkgs+=(gdb python3 perl python3-matplotlib)
		;;
	libvirt)
		pkgs+=(libvirt-daemon libvirt-clients libvirt-daemon-driver-qemu
		       libxml2-utils python3)
		;;
	esac
done

missing() { # pkg... -> prints those not installed
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
	done
}

m=$(missing "${pkgs[@]}")
if [ -n "$m" ]; then
	echo "install-deps: installing" $m
	apt_get install -y -q --no-install-recommends $m >/dev/null
fi
# meson >= 1.5 and pycotap (QEMU 10 needs them) come from bookworm-backports.
bpo_missing=()
for p in $(printf '%s\n' "${bpo_pkgs[@]}" | sort -u); do
	dpkg-query -W -f='${Version}' "$p" 2>/dev/null | grep -q bpo || bpo_missing+=("$p")
done
if [ ${#bpo_missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${bpo_missing[*]} from bookworm-backports"
	apt_get install -y -q --no-install-recommends -t bookworm-backports "${bpo_missing[@]}" >/dev/null
fi
if [ ${#bullseye_pkgs[@]} -gt 0 ]; then
	m=$(missing "${bullseye_pkgs[@]}")
	if [ -n "$m" ]; then
		echo "install-deps: installing" $m "from bullseye"
		apt_get install -y -q --no-install-recommends -t bullseye $m >/dev/null
	fi
fi
echo "install-deps: ok (${groups[*]})"
