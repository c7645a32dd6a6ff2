#!/usr/bin/env python3
"""An HTTPS server for tests: an MTA-STS policy host and a TLS-RPT receiver.

    python3 tests/peers/https_policy.py --cert CERT.pem --key KEY.pem
        [--address 127.0.0.1] [--port 0]
        [--policy FILE] [--content-type TYPE] [--status CODE] [--location URL]
        [--file URLPATH FILE TYPE]... [--post-dir DIR] [--log FILE]

Serves over TLS with the certificate chain CERT.pem (PEM, the server's
certificate first, then any intermediates) and its key KEY.pem; the test
makes both (with its own CA), not this script.

GET /.well-known/mta-sts.txt answers with the contents of --policy FILE,
Content-Type --content-type (default "text/plain"; "" sends no
Content-Type), status --status (default 200; with --location, a Location
header, e.g. for a redirect that must not be followed). The file is read
again for every request, so a test can change the policy (replace it
atomically, by a rename); a missing file answers 404.

--file URLPATH FILE TYPE serves FILE at URLPATH with Content-Type TYPE
(repeatable). Any other GET answers 404.

A POST (a TLS-RPT report, RFC 8460 §5.4) answers 200 and, with --post-dir,
is stored there as post-N.body (the raw body, gzip for application/
tlsrpt+gzip) beside post-N.meta ("METHOD PATH\\nContent-Type: ...\\n"),
each written to a temporary name first and renamed, N counting from 1, the
.meta renamed last: a test waits for the .meta file.

Each request is logged as "METHOD PATH STATUS" to --log (and stderr). A TLS
handshake that fails (e.g. a client that does not trust the certificate)
is logged as "TLS-ERROR reason" and does not stop the server.

Listens on loopback only (127.0.0.0/8). Prints "ready PORT" on stdout once
it listens. Exits when stdin closes (so it dies with the test that started
it) or on SIGTERM/SIGINT.
"""

import argparse
import os
import re
import signal
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = re.compile(r"^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
POLICY_PATH = "/.well-known/mta-sts.txt"


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, handler, args, context):
        super().__init__(addr, handler)
        self.args = args
        self.context = context
        self.lock = threading.Lock()
        self.posts = 0
        self.logfile = open(args.log, "a", encoding="utf-8") if args.log else None

    def note(self, line):
        with self.lock:
            sys.stderr.write(line + "\n")
            if self.logfile:
                self.logfile.write(line + "\n")
                self.logfile.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "https_policy.py"

    def setup(self):
        # The handshake runs here, in this connection's thread, so a slow or
        # failing client cannot hold up the others.
        self.request.settimeout(30)
        try:
            self.request = self.server.context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.server.note("TLS-ERROR %s" % e)
            self.tls_failed = True
            super().setup()
            return
        self.tls_failed = False
        super().setup()

    def handle(self):
        if not self.tls_failed:
            super().handle()

    def log_message(self, fmt, *args):
        pass  # our own log line per request (note)

    def answer(self, status, body, content_type, location=None):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True
        self.server.note("%s %s %d" % (self.command, self.path, status))

    def do_GET(self):
        args = self.server.args
        path = self.path.split("?", 1)[0]
        if path == POLICY_PATH and args.policy:
            try:
                with open(args.policy, "rb") as f:
                    body = f.read()
            except FileNotFoundError:
                return self.answer(404, b"no policy\n", "text/plain")
            return self.answer(args.status, body, args.content_type, args.location)
        for urlpath, file, ctype in args.file or []:
            if path == urlpath:
                try:
                    with open(file, "rb") as f:
                        return self.answer(200, f.read(), ctype)
                except FileNotFoundError:
                    break
        self.answer(404, b"not found\n", "text/plain")

    do_HEAD = do_GET

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        ctype = self.headers.get("Content-Type", "")
        d = self.server.args.post_dir
        if d:
            with self.server.lock:
                self.server.posts += 1
                n = self.server.posts
            base = os.path.join(d, "post-%d" % n)
            for suffix, data in (
                (".body", body),
                (".meta", ("POST %s\nContent-Type: %s\n" % (self.path, ctype)).encode()),
            ):
                with open(base + suffix + ".tmp", "wb") as f:
                    f.write(data)
                os.rename(base + suffix + ".tmp", base + suffix)
        self.answer(200, b"ok\n", "text/plain")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--policy")
    p.add_argument("--content-type", default="text/plain")
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--location")
    p.add_argument("--file", nargs=3, action="append", metavar=("URLPATH", "FILE", "TYPE"))
    p.add_argument("--post-dir")
    p.add_argument("--log")
    args = p.parse_args()
    if not LOOPBACK.match(args.address):
        sys.exit("https_policy.py listens on 127.0.0.0/8 only, not %s" % args.address)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = Server((args.address, args.port), Handler, args, context)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    print("ready %d" % server.server_address[1], flush=True)
    try:
        # Block until the parent closes our stdin (or goes away).
        while sys.stdin.read(4096):
            pass
    except (OSError, ValueError):
        # No usable stdin: serve until a signal.
        serving.join()
        return
    server.shutdown()


if __name__ == "__main__":
    main()
