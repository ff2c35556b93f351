#!/bin/sh
# postrm of the tapwatch package. dpkg runs it as "postrm remove" after the
# files are removed, "postrm purge" after a purge has removed the conffiles
# (/etc/tapwatch/tapwatch.yaml and policy.yaml; files the engineer added to
# /etc/tapwatch, such as keys or a baseline, stay), and "postrm upgrade" and
# others, which need nothing.
set -e

case "$1" in
purge)
	# The spool, the sequence numbers and the learning state.
	rm -rf /var/lib/tapwatch
	# The user and group tapwatch stay, as is Debian practice: files may
	# still carry their ids, and a new user given the same id would own them.
	;;
esac

case "$1" in
remove | purge)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
	if [ -S /run/udev/control ] && command -v udevadm >/dev/null 2>&1; then
		udevadm control --reload-rules || true
	fi
	;;
esac

exit 0
