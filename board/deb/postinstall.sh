#!/bin/sh
# postinst of the tapwatch package. dpkg runs it as "postinst configure
# [OLD-VERSION]" (OLD-VERSION on an upgrade), or "postinst abort-…" when an
# upgrade or removal is rolled back. Every step may run again.
#
# The service is neither enabled nor started here: it captures on the
# interface named in /etc/tapwatch/tapwatch.yaml, which the engineer sets
# first (docs/install-pi.md).
set -e

case "$1" in
configure) ;;
*) exit 0 ;;
esac

# Group gpio owns the GPIO devices and the LEDs (60-tapwatch.rules).
# Raspberry Pi OS has it; plain Debian does not.
if ! getent group gpio >/dev/null; then
	if command -v addgroup >/dev/null 2>&1; then
		addgroup --system --quiet gpio
	else
		groupadd --system gpio
	fi
fi

# The daemon's own user and group. Its home is the state directory, which
# systemd creates (StateDirectory=tapwatch).
if ! getent passwd tapwatch >/dev/null; then
	if command -v adduser >/dev/null 2>&1; then
		if getent group tapwatch >/dev/null; then
			adduser --system --ingroup tapwatch --home /var/lib/tapwatch \
				--no-create-home --shell /usr/sbin/nologin --quiet tapwatch
		else
			adduser --system --group --home /var/lib/tapwatch \
				--no-create-home --shell /usr/sbin/nologin --quiet tapwatch
		fi
	else
		getent group tapwatch >/dev/null || groupadd --system tapwatch
		useradd --system --gid tapwatch --home-dir /var/lib/tapwatch \
			--no-create-home --shell /usr/sbin/nologin tapwatch
	fi
fi

# tapwatch drives the LEDs, relays and button through group gpio.
if ! id -nG tapwatch | tr ' ' '\n' | grep -qx gpio; then
	if command -v adduser >/dev/null 2>&1; then
		adduser --quiet tapwatch gpio
	else
		usermod -a -G gpio tapwatch
	fi
fi

# Apply 60-tapwatch.rules to the devices already there, when udev runs (it
# does not in a chroot or a container; the rules apply at the next boot).
if [ -S /run/udev/control ] && command -v udevadm >/dev/null 2>&1; then
	udevadm control --reload-rules || true
	udevadm trigger --subsystem-match=gpio || true
	udevadm trigger --subsystem-match=watchdog || true
	udevadm trigger --subsystem-match=misc --sysname-match='watchdog*' || true
	# The LED rule runs on "add" (it changes sysfs files, not a device node).
	udevadm trigger --action=add --subsystem-match=leds || true
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	# An upgrade restarts a running daemon on the new binary.
	if [ -n "$2" ]; then
		systemctl try-restart tapwatch.service || true
	fi
fi

if command -v systemctl >/dev/null 2>&1 && ! systemctl is-enabled --quiet tapwatch.service 2>/dev/null; then
	echo "tapwatch: set the tap interface in /etc/tapwatch/tapwatch.yaml, then run: systemctl enable --now tapwatch"
	echo "tapwatch: the installation guide is /usr/share/doc/tapwatch/install-pi.md"
fi

exit 0
