#!/usr/bin/env python3
"""Instructions a packet, by function or by part of the pipeline.

    scripts/callgrind-per-packet.py BIG.out SMALL.out PACKETS [--group | --calls] [--top N]

BIG.out and SMALL.out are callgrind outputs of the same program on a
capture of many packets and on a tiny one (tapbench gen -n 10);
PACKETS is the difference in their packet counts. Each function's self
cost in SMALL is subtracted from its cost in BIG and divided by PACKETS,
so start-up does not count. --group adds the functions up by what they
do, as docs/performance.md's tables do, with a second total of tapwatch's
work: the shares of the runtime (the collector above all) and of the
YAML parser move with start-up between the two runs, by up to 150
instructions a packet either way, so that total is the one to compare.
--calls gives calls a packet of each function instead, from the calls=
lines of the two files. Needs callgrind_annotate.
"""
import re
import subprocess
import sys


def load(path):
    out = subprocess.run(["callgrind_annotate", "--tree=none", "--auto=no", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    cost = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(\S.*)$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        fn = re.sub(r" \[.*\]$", "", m.group(2)).split(":", 1)[-1]
        cost[fn] = cost.get(fn, 0) + int(m.group(1).replace(",", ""))
    return cost


def calls(path):
    """Calls of each function, from the calls= lines of a callgrind file
    (whose names are compressed: "(id) name" the first time, "(id)" after)."""
    names, count, callee = {}, {}, None
    with open(path) as f:
        for line in f:
            if line.startswith(("cfn=", "fn=")):
                m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.strip())
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith("cfn="):
                    callee = names.get(m.group(1))
            elif line.startswith("calls=") and callee:
                count[callee] = count.get(callee, 0) + int(line[6:].split()[0])
    return count


def group(fn):
    # A generic function's name holds the types it was made for, which
    # may name other packages: test the package first.
    if fn.startswith("github.com/tapwatch/tapwatch/internal/lru."):
        return "rules"
    if ("gopacket/pcapgo" in fn or fn.startswith(("bufio.", "io.", "runtime.memmove"))
            or "tapwatch/capture" in fn):
        return "reading the file (capture, pcapgo, bufio, copies)"
    if ("gopacket" in fn or "fastFrame" in fn or "fastPacket" in fn
            or "dpi.(*Engine).decode" in fn):
        return "link to transport headers"
    if "tapwatch/dpi/dnp3" in fn:
        return "DNP3 decoding"
    if "tapwatch/dpi/modbus" in fn:
        return "Modbus decoding"
    if "tapwatch/dpi" in fn:
        return "dpi: flows, reassembly, dispatch"
    if "tapwatch/rules" in fn or "internal/lru" in fn:
        return "rules"
    if "tapwatch/sensor" in fn or fn.startswith("main."):
        return "sensor, replay"
    if "goccy/go-yaml" in fn:
        return "YAML parser (start-up)"
    if fn.startswith(("runtime.", "internal/runtime")):
        return "Go runtime, GC"
    return "other"


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    packets = float(argv[2])
    if "--calls" in argv:
        big, small = calls(argv[0]), calls(argv[1])
    else:
        big, small = load(argv[0]), load(argv[1])
    top = int(argv[argv.index("--top") + 1]) if "--top" in argv else 40
    per = {fn: (big.get(fn, 0) - small.get(fn, 0)) / packets for fn in set(big) | set(small)}
    if "--group" in argv:
        grouped = {}
        for fn, v in per.items():
            grouped[group(fn)] = grouped.get(group(fn), 0) + v
        per = grouped
    if "--calls" in argv:
        print("%8.2f calls a packet in all" % sum(per.values()))
        for fn, v in sorted(per.items(), key=lambda kv: -kv[1])[:top]:
            print("%8.2f %s" % (v, fn))
        return
    print("%8.0f total" % sum(per.values()))
    if "--group" in argv:
        own = sum(v for g, v in per.items() if g not in ("Go runtime, GC", "YAML parser (start-up)"))
        print("%8.0f total without the runtime and the YAML parser" % own)
    for fn, v in sorted(per.items(), key=lambda kv: -kv[1])[:top]:
        print("%8.1f %s" % (v, fn))


if __name__ == "__main__":
    main(sys.argv[1:])
