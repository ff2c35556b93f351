#!/bin/sh
# prerm of the tapwatch package. dpkg runs it as "prerm remove" before a
# removal, and as "prerm upgrade NEW-VERSION" before an upgrade: then the
# daemon keeps running, and the new postinst restarts it.
set -e

case "$1" in
remove | deconfigure)
	if command -v systemctl >/dev/null 2>&1; then
		if [ -d /run/systemd/system ]; then
			systemctl stop tapwatch.service || true
		fi
		# disable works without a running systemd too (a chroot).
		systemctl disable --quiet tapwatch.service || true
	fi
	;;
esac

exit 0
