#!/usr/bin/env bash
# bench-live.sh: live capture throughput of "tapwatch run" (make bench-live).
#
# It needs root, tcpreplay, bin/tapwatch and bin/tapbench (make bench-live
# builds both). In namespaces of its own (twb-PID-tx, twb-PID-rx, joined by
# one veth pair twb0 - twb1, no addresses, IPv6 off) it:
#
#   1. generates the small plant's capture (tapbench gen -plant small, seed
#      1, BENCH_LIVE_PACKETS packets, default 1,000,000), on which the
#      figures in docs/performance.md were measured;
#   2. baseline: tcpreplay --topspeed of the capture from twb-PID-tx into twb1
#      with nothing capturing there;
#   3. the same with "tapwatch run" capturing on twb1 (the config below:
#      the default 8 MiB ring, built-in detectors, no uplink); it reports
#      the packets tcpreplay sent and its rate, the packets the daemon saw,
#      its kernel (ring) drops, the packets twb1 received, and the daemon's
#      CPU time (user+sys, /proc/PID/stat) as a share of one core over the
#      replay and the drain after it;
#   4. if the daemon lost packets at top speed, tcpreplay --pps=RATE at half
#      the rate, and half again, until a run loses nothing, then bisects
#      between the two BISECT times; every run at a set rate sends RATE x
#      STEP_SECONDS packets (at least 50,000, at most the capture). It
#      reports the highest rate at which the daemon lost nothing.
#
# A fresh daemon runs for every replay, so each run's counters are its own.
# The namespaces and the daemon are removed on exit, however it exits.
#
# Environment: BENCH_LIVE_PACKETS (1000000), BENCH_LIVE_BISECT (3),
# BENCH_LIVE_RING_BYTES (the daemon's capture ring, 8388608: its default),
# BENCH_LIVE_STEP_SECONDS (5), BENCH_LIVE_TMP (a directory for the capture;
# default: mktemp -d), TAPWATCH (bin/tapwatch), TAPBENCH (bin/tapbench).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAPWATCH=${TAPWATCH:-$ROOT/bin/tapwatch}
TAPBENCH=${TAPBENCH:-$ROOT/bin/tapbench}
PACKETS=${BENCH_LIVE_PACKETS:-1000000}
BISECT=${BENCH_LIVE_BISECT:-3}
STEP_SECONDS=${BENCH_LIVE_STEP_SECONDS:-5}
RING_BYTES=${BENCH_LIVE_RING_BYTES:-8388608}
# Named after this process: another run's namespaces are not ours.
TX=twb-$$-tx
RX=twb-$$-rx
TX_IF=twb0
RX_IF=twb1
HZ=$(getconf CLK_TCK)

die() { printf 'bench-live: %s\n' "$*" >&2; exit 1; }
log() { printf 'bench-live: %s\n' "$*" >&2; }

[[ $(id -u) -eq 0 ]] || die "network namespaces and packet capture need root: run as root (sudo make bench-live)"
command -v tcpreplay >/dev/null || die "tcpreplay is not installed; install it with: apt-get install tcpreplay"
command -v ip >/dev/null || die "ip is not installed; install it with: apt-get install iproute2"
[[ -x $TAPWATCH ]] || die "$TAPWATCH is missing: make build"
[[ -x $TAPBENCH ]] || die "$TAPBENCH is missing: go build -o bin/tapbench ./cmd/tapbench"
"$TAPWATCH" run --help >/dev/null 2>&1 || die "$TAPWATCH has no run command (the daemon)"

WORK=${BENCH_LIVE_TMP:-}
OWN_WORK=
if [[ -z $WORK ]]; then
	WORK=$(mktemp -d /tmp/bench-live.XXXXXX)
	OWN_WORK=1
fi
mkdir -p "$WORK"
DAEMON_PID=

cleanup() {
	local rc=$?
	if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	local ns pids
	for ns in "$TX" "$RX"; do
		# A tcpreplay cut short by a signal, if it is still sending.
		pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
		# shellcheck disable=SC2086
		[[ -z ${pids// /} ]] || kill -TERM $pids 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
	done
	[[ -z $OWN_WORK ]] || rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The namespaces, afresh.
for ns in "$TX" "$RX"; do
	ip netns del "$ns" 2>/dev/null || true
	ip netns add "$ns"
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip -n "$ns" link set lo up
done
ip -n "$TX" link add "$TX_IF" type veth peer name "$RX_IF" netns "$RX"
ip netns exec "$TX" sysctl -qw "net.ipv6.conf.$TX_IF.disable_ipv6=1"
ip netns exec "$RX" sysctl -qw "net.ipv6.conf.$RX_IF.disable_ipv6=1"
# An MTU above 1500: the plant capture has IPv6 frames of 1522 octets.
ip -n "$RX" link set "$RX_IF" mtu 9000 arp off up
ip -n "$TX" link set "$TX_IF" mtu 9000 arp off up

CAP=$WORK/plant.pcap
log "generating the bench capture: $TAPBENCH gen -plant small -n $PACKETS -seed 1"
"$TAPBENCH" gen -plant small -n "$PACKETS" -seed 1 -o "$CAP" >&2
TOTAL=$(capinfos -c -M "$CAP" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /, "", $2); print $2}' || true)
[[ -n $TOTAL ]] || TOTAL=$PACKETS

mkdir -p "$WORK/state"
cat >"$WORK/tapwatch.yaml" <<EOF
sensor: bench-live
site: bench
interfaces: [$RX_IF]
ports: {modbus: [502], dnp3: [20000]}
capture: {ring_bytes: $RING_BYTES, promiscuous: true}
state_dir: $WORK/state
mode: monitor
log: {level: info, format: text}
EOF

# rx_counters: the packets twb1 received, and the packets the veth pair
# dropped on the way (twb0's TX dropped plus twb1's RX dropped).
rx_counters() {
	local rx rxd txd
	read -r rx rxd < <(ip -n "$RX" -s link show dev "$RX_IF" | awk '/RX:/ {getline; print $2, $4; exit}')
	txd=$(ip -n "$TX" -s link show dev "$TX_IF" | awk '/TX:/ {getline; print $4; exit}')
	echo "$rx $((rxd + txd))"
}

# cpu_ticks PID: user + system time of the process, in clock ticks.
cpu_ticks() {
	local stat
	stat=$(<"/proc/$1/stat")
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo $((${12} + ${13})) # fields 14 and 15 of stat, counted after the name
}

# replay ARGS...: tcpreplay from twb-tx, printing "sent pps seconds failed".
replay() {
	local out
	out=$(ip netns exec "$TX" tcpreplay -i "$TX_IF" --preload-pcap "$@" "$CAP" 2>&1) || {
		printf '%s\n' "$out" >&2
		die "tcpreplay $* failed"
	}
	printf '%s\n' "$out" >>"$WORK/tcpreplay.log"
	awk '
		/Actual:/ { sent = $2; for (i = 1; i <= NF; i++) if ($i == "in") secs = $(i + 1) }
		/Rated:/ { for (i = 1; i <= NF; i++) if ($i ~ /^pps/) pps = $(i - 1) }
		/Failed packets:/ { failed = $3 }
		END { printf "%s %s %s %s\n", sent, pps, secs, failed + 0 }' <<<"$out"
}

# run LABEL ARGS...: a fresh daemon on twb1, one replay with ARGS, then the
# daemon's own count. Prints one result line and sets R_* for the caller.
run() {
	local label=$1 t0 t1 c0 c1 log rx0 rx1 rxd0 rxd1 line
	shift
	log="$WORK/daemon-$label.log"
	ip netns exec "$RX" "$TAPWATCH" run -c "$WORK/tapwatch.yaml" 2>"$log" &
	DAEMON_PID=$!
	for _ in $(seq 100); do
		grep -q 'msg=started' "$log" && break
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	grep -q 'msg=started' "$log" || { cat "$log" >&2; die "tapwatch run did not start"; }
	sleep 0.5
	read -r rx0 rxd0 < <(rx_counters)
	c0=$(cpu_ticks "$DAEMON_PID")
	t0=$(date +%s.%N)
	read -r R_SENT R_PPS R_SECS R_FAILED < <(replay "$@")
	sleep 1 # the drain: the ring hands over its last block within block_timeout
	t1=$(date +%s.%N)
	c1=$(cpu_ticks "$DAEMON_PID")
	read -r rx1 rxd1 < <(rx_counters)
	kill -TERM "$DAEMON_PID"
	local status=0
	wait "$DAEMON_PID" || status=$?
	DAEMON_PID=
	if ((status != 0)); then
		cat "$log" >&2
		die "tapwatch run exited with status $status after SIGTERM"
	fi
	line=$(grep 'msg=stopped' "$log" | tail -n 1)
	[[ -n $line ]] || { cat "$log" >&2; die "no 'msg=stopped' line in the daemon's log"; }
	R_SEEN=$(sed -n 's/.* packets=\([0-9]*\).*/\1/p' <<<"$line")
	R_DROPS=$(sed -n 's/.* kernel_drops=\([0-9]*\).*/\1/p' <<<"$line")
	R_RX=$((rx1 - rx0))
	R_RXDROP=$((rxd1 - rxd0))
	# CPU: the daemon's user+sys time from just before the replay to the
	# end of the drain, as a share of one core over the replay's duration.
	R_CPUS=$(awk -v c=$((c1 - c0)) -v hz="$HZ" 'BEGIN { printf "%.2f", c / hz }')
	R_CPU=$(awk -v c="$R_CPUS" -v s="$R_SECS" 'BEGIN { printf "%.0f", 100 * c / s }')
	R_LOSS=$((R_SENT - R_SEEN))
	printf '%-16s sent %8d in %6.2fs at %8.0f pps (failed %d) | twb1 got %8d (veth drops %d) | tapwatch saw %8d, kernel drops %7d, lost %7d | CPU %5.2fs, %3d%% of a core\n' \
		"$label" "$R_SENT" "$R_SECS" "$R_PPS" "$R_FAILED" "$R_RX" "$R_RXDROP" "$R_SEEN" "$R_DROPS" "$R_LOSS" "$R_CPUS" "$R_CPU"
}

lossless() { [[ $R_DROPS -eq 0 && $R_LOSS -le 0 ]]; }

echo "capture: $CAP, $TOTAL packets (tapbench gen -plant small -n $PACKETS -seed 1); $(nproc) cores; $("$TAPWATCH" version 2>/dev/null | head -n 1); capture ring $RING_BYTES bytes"

# Baseline: nobody capturing.
read -r rx0 _ < <(rx_counters)
read -r B_SENT B_PPS B_SECS B_FAILED < <(replay --topspeed)
read -r rx1 _ < <(rx_counters)
printf '%-16s sent %8d in %6.2fs at %8.0f pps (failed %d) | twb1 got %8d\n' "baseline" "$B_SENT" "$B_SECS" "$B_PPS" "$B_FAILED" $((rx1 - rx0))

# at RATE: a run at --pps=RATE for STEP_SECONDS (at least 50,000 packets,
# at most the capture); it moves lo or hi, and BEST when nothing was lost.
at() {
	local limit=$(($1 * STEP_SECONDS))
	((limit < 50000)) && limit=50000
	((limit > TOTAL)) && limit=$TOTAL
	run "--pps=$1" --pps="$1" --limit="$limit"
	if lossless; then
		lo=$1 BEST=$1 BEST_PPS=$R_PPS BEST_CPU=$R_CPU
	else
		hi=$1
	fi
}

run "topspeed" --topspeed
T_PPS=$R_PPS T_SEEN=$R_SEEN T_DROPS=$R_DROPS T_CPU=$R_CPU T_SENT=$R_SENT
BEST= BEST_PPS= BEST_CPU=
if lossless; then
	BEST="topspeed" BEST_PPS=$R_PPS BEST_CPU=$R_CPU
else
	hi=${R_PPS%.*} lo=0
	while ((lo == 0 && hi / 2 >= 1000)); do
		at $((hi / 2))
	done
	if ((lo > 0)); then
		for _ in $(seq "$BISECT"); do
			at $(((lo + hi) / 2))
		done
	fi
fi

echo
echo "summary"
printf '  baseline (nothing capturing): tcpreplay --topspeed %.0f pps\n' "$B_PPS"
printf '  with tapwatch run capturing:  tcpreplay --topspeed %.0f pps (%.2f of the baseline); sent %d, tapwatch saw %d, kernel drops %d; CPU %d%% of a core\n' \
	"$T_PPS" "$(awk -v a="$T_PPS" -v b="$B_PPS" 'BEGIN { print a / b }')" "$T_SENT" "$T_SEEN" "$T_DROPS" "$T_CPU"
if [[ -z $BEST ]]; then
	echo "  no rate down to 1000 pps was lossless"
elif [[ $BEST == topspeed ]]; then
	echo "  lossless at top speed"
else
	printf '  highest lossless rate tried: --pps=%d (tcpreplay achieved %.0f pps, %.2f of the baseline); CPU %d%% of a core\n' \
		"$BEST" "$BEST_PPS" "$(awk -v a="$BEST_PPS" -v b="$B_PPS" 'BEGIN { print a / b }')" "$BEST_CPU"
fi
