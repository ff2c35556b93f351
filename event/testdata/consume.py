#!/usr/bin/env python3
"""Decode tapwatch event payloads (one msgpack map per MQTT message).

    python3 consume.py FILE...          print each payload as one JSON line
    python3 consume.py --types FILE...  print each payload's field names
                                        and Python types (the Go tests use it)

A file holds one payload, exactly as an MQTT client receives it. In a
consumer that subscribes with an MQTT library, call decode() on each
message's payload instead.

Needs msgpack for Python 1.0 or later (Debian: apt-get install python3-msgpack).
The documentation is docs/events.md.
"""

import datetime
import json
import math
import sys

import msgpack


def decode(payload):
    """Return one message as a dict, or None if it is not schema version 1.

    Times (ts, first, last, first_seen, last_seen) come back as
    datetime.datetime in UTC; Python keeps microseconds, so the
    nanoseconds are cut. Fields this code does not know are in the dict
    too: ignore them, new fields may appear within version 1.
    """
    msg = msgpack.unpackb(payload, timestamp=3)
    if not isinstance(msg, dict) or msg.get("v") != 1:
        return None
    return msg


def plain(value):
    """Make a decoded value printable as JSON, as tapwatch tail prints it:
    times in ISO 8601, bytes (evidence) in hex, NaN and infinities null,
    and other msgpack extensions (none in version 1) as code and hex."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, msgpack.ExtType):  # an extension of a newer field
        return {"ext": value.code, "data": value.data.hex()}
    return value


def types(value, name="", out=None):
    """Map each field name to the name of its Python type: nested maps as
    src.ip, list elements as attack[] and links[].state."""
    if out is None:
        out = {}
    if name:
        out[name] = type(value).__name__
    if isinstance(value, dict):
        for k, v in value.items():
            types(v, name + "." + k if name else k, out)
    elif isinstance(value, list):
        elems = {}
        for v in value:
            for k, t in types(v, name + "[]", {}).items():
                elems.setdefault(k, set()).add(t)
        for k, ts in elems.items():
            out[k] = "|".join(sorted(ts))
    return out


def main(args):
    show_types = args[:1] == ["--types"]
    if show_types:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    for path in args:
        with open(path, "rb") as f:
            msg = decode(f.read())
        if msg is None:
            print(f"{path}: not a tapwatch v1 message", file=sys.stderr)
            continue
        if show_types:
            print(json.dumps({"file": path, "fields": types(msg)}))
        else:
            print(json.dumps(plain(msg)))


if __name__ == "__main__":
    main(sys.argv[1:])
