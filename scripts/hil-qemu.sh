#!/usr/bin/env bash
# hil-qemu.sh: the GPIO path of tapwatch on an emulated Raspberry Pi, with
# no hardware: tapwatch's arm64 build drives the LEDs and relays and reads
# the button of a BCM2835 GPIO block that qemu emulates and Debian's own
# arm64 kernel drives, and a harness checks from the kernel's side what the
# pins hold.
#
#   scripts/hil-qemu.sh [--dut auto|tapwatch|ledprobe] [--selftest] [--keep]
#
#   --dut       the program under test: tapwatch ("tapwatch leds"), or
#               ledprobe (scripts/hil/ledprobe: periph alone, the same LED
#               pins, no button: the leds boot only); auto (the default)
#               takes tapwatch when it has the leds command
#   --selftest  also boot once with a deliberately buggy ledprobe (leaves
#               the LEDs on) and require the harness to report FAIL
#   --keep      keep the work folder (initramfs, plans, console logs)
#
# Exit status: 0 when every boot reports PASS, 1 otherwise, 2 on a usage
# error.
#
# How: qemu-system-aarch64 -M raspi3b (qemu's Raspberry Pi 3B: BCM2837, its
# GPIO block included) boots Debian bookworm's arm64 kernel (the package
# linux-image-arm64 depends on) with its bcm2837-rpi-3-b.dtb, whose
# gpio-line-names name the header's lines as on every Pi (GPIO17, ...), so
# periph's gpioioctl driver registers them by those names, and its bcm283x
# driver wraps them as on a real Pi. The initramfs holds
# scripts/hil/init as /init (PID 1), the program under test, the
# bcm2835_wdt module (power-off) and a plan (see scripts/hil/init/main.go).
# Two boots:
#
#   leds    the kernel as Debian ships it. Checks: the pattern
#           run=on,link=off,uplink=on,alert=on,alarm=on shows as GPIO17=1
#           GPIO27=0 GPIO22=1 GPIO23=1 GPIO16=1 GPIO25=0 while it runs, the
#           program exits 0, and every one of those lines is 0 after it.
#   button  the same, plus a press of the button: GPIO24 held at 1 (its
#           pull-up level), then 0 for 300 ms, which tapwatch must report
#           as "button pressed (1)". The harness drives the pin through the
#           GPIO block's registers, so this boot adds iomem=relaxed to the
#           kernel command line to open them to /dev/mem.
#
# In both, periph drives the lines through the GPIO character device (the
# console shows them held by tapwatch@PID): its bcm283x driver, which would
# map the registers, stops short on this device tree ("can't register alias
# PWM0_OUT"), and on a Debian kernel /dev/mem is closed to them anyway. The
# register path periph takes through /dev/gpiomem on Raspberry Pi OS is not
# covered.
#
# Why not gpio-sim: Debian's arm64 kernels (bookworm 6.1, and bookworm-
# backports 6.12) are built without CONFIG_GPIO_SIM (and without
# CONFIG_GPIO_MOCKUP and IRQ_SIM), so there is no gpio-sim module to load.
#
# The machine is shared: qemu's raspi3b always has four cores, so the
# kernel is told maxcpus=1 and qemu runs TCG on one host thread
# (-accel tcg,thread=single): one host core at most.
#
# The first run needs root (or qemu-system-arm installed already and a
# filled cache): it installs qemu-system-arm with apt-get when missing, and
# downloads the kernel package into the cache with apt-get, using the
# machine's apt sources for arm64 with lists of its own under the cache (the
# system's apt configuration and dpkg architectures are left alone). Later
# runs reuse the cache and need no network.
#
# Environment: TAPWATCH_HIL_CACHE (default /var/cache/tapwatch-hil),
# TAPWATCH_HIL_KERNEL (a linux-image-*-arm64 package name, in place of the
# one linux-image-arm64 depends on), TAPWATCH_HIL_TIMEOUT (seconds per boot,
# default 240), GO (go).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HIL=$ROOT/scripts/hil
CACHE=${TAPWATCH_HIL_CACHE:-/var/cache/tapwatch-hil}
TIMEOUT=${TAPWATCH_HIL_TIMEOUT:-240}
GO=${GO:-go}
DTB_NAME=bcm2837-rpi-3-b.dtb
CMDLINE="console=ttyAMA0 loglevel=3 maxcpus=1 panic=-1"

say() { printf 'hil-qemu: %s\n' "$*"; }
die() { printf 'hil-qemu: %s\n' "$*" >&2; exit 1; }
usage() { # exit status
	sed -n '2,/^# error\.$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit "${1:-2}"
}

DUT=auto
SELFTEST=0
KEEP=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--dut) [[ $# -ge 2 ]] || usage; DUT=$2; shift 2 ;;
	--dut=*) DUT=${1#--dut=}; shift ;;
	--selftest) SELFTEST=1; shift ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage 0 ;;
	*) printf 'hil-qemu: unknown argument %s\n' "$1" >&2; usage ;;
	esac
done
case $DUT in auto | tapwatch | ledprobe) ;; *) printf 'hil-qemu: --dut: want auto, tapwatch or ledprobe\n' >&2; usage ;; esac

T0=$SECONDS
elapsed() { echo "$((SECONDS - T0))s"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tapwatch-hil.XXXXXX")
QPID= # the qemu running, if any
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [[ -n $QPID ]]; then
		kill "$QPID" 2>/dev/null || true
	fi
	if [[ $KEEP -eq 1 ]]; then
		say "work folder kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- qemu -----------------------------------------------------------------

need_qemu() {
	command -v qemu-system-aarch64 >/dev/null 2>&1 && return
	[[ $(id -u) -eq 0 ]] || die "qemu-system-aarch64 is missing: apt-get install --no-install-recommends qemu-system-arm (as root)"
	say "installing qemu-system-arm (provides qemu-system-aarch64)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-arm >"$WORK/apt-qemu.log" 2>&1 ||
		{ tail -20 "$WORK/apt-qemu.log" >&2; die "apt-get install qemu-system-arm failed (run apt-get update first?)"; }
}

# --- the kernel -----------------------------------------------------------
# $CACHE/kernel holds the unpacked package; $CACHE/kernel/.package names it.

KTREE=$CACHE/kernel

apt_arm64() { # apt-get or apt-cache, then its arguments
	local tool=$1
	shift
	"$tool" -o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
		-o Dir::State::Lists="$CACHE/apt/lists" -o Dir::State::status="$CACHE/apt/status" \
		-o Dir::Cache="$CACHE/apt/cache" -o Dir::Cache::archives="$CACHE/debs" \
		-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
		-o APT::Sandbox::User=root -o Debug::NoLocking=1 "$@"
}

kernel_ready() { [[ -f $KTREE/.package ]]; }

fetch_kernel() {
	if kernel_ready; then
		say "kernel: $(cat "$KTREE/.package") (cached in $KTREE)"
		return
	fi
	command -v apt-get >/dev/null 2>&1 || die "no kernel in $KTREE and no apt-get to fetch one"
	[[ $(id -u) -eq 0 ]] || die "no kernel in $KTREE yet: run once as root to fetch it (or set TAPWATCH_HIL_CACHE)"
	mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache" "$CACHE/debs/partial"
	: >"$CACHE/apt/status"
	say "kernel: reading the arm64 package lists of this machine's apt sources"
	apt_arm64 apt-get update >"$WORK/apt-update.log" 2>&1 ||
		{ tail -20 "$WORK/apt-update.log" >&2; die "apt-get update (arm64 lists) failed"; }
	local pkg=${TAPWATCH_HIL_KERNEL:-}
	if [[ -z $pkg ]]; then
		pkg=$(apt_arm64 apt-cache depends linux-image-arm64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
		[[ -n $pkg ]] || die "linux-image-arm64 depends on no linux-image package?"
	fi
	say "kernel: downloading $pkg"
	(cd "$CACHE/debs" && apt_arm64 apt-get download "$pkg:arm64") >"$WORK/apt-download.log" 2>&1 ||
		{ tail -20 "$WORK/apt-download.log" >&2; die "apt-get download $pkg failed"; }
	local debs=("$CACHE/debs/${pkg}_"*_arm64.deb) deb
	deb=${debs[-1]}
	[[ -f $deb ]] || die "apt-get download left no ${pkg}_*_arm64.deb in $CACHE/debs"
	rm -rf "$KTREE.tmp"
	mkdir -p "$KTREE.tmp"
	dpkg-deb -x "$deb" "$KTREE.tmp"
	printf '%s %s\n' "$pkg" "$(dpkg-deb -f "$deb" Version)" >"$KTREE.tmp/.package"
	rm -rf "$KTREE"
	mv "$KTREE.tmp" "$KTREE"
	say "kernel: $(cat "$KTREE/.package") unpacked in $KTREE ($(du -h "$deb" | cut -f1) downloaded)"
}

kernel_files() { # sets KVER VMLINUZ DTB MODDIR CONFIG
	local images=("$KTREE"/boot/vmlinuz-*)
	VMLINUZ=${images[0]}
	[[ -f $VMLINUZ ]] || die "no boot/vmlinuz-* in $KTREE (remove it to fetch again)"
	KVER=${VMLINUZ##*/vmlinuz-}
	CONFIG=$KTREE/boot/config-$KVER
	MODDIR=$KTREE/lib/modules/$KVER
	DTB=$KTREE/usr/lib/linux-image-$KVER/broadcom/$DTB_NAME
	[[ -f $DTB ]] || die "no $DTB_NAME in the kernel package ($DTB)"
	local opt
	for opt in CONFIG_ARCH_BCM2835=y CONFIG_PINCTRL_BCM2835=y CONFIG_GPIO_CDEV=y CONFIG_DEBUG_FS=y CONFIG_SERIAL_AMBA_PL011_CONSOLE=y CONFIG_BLK_DEV_INITRD=y CONFIG_RD_GZIP=y; do
		grep -qx "$opt" "$CONFIG" || die "$KVER is not built with $opt"
	done
	if grep -qE '^CONFIG_GPIO_SIM=[ym]' "$CONFIG"; then
		say "note: $KVER has gpio-sim (CONFIG_GPIO_SIM); this script does not use it yet"
	fi
}

# --- the programs ---------------------------------------------------------

build() {
	say "building the harness and ledprobe (linux/arm64, static) and the host tools"
	mkdir -p "$WORK/bin"
	(
		cd "$HIL"
		CGO_ENABLED=0 GOOS=linux GOARCH=arm64 "$GO" build -trimpath -ldflags=-s -o "$WORK/bin/" ./init ./ledprobe
		"$GO" build -o "$WORK/bin/" ./mkinitramfs ./kmoddeps
	)
	if [[ $DUT == auto ]]; then
		if (cd "$ROOT" && "$GO" run ./cmd/tapwatch help leds >/dev/null 2>&1); then
			DUT=tapwatch
		else
			DUT=ledprobe
			say "tapwatch has no leds command: testing with ledprobe"
		fi
	fi
	if [[ $DUT == tapwatch ]]; then
		say "building tapwatch (linux/arm64, static)"
		(cd "$ROOT" && CGO_ENABLED=0 GOOS=linux GOARCH=arm64 "$GO" build -trimpath -ldflags=-s -o "$WORK/bin/tapwatch" ./cmd/tapwatch)
	fi
}

# --- one boot -------------------------------------------------------------

# boot NAME EXTRA_CMDLINE: boots with $WORK/NAME.plan and the programs; sets
# VERDICT to PASS or FAIL.
boot() {
	local name=$1 extra=$2 plan=$WORK/$1.plan log=$WORK/$1.log initrd=$WORK/$1.cpio.gz
	local entries=(dir:/dev chr:/dev/console=5:1 dir:/proc dir:/sys dir:/bin dir:/hil dir:/lib dir:/lib/modules
		"file:/init=$WORK/bin/init" "file:/bin/ledprobe=$WORK/bin/ledprobe" "file:/hil/plan=$plan")
	[[ -f $WORK/bin/tapwatch ]] && entries+=("file:/bin/tapwatch=$WORK/bin/tapwatch")
	# The modules first, dependencies before what needs them.
	local mods=() m
	mapfile -t mods < <("$WORK/bin/kmoddeps" "$MODDIR" bcm2835_wdt)
	for m in "${mods[@]}"; do
		entries+=("file:/lib/modules/${m##*/}=$MODDIR/$m")
		echo "module /lib/modules/${m##*/}"
	done >"$plan.full"
	cat "$plan" >>"$plan.full"
	mv "$plan.full" "$plan"
	"$WORK/bin/mkinitramfs" -o "$initrd" "${entries[@]}"

	say "boot $name: $(grep -m1 '^run ' "$plan" | cut -d' ' -f2-)"
	local t=$SECONDS
	qemu-system-aarch64 -M raspi3b -m 1G -accel tcg,thread=single -nographic -no-reboot \
		-kernel "$VMLINUZ" -dtb "$DTB" -initrd "$initrd" -append "$CMDLINE $extra" \
		</dev/null >"$log" 2>&1 &
	QPID=$!
	local seen=
	# qemu exits when the harness powers off; should power-off fail, stop
	# it a few seconds after the result line, and in any case at TIMEOUT.
	while kill -0 "$QPID" 2>/dev/null; do
		if [[ -z $seen ]] && grep -q '^HIL RESULT: ' "$log"; then
			seen=$SECONDS
		fi
		if { [[ -n $seen ]] && ((SECONDS - seen > 10)); } || ((SECONDS - t > TIMEOUT)); then
			kill "$QPID" 2>/dev/null || true
			break
		fi
		sleep 0.5
	done
	wait "$QPID" 2>/dev/null || true
	QPID=
	sed -n '/^hil: /p; /^HIL RESULT/p' "$log" | sed 's/^/    /'
	if grep -qx 'HIL RESULT: PASS' <(tr -d '\r' <"$log"); then
		VERDICT=PASS
	else
		VERDICT=FAIL
		if ! grep -q '^HIL RESULT: ' "$log"; then
			say "boot $name: no result after $((SECONDS - t))s; the end of the console:"
			tail -25 "$log" | sed 's/^/    /'
		fi
	fi
	say "boot $name: $VERDICT in $((SECONDS - t))s"
}

# --- the plans ------------------------------------------------------------

LEDS=(GPIO17 GPIO27 GPIO22 GPIO23)
all_off() { local l out=; for l in "$@"; do out+=" $l=0"; done; echo "after$out"; }

write_plans() {
	if [[ $DUT == tapwatch ]]; then
		local show="tapwatch leds --board pi4 --show run=on,link=off,uplink=on,alert=on,alarm=on --for 4s"
		cat >"$WORK/leds.plan" <<-EOF
			run /bin/$show
			while GPIO17=1 GPIO27=0 GPIO22=1 GPIO23=1 GPIO16=1 GPIO25=0
			output board pi4;
			$(all_off "${LEDS[@]}" GPIO16 GPIO25)
		EOF
		cat >"$WORK/button.plan" <<-EOF
			set GPIO24=1
			run /bin/$show
			while GPIO17=1 GPIO27=0 GPIO22=1 GPIO23=1 GPIO16=1 GPIO25=0
			press GPIO24=0 300ms
			output button pressed (1)
			$(all_off "${LEDS[@]}" GPIO16 GPIO25)
		EOF
	else
		# ledprobe has no button: one boot.
		cat >"$WORK/leds.plan" <<-EOF
			run /bin/ledprobe --show run=on,link=off,uplink=on,alert=on --for 3s
			while GPIO17=1 GPIO27=0 GPIO22=1 GPIO23=1
			output ledprobe: all LEDs off
			$(all_off "${LEDS[@]}")
		EOF
	fi
	cat >"$WORK/selftest.plan" <<-EOF
		run /bin/ledprobe --show run=on,link=off,uplink=on,alert=on --for 2s --leave-on
		while GPIO17=1 GPIO27=0 GPIO22=1 GPIO23=1
		$(all_off "${LEDS[@]}")
	EOF
}

# --- main -----------------------------------------------------------------

need_qemu
fetch_kernel
kernel_files
build
write_plans
say "ready after $(elapsed): $(cat "$KTREE/.package"), $(qemu-system-aarch64 --version | head -1), program under test: $DUT"

FAILED=()
boot leds ""
[[ $VERDICT == PASS ]] || FAILED+=(leds)
if [[ -f $WORK/button.plan ]]; then
	boot button "iomem=relaxed"
	[[ $VERDICT == PASS ]] || FAILED+=(button)
fi
if [[ $SELFTEST -eq 1 ]]; then
	boot selftest ""
	if [[ $VERDICT == FAIL ]] && grep -q 'hil: FAIL  levels after exit' "$WORK/selftest.log"; then
		say "selftest: the harness caught the LEDs left on, as it should"
	else
		say "selftest: the harness did not catch the LEDs left on"
		FAILED+=(selftest)
	fi
fi

if [[ ${#FAILED[@]} -eq 0 ]]; then
	say "PASS ($DUT, $(elapsed))"
	exit 0
fi
KEEP=1
say "FAIL: ${FAILED[*]} ($DUT, $(elapsed)); console logs in $WORK"
exit 1
