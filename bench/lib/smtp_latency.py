#!/usr/bin/env python3
"""Open-loop SMTP load with per-message latency, for bench/ scripts.

    python3 bench/lib/smtp_latency.py --server 127.0.0.2:2525 \\
        --rate 500 --seconds 10 --sessions 20 --size 10240 \\
        --sender bench@example.test --rcpt user@sink.test

Message i is due at start + i/rate, whether or not earlier ones are done
(an open loop: a server that slows down does not slow the offered load
down with it). `--sessions` connections, each kept open, take the next due
message, wait for its time, and send MAIL, RCPT, DATA, the message and the
final dot. The latency of a message is the time from writing its final
dot to reading the server's reply (DATA end to 250: what a client waits
for the server's durable acknowledgement). When every session is busy at
a message's due time it starts late; how many did, and the largest delay,
are printed too (they mean the offered load was more than the sessions
could carry, and the latencies then understate the queueing).

Prints one line of `key=value` figures:
    sent accepted refused errors seconds rate_offered rate_achieved
    p50_ms p90_ms p99_ms max_ms late late_max_ms
and exits non-zero only if it could not measure (no connection at all).
Stdlib only; stays on whatever address it is given (bench scripts give
loopback).
"""

import argparse
import asyncio
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="HOST:PORT")
    p.add_argument("--rate", type=float, default=500.0, help="messages per second offered")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to offer load")
    p.add_argument("--sessions", type=int, default=20, help="parallel SMTP sessions")
    p.add_argument("--size", type=int, default=10240, help="message size in octets")
    p.add_argument("--sender", default="bench@example.test")
    p.add_argument("--rcpt", default="user@sink.test")
    p.add_argument("--helo", default="latency.bench.test")
    return p.parse_args()


def message(size, n):
    head = (
        f"From: <bench@example.test>\r\nTo: <user@sink.test>\r\n"
        f"Subject: latency {n}\r\nMessage-ID: <{n}.{time.time_ns()}@bench.test>\r\n\r\n"
    )
    line = "x" * 76 + "\r\n"
    body = []
    left = max(size - len(head), 0)
    while left > 0:
        chunk = line if left >= len(line) else "x" * max(left - 2, 0) + "\r\n"
        body.append(chunk)
        left -= len(chunk)
    return (head + "".join(body)).encode()


async def reply(reader):
    """One SMTP reply: (code, text of its last line)."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), line.decode(errors="replace").rstrip()


class Load:
    def __init__(self, args):
        self.args = args
        host, port = args.server.rsplit(":", 1)
        self.host, self.port = host.strip("[]"), int(port)
        self.total = int(args.rate * args.seconds)
        self.next = 0
        self.latencies = []
        self.accepted = self.refused = self.errors = self.late = 0
        self.late_max = 0.0
        self.connected = 0

    def take(self):
        if self.next >= self.total:
            return None
        n = self.next
        self.next += 1
        return n

    async def session(self, start):
        a = self.args
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            self.errors += 1
            return
        self.connected += 1

        async def command(line):
            writer.write(line.encode() + b"\r\n")
            await writer.drain()
            return await reply(reader)

        try:
            code, text = await reply(reader)
            if code != 220:
                raise ConnectionError(f"greeting: {text}")
            code, text = await command(f"EHLO {a.helo}")
            if code != 250:
                raise ConnectionError(f"EHLO: {text}")
            while True:
                n = self.take()
                if n is None:
                    break
                due = start + n / a.rate
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif -wait > 0.010:
                    self.late += 1
                    self.late_max = max(self.late_max, -wait)
                data = message(a.size, n)
                code, text = await command(f"MAIL FROM:<{a.sender}>")
                if code != 250:
                    self.refused += 1
                    await command("RSET")
                    continue
                code, text = await command(f"RCPT TO:<{a.rcpt}>")
                if code not in (250, 251):
                    self.refused += 1
                    await command("RSET")
                    continue
                code, text = await command("DATA")
                if code != 354:
                    self.refused += 1
                    await command("RSET")
                    continue
                writer.write(data)
                writer.write(b".\r\n")
                await writer.drain()
                sent_dot = time.monotonic()
                code, text = await reply(reader)
                if code == 250:
                    self.accepted += 1
                    self.latencies.append(time.monotonic() - sent_dot)
                else:
                    self.refused += 1
            await command("QUIT")
        except (ConnectionError, OSError, ValueError) as e:
            self.errors += 1
            print(f"# session ended: {e}", file=sys.stderr)
        finally:
            writer.close()

    async def run(self):
        # The sessions connect and say EHLO first; the load starts after.
        start = time.monotonic() + 0.2
        await asyncio.gather(*(self.session(start) for _ in range(self.args.sessions)))
        return time.monotonic() - start


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def main():
    args = parse_args()
    load = Load(args)
    seconds = asyncio.run(load.run())
    if load.connected == 0:
        print(f"smtp_latency: could not connect to {args.server}", file=sys.stderr)
        return 1
    lat = sorted(load.latencies)
    ms = lambda v: f"{v * 1000:.2f}"
    figures = {
        "sent": load.next,
        "accepted": load.accepted,
        "refused": load.refused,
        "errors": load.errors,
        "seconds": f"{seconds:.2f}",
        "rate_offered": f"{args.rate:g}",
        "rate_achieved": f"{load.accepted / seconds:.1f}" if seconds > 0 else "0",
        "p50_ms": ms(percentile(lat, 50)),
        "p90_ms": ms(percentile(lat, 90)),
        "p99_ms": ms(percentile(lat, 99)),
        "max_ms": ms(lat[-1]) if lat else "nan",
        "late": load.late,
        "late_max_ms": ms(load.late_max),
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
