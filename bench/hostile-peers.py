#!/usr/bin/env python3
"""bench/hostile-peers.py: misbehaving destinations and DNS failures.

What it measures, on 127.0.0.0/8 only:
  1. For each hostile peer kind (tests/peers/hostile.py: silent, trickle =
     one byte a second, endless line, drop-data = hangs up after the dot,
     silent-dot, 421 at greeting, 421 to MAIL): the time from the 250 that
     queued a message until its recipient is logged deferred, with every
     [outbound] timeout set to TIMEOUT seconds.
  2. A good destination (hostile.py in "good" mode, a prompt server)
     while hostile peers hang: GOOD messages submitted at once, with and
     without HOSTILE messages to slow peers (silent, trickle, silent-dot,
     retried every second) in the queue, at [queue] concurrency =
     CONCURRENCY. Prints delivery rate and latency (250 at faxmta -> final
     dot at the good peer; pairs matched in order, so latencies are
     approximate).
  3. DNS (tests/peers/dns.py): the time to defer for an MX question never
     answered, an MX host whose address question is never answered,
     SERVFAIL, REFUSED, and no DNS server at all (127.0.0.1:9), with
     [dns] timeout = DNS_TIMEOUT seconds.

A benchmark that prints figures; it asserts nothing about speed. It fails
only when it cannot measure (no python3 dnslib, a server does not start, a
recipient is never deferred or delivered).

    python3 bench/hostile-peers.py

Environment (all optional):
  FAXMTA_BIN        use this binary instead of `cargo build --release`
  TIMEOUT=5         every [outbound] *_timeout, seconds
  DNS_TIMEOUT=2     [dns] timeout, seconds
  CONCURRENCY=4     [queue] concurrency for part 2
  GOOD=200          good messages in part 2
  HOSTILE=12        hostile messages in the queue in part 2
  BENCH_DIR         parent of the temp dir (default $TMPDIR or /tmp)
  KEEP=1            keep the temp dir (logs, configuration) after the run
"""

import calendar
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(REPO, "tests", "peers")
TIMEOUT = int(os.environ.get("TIMEOUT", "5"))
DNS_TIMEOUT = int(os.environ.get("DNS_TIMEOUT", "2"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "4"))
GOOD = int(os.environ.get("GOOD", "200"))
HOSTILE = int(os.environ.get("HOSTILE", "12"))

KINDS = [  # mode, domain, address, seconds between bytes
    ("silent", "silent.test", "127.0.0.3", "1"),
    ("trickle", "trickle.test", "127.0.0.4", "1"),
    ("endless", "endless.test", "127.0.0.5", "0"),
    ("drop-data", "dropdata.test", "127.0.0.6", "1"),
    ("silent-dot", "silentdot.test", "127.0.0.7", "1"),
    ("421", "busy.test", "127.0.0.8", "1"),
    ("421-mail", "busymail.test", "127.0.0.9", "1"),
]
SLOW = ["silent", "trickle", "silent-dot"]
DNS_CASES = [  # domain, what goes wrong
    ("mxtimeout.test", "MX question never answered"),
    ("hosttimeout.test", "MX host's address never answered"),
    ("servfail.test", "SERVFAIL for MX"),
    ("refused.test", "REFUSED for MX"),
]
ZONE = """$TTL 60
test. SOA ns.test. hostmaster.test. 1 60 60 60 60
mxtimeout.test. TIMEOUT
hosttimeout.test. MX 10 mx.hosttimeout.test.
mx.hosttimeout.test. TIMEOUT
servfail.test. SERVFAIL
refused.test. REFUSED
"""


def die(msg):
    sys.exit("hostile-peers: cannot measure: " + msg)


def note(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def binary():
    if os.environ.get("FAXMTA_BIN"):
        b = os.environ["FAXMTA_BIN"]
        if not os.access(b, os.X_OK):
            die("FAXMTA_BIN=%s is not executable" % b)
        return b
    note("building faxmta (cargo build --release) in " + REPO)
    if subprocess.call(["cargo", "build", "--release", "--quiet"], cwd=REPO) != 0:
        die("cargo build --release failed")
    return os.path.join(REPO, "target", "release", "faxmta")


def free_port(ip="127.0.0.1"):
    s = socket.socket()
    s.bind((ip, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Child:
    """A peer script that prints "ready PORT" and dies when stdin closes."""

    def __init__(self, args):
        self.p = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.p.stdout.readline()
        if not line.startswith("ready "):
            die("%s did not start: %r" % (args[1], line))
        self.port = int(line.split()[1])

    def stop(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(2)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


class Faxmta:
    def __init__(self, binpath, tmp, name, nameserver, extra, concurrency):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.port = free_port()
        d = self.dir
        t = '"%ds"' % TIMEOUT
        cfg = f"""hostname = "mx.bench.test"
[queue]
path = "{d}/queue"
retry = ["1s"]
lifetime = "1h"
concurrency = {concurrency}
[control]
socket = "{d}/faxmta.sock"
[dns]
nameservers = ["{nameserver}"]
timeout = "{DNS_TIMEOUT}s"
[admin]
enabled = false
[tls]
generated_dir = "{d}/tls"
[log]
level = "info"
[[listener]]
addr = "127.0.0.1:{self.port}"
role = "mx"
[relay]
allow = ["127.0.0.1/32"]
[outbound]
tls = "off"
connect_timeout = {t}
helo_timeout = {t}
command_timeout = {t}
data_init_timeout = {t}
data_timeout = {t}
data_done_timeout = {t}
[[domain]]
name = "bench.test"
kind = "local"
deliver = "maildir:{d}/mail/{{domain}}/{{user}}"
{extra}
"""
        with open(os.path.join(d, "faxmta.toml"), "w") as f:
            f.write(cfg)
        self.log_path = os.path.join(d, "faxmta.log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(
            [binpath, "serve", "--config", os.path.join(d, "faxmta.toml")],
            stdout=self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                    if s.recv(3) == b"220":
                        return
            except OSError:
                pass
            if self.p.poll() is not None:
                die("faxmta exited at start:\n" + open(self.log_path).read())
            time.sleep(0.1)
        die("faxmta did not start")

    def send(self, rcpt, subject, smtp=None):
        """Queue one message; returns the time of the 250."""
        msg = (
            "From: bench@bench.test\r\nTo: %s\r\nSubject: %s\r\n\r\nbench\r\n"
            % (rcpt, subject)
        )
        own = smtp is None
        if own:
            smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        smtp.sendmail("bench@bench.test", [rcpt], msg)
        at = time.time()
        if own:
            smtp.quit()
        return at

    def first(self, rcpt, status):
        """Time (from the log line) of the first `status` for rcpt."""
        pat = "to=<%s>, " % rcpt
        with open(self.log_path, errors="replace") as f:
            for line in f:
                if pat in line and ("status=%s (" % status) in line:
                    return log_time(line), line.rstrip()
        return None

    def wait_first(self, rcpt, status, secs):
        deadline = time.time() + secs
        while time.time() < deadline:
            r = self.first(rcpt, status)
            if r:
                return r
            time.sleep(0.05)
        die("%s never %s within %ds (log: %s)" % (rcpt, status, secs, self.log_path))

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.log.close()


STAMP = re.compile(r"^(\S+?)(\.\d+)?Z\s")


def log_time(line):
    """The UTC time stamp at the start of a faxmta log line, as epoch."""
    m = STAMP.match(line)
    if not m:
        return time.time()
    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(base.timetuple()) + float(m.group(2) or 0)


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def good_run(binpath, tmp, name, peers, good, hostile_n):
    """GOOD messages to the good peer with hostile_n slow ones queued."""
    extra = "".join(
        '[[domain]]\nname = "%s"\nkind = "relay"\nhosts = ["%s:%d"]\n'
        % (dom, ip, port)
        for dom, ip, port in peers
    )
    fx = Faxmta(binpath, tmp, name, "127.0.0.1:9", extra, CONCURRENCY)
    try:
        slow = [p for p in peers if p[0] != "good.test"]
        for i in range(hostile_n):
            fx.send("r%d@%s" % (i, slow[i % len(slow)][0]), "hostile %d" % i)
        if hostile_n:
            time.sleep(1)  # let them take the workers
        accepted = []
        started = time.time()
        with smtplib.SMTP("127.0.0.1", fx.port, timeout=30) as s:
            for i in range(GOOD):
                accepted.append(fx.send("g%d@good.test" % i, "good %d" % i, s))
        sent = []
        deadline = time.time() + 600
        while len(sent) < good and time.time() < deadline:
            time.sleep(0.2)
            sent = []
            with open(fx.log_path, errors="replace") as f:
                for line in f:
                    if "@good.test>, " in line and "status=sent (" in line:
                        sent.append(log_time(line))
        if len(sent) < good:
            die("%s: only %d of %d good messages delivered" % (name, len(sent), good))
        sent.sort()
        lat = [b - a for a, b in zip(sorted(accepted), sent)]
        span = sent[-1] - started
        return span, good / span if span > 0 else float("inf"), lat
    finally:
        fx.stop()


def main():
    try:
        import dnslib  # noqa: F401
    except ImportError:
        die("python3 dnslib is missing (pip install dnslib)")
    binpath = binary()
    tmp = tempfile.mkdtemp(
        prefix="faxmta-hostile.", dir=os.environ.get("BENCH_DIR") or None
    )
    children = []
    try:
        hostile = {}
        for mode, dom, ip, interval in KINDS:
            c = Child(
                ["python3", os.path.join(PEERS, "hostile.py"), mode,
                 "--address", ip, "--interval", interval,
                 "--log", os.path.join(tmp, mode + ".events")]
            )
            children.append(c)
            hostile[mode] = (dom, ip, c.port)
        good = Child(
            ["python3", os.path.join(PEERS, "hostile.py"), "good",
             "--address", "127.0.0.2", "--log", os.path.join(tmp, "good.events")]
        )
        children.append(good)
        zone = os.path.join(tmp, "zone")
        with open(zone, "w") as f:
            f.write(ZONE)
        dns = Child(
            ["python3", os.path.join(PEERS, "dns.py"), zone, "--address", "127.0.0.1"]
        )
        children.append(dns)

        print("hostile peers and DNS failures; machine: %d CPU(s), shared"
              % os.cpu_count())
        print("[outbound] *_timeout = %ds, [dns] timeout = %ds" % (TIMEOUT, DNS_TIMEOUT))

        # 1. Time to defer per hostile kind (all at once, concurrency 20).
        extra = "".join(
            '[[domain]]\nname = "%s"\nkind = "relay"\nhosts = ["%s:%d"]\n'
            % (dom, ip, port)
            for dom, ip, port in hostile.values()
        )
        fx = Faxmta(binpath, tmp, "kinds", "127.0.0.1:%d" % dns.port, extra, 20)
        try:
            sent = {m: fx.send("r@%s" % hostile[m][0], m) for m, *_ in KINDS}
            for d, _ in DNS_CASES:
                sent[d] = fx.send("r@%s" % d, d)
            print("\n1. time from 250 to 'deferred' (first attempt)")
            for mode, *_ in KINDS:
                at, line = fx.wait_first("r@%s" % hostile[mode][0], "deferred", 120)
                why = line.split("status=deferred (", 1)[1][:90]
                print("  %-11s %6.2f s   %s" % (mode, at - sent[mode], why))
            print("\n3. DNS: time from 250 to 'deferred'")
            for d, what in DNS_CASES:
                at, line = fx.wait_first("r@%s" % d, "deferred", 120)
                dsn = re.search(r"dsn=(\S+),", line)
                print("  %-34s %6.2f s   dsn=%s" % (what, at - sent[d],
                                                     dsn.group(1) if dsn else "?"))
            bounced = sum(1 for line in open(fx.log_path, errors="replace")
                          if "status=bounced" in line)
            print("  bounced recipients: %d" % bounced)
        finally:
            fx.stop()
        fx = Faxmta(binpath, tmp, "dnsdown", "127.0.0.1:9", "", 20)
        try:
            at0 = fx.send("r@down.test", "down")
            at, _ = fx.wait_first("r@down.test", "deferred", 120)
            print("  %-34s %6.2f s" % ("no DNS server (127.0.0.1:9)", at - at0))
        finally:
            fx.stop()

        # 2. The good destination with and without hostile load.
        peers = [hostile[m] for m in SLOW] + [("good.test", "127.0.0.2", good.port)]
        print("\n2. good destination, %d messages, [queue] concurrency = %d"
              % (GOOD, CONCURRENCY))
        for name, n in (("baseline", 0), ("hostile", HOSTILE)):
            span, rate, lat = good_run(binpath, tmp, name, peers, GOOD, n)
            print("  %-8s hostile queued=%-3d all delivered in %6.2f s  %7.1f msg/s"
                  "  latency p50 %.2f s  p95 %.2f s  max %.2f s"
                  % (name, n, span, rate, pct(lat, 50), pct(lat, 95), max(lat)))
    finally:
        for c in children:
            c.stop()
        if os.environ.get("KEEP") == "1":
            note("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
