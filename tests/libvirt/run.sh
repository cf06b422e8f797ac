#!/usr/bin/env bash
# run.sh - virtio-tmem through libvirt: the schema and the tool, then a
# guest defined, started and stopped by a real libvirtd.
#
# Usage: tests/libvirt/run.sh [--help] [--schema-only]
# Needs root (libvirtd in system mode, no systemd: it is started here and
# stopped by pid afterwards).  Sets up what libvirt-daemon-system would:
# the libvirt-qemu user, kvm group, directories, and a qemu.conf block
# (user/group root, no security driver, QEMU's output to a file).
# Ends with 'libvirt: N passed, M failed'.
set -uo pipefail

prog=libvirt suite=libvirt
. "$(dirname "$0")/../../scripts/lib.sh"
tool=$top/libvirt-xml/vtmem-libvirt
example=$top/libvirt-xml/examples/vtmem-guest.xml
work=$(mktemp -d /tmp/vtmem-libvirt.XXXXXX)
dom=vtmem-test-$$
schema_only=0
for a in "$@"; do
	case "$a" in
	-h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	--schema-only) schema_only=1 ;;
	*) echo "run.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
	esac
done

finish() { echo "# work files in $work"; summary; exit; }

# ---- schema and tool ------------------------------------------------------

# libvirt's own schemas (domain.rng, which the tool validates against) and
# xmllint come with these packages: install them before the first check.
"$top/scripts/install-deps.sh" libvirt >/dev/null || {
	nok "libvirt packages (scripts/install-deps.sh libvirt)"
	finish
}

check "the example validates" "'$tool' validate '$example' >/dev/null 2>&1"
"$tool" apply "$example" --emulator /usr/bin/qemu-system-x86_64 -o "$work/applied.xml" 2>"$work/apply.err"
check "apply writes the -device entry" \
	"grep -q '&quot;driver&quot;:&quot;virtio-tmem-pci&quot;' '$work/applied.xml'"
check "apply picks a free slot on the root bus" \
	"grep -q 'addr&quot;:&quot;0x1e&quot;' '$work/applied.xml'"
check "the applied example validates" "'$tool' validate '$work/applied.xml' >/dev/null 2>&1"
check "xmllint alone accepts it (virtio-tmem.rng)" \
	"xmllint --noout --relaxng '$top/libvirt-xml/virtio-tmem.rng' '$work/applied.xml' 2>/dev/null"

# bad entries: NAME | sed expression | expected words (metadata cases edit
# the example, json cases the applied example)
bad_cases() {
	cat <<'EOF'
metadata typo|s/ size='32M'/ sise='32M'/|'sise' is not a virtio-tmem-pci property (did you mean 'size'?)
metadata bad size|s/ size='32M'/ size='32X'/|size=32X: not a size
metadata size too small|s/ size='32M'/ size='512K'/|size=512K: must be between 1M and 32G
metadata watermarks|s/ num-queues='1'/ writeback-high='50' writeback-low='60'/|writeback-low=60 must be below writeback-high=50
metadata zstd level|s/ num-queues='1'/ compressor='zstd' zstd-level='23'/|zstd-level=23: must be between 1 and 22
metadata relative image|s#swap-image='/var/lib/virtio-tmem/vtmem-guest.swapimg'#swap-image='vm.img'#|swap-image=vm.img: must be an absolute path
json typo|s/&quot;size&quot;:/\&quot;sise\&quot;:/|'sise' is not a virtio-tmem-pci property
json size as text|s/&quot;size&quot;:33554432/\&quot;size\&quot;:\&quot;32M\&quot;/|must be a JSON number
json bad slot|s/&quot;addr&quot;:&quot;0x1e&quot;/\&quot;addr\&quot;:\&quot;0x3g\&quot;/|addr=0x3g: must be a PCI slot
json key=value form|s/value="{&quot;driver[^"]*"/value="virtio-tmem-pci,id=tmem0,size=32M"/|must be given as JSON
json image size|s/&quot;swap-image-size&quot;:1073741824/\&quot;swap-image-size\&quot;:1000/|swap-image-size=1000: must be between 1M and 1T
EOF
}
while IFS='|' read -r name expr words; do
	f=$work/bad-${name// /-}.xml
	base=$work/applied.xml
	[ "${name%% *}" = metadata ] && base=$example
	sed "$expr" "$base" > "$f"
	if cmp -s "$f" "$base"; then
		nok "bad entry '$name': the test's edit did not apply"
		continue
	fi
	out=$("$tool" validate "$f" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && grep -qF -- "$words" <<<"$out"; then
		ok "bad entry '$name' refused: $(grep -F -- "$words" <<<"$out" | head -1 | sed 's/.*vtmem-libvirt: [^:]*: //' | cut -c1-110)"
	else
		nok "bad entry '$name' (rc $rc): $out"
	fi
done < <(bad_cases)
# what only the schema sees: an unknown property in the JSON
sed 's/&quot;size&quot;:/\&quot;sise\&quot;:/' "$work/applied.xml" > "$work/bad-schema.xml"
check "the schema alone refuses an unknown JSON property" \
	"! xmllint --noout --relaxng '$top/libvirt-xml/virtio-tmem.rng' '$work/bad-schema.xml' 2>/dev/null"
check "apply refuses a bad description" \
	"! '$tool' apply '$example' --device 'size=32M,num-queues=0' -o /dev/null 2>'$work/e' && grep -q 'num-queues=0: must be between 1 and 64' '$work/e'"
sed "s/ num-queues='1'/ compressor='zstd' zstd-level='1'/" "$example" > "$work/zstd.xml"
"$tool" apply "$work/zstd.xml" --emulator /usr/bin/qemu-system-x86_64 -o "$work/zstd-applied.xml" 2>>"$work/apply.err"
check "compressor=zstd: the description and the applied entry validate" \
	"'$tool' validate '$work/zstd.xml' >/dev/null 2>&1 && xmllint --noout --relaxng '$top/libvirt-xml/virtio-tmem.rng' '$work/zstd-applied.xml' 2>/dev/null"
check "zstd and its level pass through" \
	"[ \"\$('$tool' json --device 'id=tmem1,size=8M,compressor=zstd,zstd-level=1')\" = '{\"driver\":\"virtio-tmem-pci\",\"id\":\"tmem1\",\"bus\":\"pci.0\",\"size\":8388608,\"compressor\":\"zstd\",\"zstd-level\":1}' ]"
check "json prints the device for device_add" \
	"[ \"\$('$tool' json --device 'id=tmem1,addr=0x1d,size=8M')\" = '{\"driver\":\"virtio-tmem-pci\",\"id\":\"tmem1\",\"bus\":\"pci.0\",\"addr\":\"0x1d\",\"size\":8388608}' ]"

[ $schema_only = 1 ] && finish

# ---- a real libvirtd -------------------------------------------------------

if [ "$(id -u)" -ne 0 ]; then
	nok "libvirtd: needs root (system mode); run with --schema-only otherwise"
	finish
fi
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
	useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/cache/libvirt/qemu /run/libvirt
conf=/etc/libvirt/qemu.conf
if ! grep -q '^# virtio-tmem: begin' "$conf" 2>/dev/null; then
	cat >> "$conf" <<'EOF'
# virtio-tmem: begin (tests/libvirt/run.sh: no systemd, no virtlogd)
user = "root"
group = "root"
security_driver = "none"
stdio_handler = "file"
# virtio-tmem: end
EOF
fi

virsh() { command virsh -q -c qemu:///system "$@"; }
pidfile=$work/libvirtd.pid
cleanup() {
	virsh destroy "$dom" >/dev/null 2>&1
	virsh undefine "$dom" >/dev/null 2>&1
	local pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	kill "$pid" 2>/dev/null
	for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
	kill -9 "$pid" 2>/dev/null
}
trap cleanup EXIT
if virsh list --all >/dev/null 2>&1; then
	echo "# using the libvirtd already running"
else
	libvirtd --daemon --pid-file "$pidfile" || { nok "libvirtd starts"; finish; }
	for _ in $(seq 1 50); do virsh list --all >/dev/null 2>&1 && break; sleep 0.2; done
fi
check "libvirtd answers" "virsh list --all >/dev/null 2>&1"

# the guest: push verified data out to the pool and hold it; the host saves
# the domain to a file and restores it (virsh save / restore) and tells
# the guest through a read-only control disk (tests/guest/migwait.c); the
# data verifies; report, wait for the host to read the device's
# statistics, then power off
t0=$SECONDS
guest=$work/guest
"$top/scripts/tmem-run" --prepare "$guest" -- '
	memhog --mib 320 --verify-passes 1 --ready-file /tmp/r --hold-file /tmp/go &
	H=$!
	while [ ! -f /tmp/r ]; do sleep 0.2; done
	echo HELD=$(cat /sys/kernel/debug/virtio_tmem/frontswap_pages)
	echo SAVE-NOW
	echo RESTORED=$(migwait 1)
	touch /tmp/go; wait $H; rc=$?
	echo MEMHOG_RC=$rc
	echo SUCC_STORES=$(cat /sys/kernel/debug/frontswap/succ_stores)
	echo LOST=$(cat /sys/kernel/debug/virtio_tmem/lost_pages)
	echo WORKLOAD-DONE
	sleep 20
	hardreboot --poweroff' > "$work/prepare.log" 2>&1 || { nok "guest prepared"; finish; }
echo "# guest prepared: $((SECONDS - t0))s"
cp --sparse=always "$(python3 -c "import json; print(json.load(open('$guest/guest.json'))['rootfs'])")" \
	"$work/rootfs.img"
python3 - "$example" "$guest/guest.json" "$work" "$dom" > "$work/domain-meta.xml" <<'EOF'
import json, sys
text, g, work, name = open(sys.argv[1]).read(), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4]
for old, new in (("<name>vtmem-guest</name>", f"<name>{name}</name>"),
                 ("/var/lib/virtio-tmem/bzImage", g["kernel"]),
                 ("/var/lib/virtio-tmem/rootfs.img", f"{work}/rootfs.img"),
                 ("/var/lib/virtio-tmem/job.img", g["job"]),
                 ("/var/lib/virtio-tmem/swap.img", g["swap"]),
                 ("/var/lib/virtio-tmem/", f"{work}/")):
    text = text.replace(old, new)
# the console survives a restore; the control disk the guest polls
text = text.replace("<source path='%s/console.log'/>" % work,
                    "<source path='%s/console.log' append='on'/>" % work)
text = text.replace("    <serial type='file'>", f"""    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{work}/ctl.img'/>
      <target dev='vdz' bus='virtio'/>
      <readonly/>
      <serial>vtmem-ctl</serial>
    </disk>
    <serial type='file'>""")
print(text, end="")
EOF
truncate -s 4096 "$work/ctl.img"
qemu=$(python3 -c "import json; print(json.load(open('$guest/guest.json'))['qemu'])")
"$tool" apply "$work/domain-meta.xml" --emulator "$qemu" -o "$work/domain.xml"
check "the test domain validates" "'$tool' validate '$work/domain.xml' >/dev/null"
check "virsh define" "virsh define '$work/domain.xml' >/dev/null"
check "libvirt kept <tmem:device> in <metadata>" \
	"virsh dumpxml '$dom' | grep -q 'tmem:device'"
virsh domxml-to-native qemu-argv --domain "$dom" > "$work/argv.txt" 2>&1
check "domxml-to-native shows the device" "grep -q 'virtio-tmem-pci' '$work/argv.txt'"
check "libvirt's own devices stay off the device's slot" \
	"! virsh dumpxml '$dom' | grep -q \"slot='0x1e'\""
t0=$SECONDS
check "virsh start" "virsh start '$dom' >/dev/null"
console=$work/console.log
wait_console() { # line
	for _ in $(seq 1 900); do
		grep -qa "^$1" "$console" 2>/dev/null && return 0
		virsh domstate "$dom" 2>/dev/null | grep -q running || return 1
		sleep 1
	done
	return 1
}
wait_console SAVE-NOW
held=$(gval "$console" HELD)
check "the guest held its data in the pool ($held pages)" "[ '${held:-0}' -gt 1000 ] 2>/dev/null"
check "virsh save" "virsh save '$dom' '$work/saved.img' >/dev/null 2>'$work/save.err'"
check "the domain is off after the save ($(virsh domstate "$dom" 2>&1))" \
	"virsh domstate '$dom' 2>&1 | grep -q 'shut off'"
check "virsh restore" "virsh restore '$work/saved.img' >/dev/null 2>'$work/restore.err'"
printf 'VTMEM-MIGRATED 1 restored\n' | dd of="$work/ctl.img" conv=notrunc,fsync status=none
wait_console WORKLOAD-DONE
echo "# guest workload: $((SECONDS - t0))s"
check "the guest went on after the restore ($(gval "$console" RESTORED))" \
	"[ '$(gval "$console" RESTORED)' = restored ]"
check "the guest ran its swap workload (0 bad pages)" "[ '$(gval "$console" MEMHOG_RC)' = 0 ]"
succ=$(gval "$console" SUCC_STORES)
check "frontswap stores went to virtio-tmem ($succ)" "[ '${succ:-0}' -gt 0 ] 2>/dev/null"
check "no acknowledged page lost" "[ '$(gval "$console" LOST)' = 0 ]"
virsh qemu-monitor-command "$dom" \
	'{"execute":"qom-get","arguments":{"path":"/machine/peripheral/tmem0","property":"stats"}}' \
	> "$work/stats.json" 2>&1
jq_() { python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['return']; print($1)" "$work/stats.json" 2>/dev/null; }
check "stats through virsh qemu-monitor-command: puts $(jq_ "s['persistent']['puts']"), gets $(jq_ "s['persistent']['gets']")" \
	"[ '$(jq_ "int(s['persistent']['puts'] > 0 and s['persistent']['gets'] > 0)")' = 1 ]"
check "the swap image is in the stats" "[ '$(jq_ "int('swap-image' in s)")' = 1 ]"
# resize through the monitor passthrough, as docs/libvirt.md says: QMP
# qom-set to 16 MiB, read back; HMP qom-set back to 32 MiB, read back
qom_size() {
	virsh qemu-monitor-command "$dom" \
		'{"execute":"qom-get","arguments":{"path":"/machine/peripheral/tmem0","property":"size"}}' |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["return"])' 2>/dev/null
}
virsh qemu-monitor-command "$dom" \
	'{"execute":"qom-set","arguments":{"path":"/machine/peripheral/tmem0","property":"size","value":16777216}}' \
	> "$work/resize.json" 2>&1
check "resize: qom-set size 16M through virsh qemu-monitor-command ($(qom_size))" \
	"grep -q '\"return\":{}' '$work/resize.json' && [ '$(qom_size)' = 16777216 ]"
virsh qemu-monitor-command "$dom" --hmp 'qom-set /machine/peripheral/tmem0 size 32M' \
	> "$work/resize-hmp.txt" 2>&1
check "resize: HMP qom-set back to 32M ($(qom_size))" "[ '$(qom_size)' = 33554432 ]"
# hot-plug a second device through libvirt's monitor passthrough
hp=$("$tool" json --device 'id=tmem1,addr=0x1d,size=8M')
virsh qemu-monitor-command "$dom" "{\"execute\":\"device_add\",\"arguments\":$hp}" > "$work/hotplug.json" 2>&1
check "hot-plug with device_add through virsh" "grep -q '\"return\":{}' '$work/hotplug.json'"
virsh qemu-monitor-command "$dom" \
	'{"execute":"qom-get","arguments":{"path":"/machine/peripheral/tmem1","property":"stats"}}' \
	> "$work/stats1.json" 2>&1
check "the hot-plugged device answers qom-get" "grep -q 'limit-bytes\":8388608' '$work/stats1.json'"
for _ in $(seq 1 120); do
	virsh domstate "$dom" 2>/dev/null | grep -q 'shut off' && break
	sleep 1
done
check "the guest shut down cleanly ($(virsh domstate --reason "$dom" 2>&1))" \
	"virsh domstate --reason '$dom' 2>&1 | grep -q 'shut off (shutdown)'"
check "virsh undefine" "virsh undefine '$dom' >/dev/null"
finish
