#!/usr/bin/env python3
"""An authoritative DNS server for tests, on loopback only.

    python3 tests/peers/dns.py ZONEFILE [--address 127.0.0.1] [--port 0] [--log FILE]

Answers over UDP and TCP on the same port (0: any free one) from the
records of ZONEFILE, in zone-file syntax (dnslib's RR.fromZone: $ORIGIN,
$TTL, one record a line). Besides records, a line `NAME. SERVFAIL` makes
NAME answer SERVFAIL to every query, `NAME. REFUSED` REFUSED, and
`NAME. TIMEOUT` never answer at all (the query is dropped, as by a server
that is overloaded or a firewall). A line `*. TIMEOUT` (or SERVFAIL,
REFUSED) does that for every name.

The zone file is read again whenever it changes (replace it atomically,
by a rename), so a test can make a failing name answer again.

Answers are authoritative (aa set): the records of the name and type asked
for (a CNAME is followed within the zone); NOERROR with no answer (NODATA)
for a name that exists without that type; NXDOMAIN for a name that does not
exist. Negative answers carry the zone's SOA, when the zone file has one.

Prints "ready PORT" on stdout once both sockets listen. Exits when stdin
closes (so it dies with the test that started it) or on SIGTERM/SIGINT.
Needs the dnslib package (pip install dnslib).
"""

import argparse
import os
import re
import signal
import sys
import threading
import time

from dnslib import QTYPE, RCODE, RR, DNSError, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

LOOPBACK = re.compile(r"^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$")


FAILURES = ("SERVFAIL", "REFUSED", "TIMEOUT")


def load(path):
    """(records, {failing name: SERVFAIL|REFUSED|TIMEOUT}) from a zone file."""
    failing = {}
    zone = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\s*(\S+)\s+(SERVFAIL|REFUSED|TIMEOUT)\s*(;.*)?$", line)
            if m:
                name = m.group(1).lower()
                failing[name if name.endswith(".") else name + "."] = m.group(2)
            else:
                zone.append(line)
    return list(RR.fromZone("".join(zone))), failing


class ZoneResolver(BaseResolver):
    def __init__(self, path, log):
        self.path = path
        self.stamp = None
        self.records = []
        self.failing = {}
        self.log = log
        self.lock = threading.Lock()
        self.reload()

    def reload(self):
        """Read the zone file again if it changed since the last time."""
        try:
            st = os.stat(self.path)
        except OSError:
            return
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp == self.stamp:
            return
        records, failing = load(self.path)
        self.records, self.failing, self.stamp = records, failing, stamp

    def failure(self, qname):
        """SERVFAIL, REFUSED, TIMEOUT or None for this name."""
        name = str(qname).lower()
        return self.failing.get(name) or self.failing.get("*.")

    def soa_for(self, qname):
        best = None
        for rr in self.records:
            if rr.rtype == QTYPE.SOA and qname.matchSuffix(rr.rname):
                if best is None or len(rr.rname.label) > len(best.rname.label):
                    best = rr
        return best

    def exists(self, qname):
        # A name exists if it owns records or is an empty non-terminal
        # (some name below it owns records).
        return any(
            rr.rname == qname or rr.rname.matchSuffix(qname) for rr in self.records
        )

    def resolve(self, request, handler):
        reply = request.reply()
        reply.header.aa = 1
        q = request.q
        qname, qtype = q.qname, q.qtype
        with self.lock:
            self.reload()
        failure = self.failure(qname)
        if failure == "TIMEOUT":
            self.note(q, None)
            # dnslib's handler drops the query on a DNSError: no answer.
            raise DNSError("timeout for %s" % qname)
        if failure:
            reply.header.rcode = getattr(RCODE, failure)
            self.note(q, reply)
            return reply
        name = qname
        for _ in range(8):  # follow CNAMEs within the zone
            own = [rr for rr in self.records if rr.rname == name]
            match = [rr for rr in own if rr.rtype == qtype or qtype == QTYPE.ANY]
            if match:
                for rr in match:
                    reply.add_answer(rr)
                break
            cname = [rr for rr in own if rr.rtype == QTYPE.CNAME]
            if cname and qtype != QTYPE.CNAME:
                reply.add_answer(cname[0])
                name = cname[0].rdata.label
                continue
            if not self.exists(name):
                reply.header.rcode = RCODE.NXDOMAIN
            soa = self.soa_for(name)
            if soa is not None:
                reply.add_auth(soa)
            break
        self.note(q, reply)
        return reply

    def note(self, q, reply):
        if self.log is None:
            return
        if reply is None:
            outcome = "TIMEOUT (no answer)"
        else:
            answers = " ".join(str(rr.rdata) for rr in reply.rr)
            outcome = "%s %s" % (RCODE.get(reply.header.rcode), answers)
        with self.lock:
            self.log.write("%s %s -> %s\n" % (q.qname, QTYPE.get(q.qtype), outcome))
            self.log.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("zonefile")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", help="append one line per query to this file")
    args = p.parse_args()
    if not LOOPBACK.match(args.address):
        sys.exit("dns.py: tests stay on loopback: --address must be in 127.0.0.0/8")

    log = open(args.log, "a", encoding="utf-8") if args.log else None
    resolver = ZoneResolver(args.zonefile, log)
    quiet = DNSLogger("-recv,-send,-request,-reply,-truncated,-data,-error", prefix=False)

    # UDP first (port 0 picks one), then TCP on the same number; if that
    # number is taken for TCP, try another.
    for _ in range(20):
        udp = DNSServer(resolver, address=args.address, port=args.port, logger=quiet)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(
                resolver, address=args.address, port=port, tcp=True, logger=quiet
            )
            break
        except OSError:
            udp.server.server_close()
            if args.port:
                raise
    else:
        sys.exit("dns.py: no port free for both UDP and TCP")

    udp.start_thread()
    tcp.start_thread()

    def stop(*_):
        udp.stop()
        tcp.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready %d" % port, flush=True)
    try:
        # Block until the parent closes our stdin (or goes away).
        while sys.stdin.read(4096):
            pass
    except (OSError, ValueError):
        # No usable stdin: serve until a signal.
        while True:
            time.sleep(3600)
    stop()


if __name__ == "__main__":
    main()
