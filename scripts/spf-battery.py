#!/usr/bin/env python3
"""Run an SPF conformance battery in the OpenSPF YAML format through
`faxmta check spf`, against a DNS server on loopback that serves each
scenario's zone data.

    python3 scripts/spf-battery.py SUITE.yml [--faxmta target/debug/faxmta] [-v]

SUITE.yml is a test suite in the format the SPF council used (e.g.
rfc7208-tests.yml from the pyspf project; it is not part of faxmta).
Conventions of that format followed here: a name's SPF entries are also
served as TXT when it has no TXT entry of its own (type SPF itself is
never asked by RFC 7208 checkers); `TIMEOUT` makes the name fail for the
types not listed before it (answered SERVFAIL here: a temperror either
way, without the wait); a name starting with `error.` that is not in the
zone fails too; a CNAME is followed one level. A test passes when the
result is the expected one (or one of them), and, when the test names an
explanation other than DEFAULT, the explanation is that text; DEFAULT
means none of the domain's own.

Prints one line per failing test (every test with -v) and a summary
line `N passed, M failed`. Needs dnslib and PyYAML.
"""

import argparse
import json
import socket
import subprocess
import sys

import yaml
from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


def zone_of(scenario):
    """{name: [(type, value) or 'TIMEOUT']} with SPF entries served as TXT."""
    zone = {}
    for name, entries in (scenario.get("zonedata") or {}).items():
        out = []
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        for e in entries:
            if e == "TIMEOUT":
                out.append("TIMEOUT")
                continue
            for t, v in e.items():
                if t == "SPF":
                    if has_txt:
                        continue  # type 99 only: never asked
                    t = "TXT"
                if t == "TXT" and v == "NONE":
                    continue
                out.append((t, v))
        zone[name.lower().rstrip(".")] = out
    return zone


def rdata(t, v):
    if t == "A":
        return QTYPE.A, A(v)
    if t == "AAAA":
        return QTYPE.AAAA, AAAA(v)
    if t == "MX":
        return QTYPE.MX, MX(v[1] + "." if v[1] else ".", v[0])
    if t == "PTR":
        return QTYPE.PTR, PTR(v.rstrip(".") + ".")
    if t == "CNAME":
        return QTYPE.CNAME, CNAME(v.rstrip(".") + ".")
    if t == "TXT":
        strings = v if isinstance(v, list) else [v]
        return QTYPE.TXT, TXT([s.encode("utf-8") for s in strings])
    raise ValueError(t)


class Zone(BaseResolver):
    def __init__(self):
        self.zone = {}

    def answers(self, qname, qtype, reply, depth=0):
        """Add the records of qname (a DNSLabel); return an RCODE."""
        # The raw labels: a name may hold spaces, ':' or '%'.
        name = b".".join(qname.label).decode("latin-1").lower()
        entries = self.zone.get(name)
        if entries is None:
            return RCODE.SERVFAIL if name.startswith("error.") else RCODE.NXDOMAIN
        found = False
        for e in entries:
            if e == "TIMEOUT":
                if not found:
                    return RCODE.SERVFAIL
                continue
            t, v = e
            rtype, data = rdata(t, v)
            if rtype == qtype:
                found = True
                reply.add_answer(RR(qname, rtype, rdata=data, ttl=60))
            elif rtype == QTYPE.CNAME and depth == 0:
                reply.add_answer(RR(qname, rtype, rdata=data, ttl=60))
                return self.answers(data.label, qtype, reply, 1)
        return RCODE.NOERROR

    def resolve(self, request, handler):
        reply = request.reply()
        reply.header.aa = 1
        reply.header.rcode = self.answers(request.q.qname, request.q.qtype, reply)
        return reply


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("suite")
    p.add_argument("--faxmta", default="target/debug/faxmta")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()

    resolver = Zone()
    quiet = DNSLogger("-recv,-send,-request,-reply,-truncated,-data,-error", prefix=False)
    udp = DNSServer(resolver, address="127.0.0.1", port=0, logger=quiet)
    port = udp.server.server_address[1]
    tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=quiet)
    udp.start_thread()
    tcp.start_thread()

    passed = failed = 0
    with open(args.suite, encoding="utf-8") as f:
        scenarios = list(yaml.safe_load_all(f))
    for scenario in scenarios:
        resolver.zone = zone_of(scenario)
        for name, t in scenario["tests"].items():
            cmd = [
                args.faxmta, "check", "spf", "--json", "--timeout", "2",
                "--nameserver", "127.0.0.1:%d" % port,
                "--ip", str(t["host"]), "--helo", str(t["helo"]),
                "--from", str(t["mailfrom"]),
            ]
            run = subprocess.run(cmd, capture_output=True, text=True)
            try:
                got = json.loads(run.stdout)
            except ValueError:
                got = {"result": "(no JSON: exit %d %s)" % (run.returncode, run.stderr.strip())}
            want = t["result"] if isinstance(t["result"], list) else [t["result"]]
            ok = got["result"] in want
            exp = t.get("explanation")
            if ok and exp is not None:
                ok = got.get("explanation") is None if exp == "DEFAULT" else got.get("explanation") == exp
            passed += ok
            failed += not ok
            if args.verbose or not ok:
                print("%s %s (%s): want %s%s, got %s%s; %s" % (
                    "ok  " if ok else "FAIL", name, t.get("spec"), "/".join(want),
                    " exp=%r" % exp if exp else "", got["result"],
                    " exp=%r" % got.get("explanation") if got.get("explanation") else "",
                    got.get("reason") or got.get("mechanism") or ""))
    udp.stop()
    tcp.stop()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
