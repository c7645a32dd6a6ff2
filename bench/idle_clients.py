#!/usr/bin/env python3
"""bench/idle_clients.py: the client side of bench/idle-clients.sh.

It holds thousands of idle SMTP connections in one process (asyncio),
measures the server's resident memory and open descriptors from /proc
before and after, times whole SMTP transactions of new clients with and
without that load, and times how long slowloris clients (one byte every
few seconds, in a command or in DATA) stay connected before the server
cuts them. It prints figures; it fails only when it cannot measure.

    idle_clients.py --pid PID --port PORT --phase idle|slow|stress [options]

Run it through bench/idle-clients.sh, which starts the server.
"""

import argparse
import asyncio
import collections
import os
import resource
import sys
import time

HOST = "127.0.0.1"


def rss_kib(pid):
    """VmRSS of `pid` in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def tcp_kernel_kib():
    """Kernel memory of all TCP sockets (both ends), /proc/net/sockstat."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                pages = int(parts[parts.index("mem") + 1])
                return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    return 0


def pct(xs, q):
    """Nearest-rank percentile of a sorted list."""
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(q * len(xs) + 0.999999) - 1))
    return xs[k]


def summary(label, secs):
    xs = sorted(x * 1000 for x in secs)
    if not xs:
        return f"{label}: no sample"
    return (f"{label}: n={len(xs)} p50={pct(xs, .5):.1f} p95={pct(xs, .95):.1f} "
            f"p99={pct(xs, .99):.1f} max={xs[-1]:.1f} ms")


async def reply(r):
    """One SMTP reply (all lines); the last line."""
    while True:
        line = await r.readline()
        if not line:
            raise ConnectionError("closed")
        if len(line) < 4 or line[3:4] != b"-":
            return line


async def cmd(r, w, text, expect):
    w.write(text)
    await w.drain()
    line = await reply(r)
    if not line.startswith(expect):
        raise RuntimeError(f"{text!r} -> {line!r}")
    return line


async def transaction(port, i):
    """One whole SMTP transaction; (connect->greeting, connect->221) seconds."""
    t0 = time.perf_counter()
    r, w = await asyncio.open_connection(HOST, port)
    try:
        line = await r.readline()
        greet = time.perf_counter() - t0
        if not line.startswith(b"220"):
            raise RuntimeError(f"greeting {line!r}")
        await cmd(r, w, b"EHLO bench.test\r\n", b"250")
        await cmd(r, w, b"MAIL FROM:<bench@bench.test>\r\n", b"250")
        await cmd(r, w, b"RCPT TO:<user@localhost>\r\n", b"250")
        await cmd(r, w, b"DATA\r\n", b"354")
        body = (f"Subject: latency probe {i}\r\n\r\n" + "x" * 70 + "\r\n").encode()
        await cmd(r, w, body + b".\r\n", b"250")
        await cmd(r, w, b"QUIT\r\n", b"221")
        return greet, time.perf_counter() - t0
    finally:
        w.close()


async def latency(port, n, label):
    """`n` clients one after the other; print the figures."""
    greets, totals, errors = [], [], collections.Counter()
    for i in range(n):
        try:
            g, t = await asyncio.wait_for(transaction(port, i), 60)
            greets.append(g)
            totals.append(t)
        except Exception as e:  # noqa: BLE001 - counted and shown
            errors[type(e).__name__ + ": " + str(e)[:60]] += 1
    print(f"  {summary(label + ' connect->220', greets)}")
    print(f"  {summary(label + ' whole transaction', totals)}")
    if errors:
        print(f"  {label} failures: {dict(errors)}")
    return greets, totals


async def open_idle(port, n, parallel=200):
    """Open `n` connections that read their greeting and then say nothing."""
    held, outcomes = [], collections.Counter()
    sem = asyncio.Semaphore(parallel)

    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 30)
            except Exception as e:  # noqa: BLE001
                outcomes["connect failed: " + type(e).__name__] += 1
                return
            try:
                line = await asyncio.wait_for(r.readline(), 30)
            except Exception:  # noqa: BLE001
                line = b"<no greeting in 30 s>"
            if line.startswith(b"220"):
                outcomes["220"] += 1
                held.append((r, w, time.monotonic()))
            else:
                outcomes[line.decode(errors="replace").strip()[:70] or "<closed>"] += 1
                w.close()

    await asyncio.gather(*(one() for _ in range(n)))
    return held, outcomes


async def watch_cuts(held, secs):
    """Wait up to `secs` for the server to close the held connections;
    seconds from each one's greeting to its close, and what it said."""
    cut, said = [], collections.Counter()

    async def one(r, w, opened):
        try:
            line = await asyncio.wait_for(r.read(200), secs)
        except asyncio.TimeoutError:
            return
        except Exception:  # noqa: BLE001
            line = b""
        while True:
            try:
                more = await asyncio.wait_for(r.read(200), 5)
            except Exception:  # noqa: BLE001
                more = b""
            if not more:
                break
            line += more
        cut.append(time.monotonic() - opened)
        said[line.decode(errors="replace").strip()[:60] or "<closed>"] += 1

    await asyncio.gather(*(one(r, w, t) for r, w, t in held))
    return cut, said


async def slowloris(port, n, mode, every, limit):
    """`n` clients trickling one byte every `every` s into a command line
    (`command`) or into DATA (`data`); seconds each lasted after it
    started trickling, and what the server said last."""
    lasted, said = [], collections.Counter()
    sem = asyncio.Semaphore(200)

    async def one():
        async with sem:
            r, w = await asyncio.open_connection(HOST, port)
            line = await r.readline()
            if not line.startswith(b"220"):
                said["not greeted: " + line.decode(errors="replace").strip()[:50]] += 1
                w.close()
                return
            if mode == "data":
                await cmd(r, w, b"EHLO slow.test\r\n", b"250")
                await cmd(r, w, b"MAIL FROM:<slow@slow.test>\r\n", b"250")
                await cmd(r, w, b"RCPT TO:<user@localhost>\r\n", b"250")
                await cmd(r, w, b"DATA\r\n", b"354")
                w.write(b"Subject: slow\r\n\r\n")
            else:
                w.write(b"EHLO ")
        start = time.monotonic()

        async def drip():
            try:
                while True:
                    await asyncio.sleep(every)
                    w.write(b"x")
                    await w.drain()
            except Exception:  # noqa: BLE001 - the server closed
                pass

        dripping = asyncio.ensure_future(drip())
        got = b""
        try:
            while True:
                chunk = await asyncio.wait_for(r.read(200), limit)
                if not chunk:
                    break
                got += chunk
        except asyncio.TimeoutError:
            got += b"<still connected>"
        except Exception:  # noqa: BLE001
            pass
        dripping.cancel()
        w.close()
        lasted.append(time.monotonic() - start)
        said[got.decode(errors="replace").strip()[:60] or "<closed>"] += 1

    await asyncio.gather(*(one() for _ in range(n)))
    return lasted, said


def secs_summary(label, xs):
    xs = sorted(xs)
    if not xs:
        return f"{label}: none"
    return (f"{label}: n={len(xs)} min={xs[0]:.1f} p50={pct(xs, .5):.1f} "
            f"max={xs[-1]:.1f} s")


def figures(pid, label):
    r, f, k = rss_kib(pid), fds(pid), tcp_kernel_kib()
    print(f"  server {label}: VmRSS {r / 1024:.1f} MiB, {f} open fds; kernel TCP memory (all sockets) {k / 1024:.1f} MiB")
    return r, f, k


async def idle_phase(a):
    print("-- no load")
    rss0, fd0, k0 = figures(a.pid, "at rest")
    await latency(a.port, a.probes, "no load")
    rss1, fd1, k1 = figures(a.pid, "after the probes")

    print(f"-- {a.idle} idle connections (greeting read, then silence)")
    t = time.monotonic()
    held, outcomes = await open_idle(a.port, a.idle)
    print(f"  opened in {time.monotonic() - t:.1f} s: {dict(outcomes)}")
    await asyncio.sleep(2)
    rss2, fd2, k2 = figures(a.pid, f"with {len(held)} idle")
    if held:
        per = (rss2 - rss1) / len(held)
        print(f"  per idle connection: {per:.2f} KiB of server RSS, "
              f"{(fd2 - fd1) / len(held):.2f} fd, "
              f"{(k2 - k1) / len(held):.2f} KiB kernel TCP memory (both ends)")
    print(f"-- new clients while {len(held)} idle ones are connected")
    await latency(a.port, a.probes, "under idle load")

    for _, w, _ in held:
        w.close()
    await asyncio.sleep(3)
    figures(a.pid, "after the idle ones closed")


async def slow_phase(a):
    print(f"-- {a.slow} slowloris clients in a command and {a.slow_data} in DATA "
          f"(1 byte every {a.every} s)")
    figures(a.pid, "at rest")
    slow_cmd = asyncio.ensure_future(slowloris(a.port, a.slow, "command", a.every, a.wait))
    slow_data = asyncio.ensure_future(slowloris(a.port, a.slow_data, "data", a.every, a.wait))
    await asyncio.sleep(3)
    figures(a.pid, "with the slowloris clients")
    await latency(a.port, a.probes, "new clients among the slowloris ones")
    lasted, said = await slow_cmd
    print(f"  {secs_summary('command slowloris lasted', lasted)} (command_timeout {a.command_timeout})")
    print(f"    last words: {dict(said)}")
    lasted, said = await slow_data
    print(f"  {secs_summary('DATA slowloris lasted', lasted)} (data_timeout {a.data_timeout} + 1 s per min_data_rate octets)")
    print(f"    last words: {dict(said)}")
    figures(a.pid, "after the slowloris clients")


async def stress_phase(a):
    print(f"-- {a.idle} idle connections against max_connections {a.max_connections}, "
          f"stress from {a.stress_threshold}%, stress_timeout {a.stress_timeout}")
    figures(a.pid, "at rest")
    t = time.monotonic()
    held, outcomes = await open_idle(a.port, a.idle)
    print(f"  opened in {time.monotonic() - t:.1f} s: {dict(outcomes)}")
    cuts = asyncio.ensure_future(watch_cuts(held, a.wait))
    await asyncio.sleep(1)
    figures(a.pid, "right after opening")
    await latency(a.port, a.probes, "new clients under stress")
    cut, said = await cuts
    print(f"  {secs_summary('idle connections cut after (from greeting)', cut)}; "
          f"{len(held) - len(cut)} of {len(held)} still open after {a.wait} s")
    print(f"    last words: {dict(said)}")
    figures(a.pid, "after")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--phase", choices=["idle", "slow", "stress"], required=True)
    p.add_argument("--idle", type=int, default=5000)
    p.add_argument("--probes", type=int, default=200)
    p.add_argument("--slow", type=int, default=500)
    p.add_argument("--slow-data", type=int, default=100)
    p.add_argument("--every", type=float, default=2.0)
    p.add_argument("--wait", type=float, default=120.0)
    p.add_argument("--command-timeout", default="?")
    p.add_argument("--data-timeout", default="?")
    p.add_argument("--max-connections", default="?")
    p.add_argument("--stress-threshold", default="?")
    p.add_argument("--stress-timeout", default="?")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.idle + a.slow + a.slow_data + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
        soft = min(hard, need)
    print(f"  client process: open files limit {soft}")
    phase = {"idle": idle_phase, "slow": slow_phase, "stress": stress_phase}[a.phase]
    asyncio.run(phase(a))


if __name__ == "__main__":
    sys.exit(main())
