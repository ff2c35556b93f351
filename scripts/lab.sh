#!/usr/bin/env bash
# lab.sh: a small plant network on one Linux machine, in network namespaces,
# with a passive tap for tapwatch.
#
#   scripts/lab.sh up       build the network and start the traffic (needs root)
#   scripts/lab.sh status   what is up and running; exit status 0 when all
#                           is, 3 when nothing is, 1 when part of it is
#   scripts/lab.sh rogue [VALUE]
#                           an unauthorized write of the pump speed setpoint
#                           (holding register 5) from the rogue host
#   scripts/lab.sh down     stop the traffic, and whatever else still runs in
#                           the lab's namespaces, and delete them
#
# up and down may be run again: up completes what is missing and leaves
# what runs alone; down with nothing up does nothing.
#
# The namespaces are named PREFIX-sw, PREFIX-hmi and so on, with PREFIX
# from LAB_PREFIX, tw by default (tw-sw, tw-hmi, ...; the names below). Each
# lab.sh command acts on the lab of its prefix only, so that labs with
# other prefixes, such as the tests' (each run makes its own), may be up at
# the same time: "sudo LAB_PREFIX=lab2 scripts/lab.sh up". The interfaces
# keep their names in every lab: each lives in the lab's own namespaces.
# (scripts/lab/tapwatch.yaml keeps tapwatch's state in
# /run/tapwatch-lab/state: a tapwatch on a second lab at the same time
# needs a copy of it with another state_dir.)
#
# The network: a switch (namespace tw-sw, Linux bridge tw-br0) with four
# hosts on 10.10.1.0/24, each a namespace joined to the switch by a veth
# pair (tw0 in the host, tw-sw-NAME on the switch):
#
#   tw-hmi    10.10.1.10  the HMI (tapwatch-lab hmi, goburrow/modbus), and
#                         mbpoll now and then as a second, independent client
#   tw-plc    10.10.1.20  the PLC (tapwatch-lab plc, simonvetter/modbus) on 502
#   tw-rogue  10.10.1.66  an intruder's laptop: idle until "lab.sh rogue"
#   tw-dnp3   no address  replays a DNP3 capture (master 10.10.1.30, link
#                         address 1, polling outstation 10.10.1.40:20000,
#                         link address 10) with tcpreplay, every 10 s
#
# The tap: namespace tw-tap has one interface, tap0, with no address, no ARP
# and IPv6 off: it only receives. On the switch, every bridge port mirrors the
# frames it receives (tc ingress, a u32 filter that matches everything, and
# "mirred egress mirror") to tw-sw-tap, tap0's peer, which is not a bridge
# port. Every frame enters the switch through exactly one port, so the tap
# sees each frame once, in both directions, whether the bridge forwards,
# floods or drops it. (u32 rather than matchall, which some kernels do not
# build; the development machine's is one.) tw-tap also runs a mosquitto on
# its loopback, 127.0.0.1:1883, for tapwatch's uplink: the namespace has no
# other way out.
#
# IPv6 is off in every namespace, so the tap carries only the plant's IPv4
# traffic and ARP.
#
# Environment: LAB_PREFIX (tw: the namespaces' names, above; letters,
# digits, - and _), LAB_RUN_DIR (pids, logs, the DNP3 capture; default
# /run/tapwatch-lab, or /run/tapwatch-lab-PREFIX for another prefix),
# LAB_HMI_INTERVAL (1s), LAB_HMI_WRITE_EVERY (10 polls), LAB_MBPOLL_EVERY
# (5 s), LAB_DNP3_EVERY (10 s), GO (go).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# tc is in /usr/sbin, which a PATH kept through sudo (sudo env PATH=...)
# may lack.
PATH=$PATH:/usr/sbin:/sbin
PREFIX=${LAB_PREFIX:-tw}
if [[ ! $PREFIX =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]]; then
	printf 'lab: LAB_PREFIX %q: use letters, digits, - and _ (it starts the namespaces'"'"' names)\n' "$PREFIX" >&2
	exit 2
fi
if [[ $PREFIX == tw ]]; then
	RUN=${LAB_RUN_DIR:-/run/tapwatch-lab}
else
	RUN=${LAB_RUN_DIR:-/run/tapwatch-lab-$PREFIX}
fi
GO=${GO:-go}
HMI_INTERVAL=${LAB_HMI_INTERVAL:-1s}
HMI_WRITE_EVERY=${LAB_HMI_WRITE_EVERY:-10}
MBPOLL_EVERY=${LAB_MBPOLL_EVERY:-5}
DNP3_EVERY=${LAB_DNP3_EVERY:-10}
LAB=$ROOT/bin/tapwatch-lab

SW=$PREFIX-sw
BR=tw-br0
TAP_NS=$PREFIX-tap
TAP_IF=tap0
TAP_PEER=tw-sw-tap
# The hosts: namespace PREFIX-NAME, its address, its MAC (02:00 and the
# address; dnp3, which has none, .254).
HOSTS=(hmi plc rogue dnp3)
declare -A ADDR=([hmi]=10.10.1.10 [plc]=10.10.1.20 [rogue]=10.10.1.66 [dnp3]=)
declare -A MAC=([hmi]=02:00:0a:0a:01:0a [plc]=02:00:0a:0a:01:14 [rogue]=02:00:0a:0a:01:42 [dnp3]=02:00:0a:0a:01:fe)
NAMESPACES=("$SW" "$PREFIX-hmi" "$PREFIX-plc" "$PREFIX-rogue" "$PREFIX-dnp3" "$TAP_NS")
# Background processes, in the order down stops them.
PROCS=(dnp3-replay mbpoll hmi plc broker)
declare -A PROC_NS=([plc]=$PREFIX-plc [hmi]=$PREFIX-hmi [mbpoll]=$PREFIX-hmi [dnp3-replay]=$PREFIX-dnp3 [broker]=$TAP_NS)
# The width of the names in status.
W=$((${#PREFIX} + 7 > 10 ? ${#PREFIX} + 7 : 10))

# lab_cmd [SCRIPT]: how the commands this script prints call it (SCRIPT,
# default scripts/lab.sh), with the prefix if it is not the default.
lab_cmd() {
	local pre=
	[[ $PREFIX == tw ]] || pre="LAB_PREFIX=$PREFIX "
	printf '%s%s' "$pre" "${1:-scripts/lab.sh}"
}

say() { printf 'lab: %s\n' "$*"; }
die() { printf 'lab: %s\n' "$*" >&2; exit 1; }

need_root() {
	[[ $(id -u) -eq 0 ]] || die "network namespaces need root: run as root (sudo $(lab_cmd "$0") $*)"
}

need_tool() { # command, Debian package
	command -v "$1" >/dev/null 2>&1 || die "$1 is not installed; install it with: apt-get install $2"
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }

link_exists() { ip -n "$1" link show dev "$2" >/dev/null 2>&1; }

no_ipv6() { # namespace
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
}

add_ns() {
	if ! ns_exists "$1"; then
		ip netns add "$1"
	fi
	no_ipv6 "$1"
	ip -n "$1" link set lo up
}

# veth NS_A IF_A NS_B IF_B [MAC_B]: a veth pair between two namespaces,
# both ends up, IF_B with address MAC_B if given.
veth() {
	if ! link_exists "$1" "$2"; then
		ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
	fi
	if [[ -n ${5:-} && $(ip -n "$3" -br link show dev "$4" | awk '{print $3}') != "$5" ]]; then
		ip -n "$3" link set "$4" down
		ip -n "$3" link set "$4" address "$5"
	fi
	ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1" >/dev/null
	ip netns exec "$3" sysctl -qw "net.ipv6.conf.$4.disable_ipv6=1" >/dev/null
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

mirrored() { # port
	tc -n "$SW" filter show dev "$1" ingress 2>/dev/null | grep -q "mirred (Egress Mirror to device $TAP_PEER)"
}

# mirror PORT: every frame PORT receives from its host is copied to the tap.
# A port already mirrored is left alone, so that up again misses nothing.
mirror() {
	mirrored "$1" && return
	tc -n "$SW" qdisc replace dev "$1" clsact
	tc -n "$SW" filter del dev "$1" ingress >/dev/null 2>&1 || true
	tc -n "$SW" filter add dev "$1" ingress protocol all prio 1 u32 match u32 0 0 \
		action mirred egress mirror dev "$TAP_PEER"
}

build_network() {
	for ns in "${NAMESPACES[@]}"; do
		add_ns "$ns"
	done
	if ! link_exists "$SW" "$BR"; then
		ip -n "$SW" link add "$BR" type bridge stp_state 0
	fi
	ip -n "$SW" link set "$BR" up

	# The tap port first: the mirrors point at it.
	veth "$SW" "$TAP_PEER" "$TAP_NS" "$TAP_IF"
	ip -n "$TAP_NS" link set "$TAP_IF" arp off multicast off
	for h in "${HOSTS[@]}"; do
		veth "$SW" "tw-sw-$h" "$PREFIX-$h" tw0 "${MAC[$h]}"
		ip -n "$SW" link set "tw-sw-$h" master "$BR"
		if [[ -n ${ADDR[$h]} ]]; then
			ip -n "$PREFIX-$h" addr replace "${ADDR[$h]}/24" dev tw0
		fi
		mirror "tw-sw-$h"
	done
}

pidfile() { echo "$RUN/$1.pid"; }

# alive PID: the process exists and is not a zombie waiting for its parent
# (often init, which may reap it late) to collect it.
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# running NAME: the process is alive and still in its namespace (so a stale
# pid file never makes us signal a stranger).
running() {
	local f pid
	f=$(pidfile "$1")
	[[ -s $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	alive "$pid" || return 1
	[[ $(ip netns identify "$pid" 2>/dev/null) == "${PROC_NS[$1]}" ]]
}

# start NAME CMD...: run CMD in NAME's namespace, in a session of its own
# (so that down can stop it and its children as one process group), with
# its output in RUN/NAME.log.
start() {
	local name=$1 ns=${PROC_NS[$1]} f
	shift
	if running "$name"; then
		say "$name already running (pid $(<"$(pidfile "$name")"))"
		return
	fi
	f=$(pidfile "$name")
	rm -f "$f"
	: >"$RUN/$name.log"
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$f" ip netns exec "$ns" "$@" \
		</dev/null >>"$RUN/$name.log" 2>&1 &
	for _ in $(seq 50); do
		[[ -s $f ]] && break
		sleep 0.1
	done
	[[ -s $f ]] || die "$name did not start; see $RUN/$name.log"
	say "started $name in $ns (pid $(<"$f"), log $RUN/$name.log)"
}

# stop NAME: SIGTERM to its process group, SIGKILL after 5 s.
stop() {
	local f pid
	f=$(pidfile "$1")
	if running "$1"; then
		pid=$(<"$f")
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			say "$1 (pid $pid) ignored SIGTERM; killing it"
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		fi
		say "stopped $1 (pid $pid)"
	fi
	rm -f "$f"
}

wait_log() { # name, text, seconds
	for _ in $(seq $(($3 * 10))); do
		grep -q -- "$2" "$RUN/$1.log" 2>/dev/null && return 0
		running "$1" || break
		sleep 0.1
	done
	die "$1 did not come up; its log ($RUN/$1.log):"$'\n'"$(tail -n 20 "$RUN/$1.log" 2>/dev/null)"
}

start_traffic() {
	start plc "$LAB" plc --listen "${ADDR[plc]}:502"
	wait_log plc "listening on" 10
	start hmi "$LAB" hmi --plc "${ADDR[plc]}:502" --interval "$HMI_INTERVAL" --write-every "$HMI_WRITE_EVERY"
	# mbpoll (libmodbus): a second client, one connection per run, reading
	# holding registers 1-10 (PDU addresses 0-9). Only failures are logged.
	start mbpoll bash -c 'while :; do
			out=$(mbpoll -m tcp -a 1 -r 1 -c 10 -1 -o 2 '"${ADDR[plc]}"' 2>&1) || printf "%s mbpoll failed:\n%s\n" "$(date +%T)" "$out"
			sleep '"$MBPOLL_EVERY"'
		done'
	start dnp3-replay bash -c 'while :; do
			out=$(tcpreplay -q -i tw0 "'"$RUN/dnp3.pcap"'" 2>&1) || printf "%s tcpreplay failed:\n%s\n" "$(date +%T)" "$out"
			sleep '"$DNP3_EVERY"'
		done'
	# A broker on the tap namespace's loopback for tapwatch's uplink: that
	# namespace has no other way out, and tap0 never sends.
	if command -v mosquitto >/dev/null 2>&1; then
		printf 'listener 1883 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\n' >"$RUN/mosquitto.conf"
		start broker mosquitto -c "$RUN/mosquitto.conf"
	fi
}

cmd_up() {
	need_root up
	need_tool ip iproute2
	need_tool tc iproute2
	need_tool tcpreplay tcpreplay
	need_tool mbpoll mbpoll
	mkdir -p "$RUN"
	if command -v "$GO" >/dev/null 2>&1; then
		say "building bin/tapwatch-lab"
		(cd "$ROOT" && "$GO" build -o bin/tapwatch-lab ./cmd/tapwatch-lab)
	elif [[ -x $LAB ]]; then
		say "no $GO in PATH: using the bin/tapwatch-lab already built"
	else
		die "$LAB is missing and there is no $GO in PATH to build it: build it first (go build -o bin/tapwatch-lab ./cmd/tapwatch-lab), or run sudo env PATH=\"\$PATH\" $0 up"
	fi
	# Written aside and renamed: a replay may be reading the old one.
	local out
	out=$("$LAB" dnp3-pcap -o "$RUN/dnp3.pcap.new" 2>&1) || die "$out"
	mv -f "$RUN/dnp3.pcap.new" "$RUN/dnp3.pcap"
	build_network
	say "network up: switch $SW ($BR), hosts $PREFIX-hmi, $PREFIX-plc, $PREFIX-rogue, $PREFIX-dnp3; tap $TAP_NS/$TAP_IF (mirror of every switch port)"
	start_traffic
	# The commands below name files of the repository: relative to it when
	# run from its top, absolute otherwise.
	local d= mk="make build" lab
	[[ $PWD == "$ROOT" ]] || d=$ROOT/ mk="make -C $ROOT build"
	lab=$(lab_cmd "${d}scripts/lab.sh")
	cat <<EOF

The lab is up. Pids, logs and the DNP3 capture are in $RUN.

  Watch the tap:      ip netns exec $TAP_NS tshark -i $TAP_IF
  Run tapwatch on it: $mk && ip netns exec $TAP_NS ${d}bin/tapwatch run -c ${d}scripts/lab/tapwatch.yaml
  Its alerts:         ip netns exec $TAP_NS ${d}bin/tapwatch tail --broker tcp://127.0.0.1:1883
  Attack:             $lab rogue        (an unauthorized setpoint write from ${ADDR[rogue]}:
                      ip netns exec $PREFIX-rogue mbpoll -m tcp -a 1 -r 6 -t 4 ${ADDR[plc]} 150)
                      $lab rogue 250    (out of range as well)
  Status, stop:       $lab status; $lab down
EOF
}

cmd_down() {
	need_root down
	for p in "${PROCS[@]}"; do
		stop "$p"
	done
	for ns in "${NAMESPACES[@]}"; do
		ns_exists "$ns" || continue
		# Whatever else still runs in the lab (a tapwatch on the tap, a
		# shell) loses its network: ask it to stop first.
		local pids
		pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
		if [[ -n ${pids// /} ]]; then
			say "stopping what still runs in $ns: $(for p in $pids; do printf '%s(%s) ' "$p" "$(cat "/proc/$p/comm" 2>/dev/null)"; done)"
			# shellcheck disable=SC2086
			kill -TERM $pids 2>/dev/null || true
			for _ in $(seq 50); do
				[[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && break
				sleep 0.1
			done
			pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
			# shellcheck disable=SC2086
			[[ -z ${pids// /} ]] || kill -KILL $pids 2>/dev/null || true
		fi
		ip netns del "$ns"
		say "deleted namespace $ns"
	done
	rm -f "$RUN"/*.pid
	say "down"
}

cmd_status() {
	local up=0 total=0
	for ns in "${NAMESPACES[@]}"; do
		total=$((total + 1))
		if ns_exists "$ns"; then
			up=$((up + 1))
			printf '%-*s %s\n' "$W" "$ns" "$(ip -n "$ns" -br addr show 2>/dev/null | grep -v '^lo ' | awk '{printf "%s %s %s; ", $1, $2, $3}')"
		else
			printf '%-*s %s\n' "$W" "$ns" "absent"
		fi
	done
	if ns_exists "$SW"; then
		local n=0
		for h in "${HOSTS[@]}"; do
			mirrored "tw-sw-$h" && n=$((n + 1))
		done
		printf '%-*s %d of %d switch ports mirrored to %s/%s\n' "$W" mirror "$n" "${#HOSTS[@]}" "$TAP_NS" "$TAP_IF"
	fi
	for p in "${PROCS[@]}"; do
		total=$((total + 1))
		if running "$p"; then
			up=$((up + 1))
			printf '%-*s running in %s, pid %s; last log line: %s\n' "$W" "$p" "${PROC_NS[$p]}" "$(<"$(pidfile "$p")")" "$(tail -n 1 "$RUN/$p.log" 2>/dev/null)"
		else
			printf '%-*s not running\n' "$W" "$p"
		fi
	done
	if ((up == total)); then
		echo "the lab is up"
	elif ((up == 0)); then
		echo "the lab is down"
		return 3
	else
		echo "the lab is partly up ($up of $total parts): $(lab_cmd) up completes it, $(lab_cmd) down removes it"
		return 1
	fi
}

cmd_rogue() {
	need_root rogue
	ns_exists "$PREFIX-rogue" || die "the lab is not up: $(lab_cmd) up"
	local value=${1:-150}
	say "$PREFIX-rogue (${ADDR[rogue]}) writes $value to holding register 5 (mbpoll -r 6) of the PLC"
	if ! ip netns exec "$PREFIX-rogue" mbpoll -m tcp -a 1 -r 6 -t 4 -o 2 "${ADDR[plc]}" "$value"; then
		say "the PLC refused the write (its limits are 100-200 rpm), but the request was on the wire for tapwatch to see"
	fi
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
rogue) shift; cmd_rogue "$@" ;;
-h | --help | help)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	;;
*)
	echo "usage: [LAB_PREFIX=NAME] $0 up|down|status|rogue [VALUE]   (LAB_PREFIX: another lab than the default tw-*; $0 --help says more)" >&2
	exit 2
	;;
esac
