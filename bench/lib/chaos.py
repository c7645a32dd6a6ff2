#!/usr/bin/env python3
"""Client-side faults and faulty mail for bench/soak.sh.

    python3 bench/lib/chaos.py HOST PORT SECONDS SENDER DOMAIN [DOMAIN ...]

For SECONDS, about twice a second, starts one of these against the SMTP
server at HOST:PORT (each in its own thread; at most 40 at once):

  mail       a message from SENDER to u@DOMAIN for a random DOMAIN (the
             soak gives domains that reject, defer, time out, hang up or
             have no DNS), so faxmta defers, retries, bounces and expires
  slowloris  EHLO trickled one byte every 2 s until the server cuts it
  drop-data  a transaction cut in the middle of DATA (nothing may be
             queued)
  garbage    random bytes and commands out of order, then QUIT
  pipelined  MAIL, RCPT and DATA in one write (PIPELINING), then the body
  abort      connect and close at once

CHAOS_KINDS (environment, optional): a comma-separated subset of the
kinds above to run (default: all; `mail` weighs four times the others),
to tell which kind of fault something follows.

Prints one line at the end: how many of each it ran and how many messages
were acknowledged. Only loopback addresses are accepted.
"""

import os
import random
import re
import socket
import sys
import threading
import time

LOOPBACK = re.compile(r"^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$")


def connect(host, port):
    s = socket.create_connection((host, port), timeout=30)
    s.settimeout(30)
    return s


def reply(f):
    """Read one (possibly multi-line) reply; its code, or 0 on EOF."""
    while True:
        line = f.readline()
        if not line:
            return 0
        if len(line) < 4 or line[3:4] != b"-":
            try:
                return int(line[:3])
            except ValueError:
                return 0


class Chaos:
    def __init__(self, host, port, sender, domains):
        self.host, self.port = host, port
        self.sender, self.domains = sender, domains
        self.counts = {}
        self.acked = 0
        self.lock = threading.Lock()

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def session(self, lines):
        """Send LINES one by one (each answered); codes read."""
        s = connect(self.host, self.port)
        f = s.makefile("rb")
        codes = [reply(f)]
        for line in lines:
            s.sendall(line)
            codes.append(reply(f))
        s.close()
        return codes

    def mail(self):
        rcpt = "u%d@%s" % (random.randrange(1000), random.choice(self.domains))
        lines = random.randrange(2, 50)
        body = b"Subject: soak fault\r\n\r\n" + (b"x" * 76 + b"\r\n") * lines
        codes = self.session([b"EHLO chaos.test\r\n",
                              b"MAIL FROM:<%s>\r\n" % self.sender.encode(),
                              b"RCPT TO:<%s>\r\n" % rcpt.encode(),
                              b"DATA\r\n", body + b".\r\n", b"QUIT\r\n"])
        if len(codes) > 5 and codes[5] == 250:
            with self.lock:
                self.acked += 1

    def slowloris(self):
        s = connect(self.host, self.port)
        s.settimeout(600)
        try:
            s.recv(512)
            for b in b"EHLO slowloris.test\r\n" * 20:
                s.sendall(bytes([b]))
                time.sleep(2)
        except OSError:
            pass  # cut by the server: what should happen
        s.close()

    def drop_data(self):
        s = connect(self.host, self.port)
        f = s.makefile("rb")
        reply(f)
        for line in [b"EHLO drop.test\r\n", b"MAIL FROM:<%s>\r\n" % self.sender.encode(),
                     b"RCPT TO:<u@%s>\r\n" % self.domains[0].encode(), b"DATA\r\n"]:
            s.sendall(line)
            reply(f)
        s.sendall(b"Subject: never finished\r\n\r\nhalf a mess")
        s.close()

    def garbage(self):
        junk = bytes(random.randrange(1, 256) for _ in range(random.randrange(1, 300)))
        self.session([b"RCPT TO:<x@y>\r\n", b"DATA\r\n", junk.replace(b"\n", b"") + b"\r\n",
                      b"MAIL FROM:<>\r\n", b"MAIL FROM:<>\r\n", b"QUIT\r\n"])

    def pipelined(self):
        s = connect(self.host, self.port)
        f = s.makefile("rb")
        reply(f)
        s.sendall(b"EHLO pipe.test\r\n")
        reply(f)
        s.sendall(b"MAIL FROM:<%s>\r\nRCPT TO:<u@%s>\r\nDATA\r\n"
                  % (self.sender.encode(), random.choice(self.domains).encode()))
        codes = [reply(f), reply(f), reply(f)]
        if codes[2] == 354:
            s.sendall(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
            if reply(f) == 250:
                with self.lock:
                    self.acked += 1
        s.close()

    def abort(self):
        connect(self.host, self.port).close()

    def run(self, seconds, kinds=None):
        actions = [self.mail] * 4 + [self.slowloris, self.drop_data, self.garbage,
                                     self.pipelined, self.abort]
        if kinds:
            actions = [a for a in actions if a.__name__.replace("_", "-") in kinds]
            if not actions:
                sys.exit("chaos.py: CHAOS_KINDS names no known kind")
        end = time.time() + seconds
        threads = []
        while time.time() < end:
            threads = [t for t in threads if t.is_alive()]
            if len(threads) < 40:
                action = random.choice(actions)
                t = threading.Thread(target=self.guarded, args=(action,), daemon=True)
                t.start()
                threads.append(t)
            time.sleep(0.5)
        deadline = time.time() + 10
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.time()))

    def guarded(self, action):
        self.count(action.__name__)
        try:
            action()
        except OSError as e:
            self.count("error:" + type(e).__name__)


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    host, port, seconds, sender = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    if not LOOPBACK.match(host):
        sys.exit("chaos.py: loopback addresses only")
    chaos = Chaos(host, port, sender, sys.argv[5:])
    kinds = [k.strip() for k in os.environ.get("CHAOS_KINDS", "").split(",") if k.strip()]
    chaos.run(seconds, kinds)
    done = " ".join("%s=%d" % kv for kv in sorted(chaos.counts.items()))
    print("chaos: %s; fault mails acknowledged=%d" % (done, chaos.acked))


if __name__ == "__main__":
    main()
