#!/usr/bin/env python3
"""A stand-in for HylaFAX's hfaxd, just enough for bench/fax.sh.

HylaFAX 6.0's faxmail(1) formats a mail into PostScript and then always
submits it to an hfaxd server (FTP-like client protocol: USER/PASS,
TZONE, TYPE, MODE, FORM, PORT/EPRT or PASV/EPSV, STOT, JNEW, JPARM,
JSUBM, QUIT); it has no option to write the PostScript to standard
output. This stub accepts such
a submission on 127.0.0.1 and keeps the uploaded documents, so that the
benchmark can measure faxmail's own formatting and then convert what it
uploaded the way HylaFAX's server would (ps2fax / pdf2fax: ghostscript).
Nothing is sent anywhere.

    hfaxd-stub.py DIR [--idle SECONDS] [--trace]

Listens on 127.0.0.1 (a free port), prints "ready PORT" on stdout, and
serves one session at a time until stdin closes or nothing happens for
--idle seconds (default 600). Session N's documents go to DIR/N/docK.FMT
(FMT from the client's FORM command: ps, pdf, tif, pcl; MODE Z data is
inflated). When a session ends, one line is appended to DIR/sessions:

    N JOBS VRES PAGEWIDTH PAGELENGTH DIR/N/doc1.ps DIR/N/doc2.pdf ...

JOBS counts JSUBM commands; VRES (lines/inch), PAGEWIDTH and PAGELENGTH
(mm) are the job's parameters as the client set them with JPARM ("-" if
it did not), which is what HylaFAX's server hands to ps2fax/pdf2fax.
Replies follow hfaxd's wording where the client parses them (150/226
"FILE:", JNEW "jobid: ... groupid: ..."); --trace logs the dialogue on
stderr. Data connections are to and from 127.0.0.1 only.
"""

import os
import select
import socket
import sys
import threading
import time
import zlib

TRACE = False
FORMS = {"PS": "ps", "PS2": "ps", "PDF": "pdf", "TIFF": "tif", "PCL": "pcl"}


class Session:
    def __init__(self, conn, outdir, number):
        self.conn = conn
        self.rfile = conn.makefile("rb")
        self.dir = os.path.join(outdir, str(number))
        os.makedirs(self.dir, exist_ok=True)
        self.number = number
        self.docs = []
        self.jobs = 0
        self.form = "ps"
        self.mode = "S"
        self.pasv = None  # listening socket after PASV/EPSV
        self.port = None  # (host, port) after PORT/EPRT
        self.next_job = 100 + number
        self.jparm = {}

    def reply(self, text):
        if TRACE:
            print("%d -> %s" % (self.number, text), file=sys.stderr, flush=True)
        self.conn.sendall((text + "\r\n").encode("latin-1"))

    def data_connection(self):
        if self.pasv is not None:
            self.pasv.settimeout(30)
            data, _ = self.pasv.accept()
            self.pasv.close()
            self.pasv = None
            return data
        if self.port is not None:
            host, port = self.port
            self.port = None
            if host != "127.0.0.1":
                raise OSError("PORT to a non-loopback address refused")
            return socket.create_connection((host, port), timeout=30)
        raise OSError("no PORT or PASV before the transfer")

    def store(self):
        name = os.path.join(self.dir, "doc%d.%s" % (len(self.docs) + 1, self.form))
        self.reply("150 FILE: %s (Opening new data connection)." % name)
        data = self.data_connection()
        data.settimeout(60)
        inflate = zlib.decompressobj() if self.mode == "Z" else None
        with open(name, "wb") as f:
            while True:
                chunk = data.recv(65536)
                if not chunk:
                    break
                f.write(inflate.decompress(chunk) if inflate else chunk)
            if inflate:
                f.write(inflate.flush())
        data.close()
        self.docs.append(name)
        self.reply("226 Transfer complete (FILE: %s)." % name)

    def run(self):
        self.reply("220 127.0.0.1 server (HylaFAX (tm) Version 6.0.7) ready.")
        for _ in range(100000):  # bounded: one command per line
            line = self.rfile.readline(4096)
            if not line:
                break
            line = line.decode("latin-1").rstrip("\r\n")
            if TRACE:
                print("%d <- %s" % (self.number, line), file=sys.stderr, flush=True)
            cmd, _, arg = line.partition(" ")
            cmd = cmd.upper()
            if cmd == "USER":
                self.reply("230 User %s logged in." % arg)
            elif cmd == "PASS":
                self.reply("230 User logged in.")
            elif cmd == "TYPE":
                self.reply("200 Type set to %s." % arg)
            elif cmd == "MODE":
                self.mode = arg.strip().upper() or "S"
                self.reply("200 Mode set to %s." % self.mode)
            elif cmd == "STRU":
                self.reply("200 Structure set to %s." % arg)
            elif cmd == "FORM":
                self.form = FORMS.get(arg.strip().upper(), "dat")
                self.reply("200 Format set to %s." % arg)
            elif cmd == "TZONE":
                self.reply("200 Time values are handled in %s." % arg)
            elif cmd == "PASV":
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                s.listen(1)
                self.pasv = s
                p = s.getsockname()[1]
                self.reply("227 Entering Passive Mode (127,0,0,1,%d,%d)" % (p >> 8, p & 255))
            elif cmd == "PORT":
                f = [int(x) for x in arg.split(",")]
                self.port = ("%d.%d.%d.%d" % tuple(f[:4]), f[4] * 256 + f[5])
                self.reply("200 PORT command successful.")
            elif cmd == "EPRT":  # RFC 2428: |1|127.0.0.1|PORT|
                f = arg.split(arg[:1]) if arg else []
                self.port = (f[2], int(f[3]))
                self.reply("200 EPRT command successful.")
            elif cmd == "EPSV":
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                s.listen(1)
                self.pasv = s
                self.reply("229 Entering Extended Passive Mode (|||%d|)" % s.getsockname()[1])
            elif cmd in ("STOT", "STOU", "STOR"):
                try:
                    self.store()
                except OSError as e:
                    self.reply("425 Cannot open data connection: %s." % e)
            elif cmd == "JNEW":
                job = self.next_job
                self.reply("200 New job created: jobid: %d groupid: %d." % (job, job))
            elif cmd == "JOB":
                self.reply("200 Current job: jobid: %s groupid: %s." % (arg or self.next_job, arg or self.next_job))
            elif cmd == "JPARM":
                name, _, value = arg.partition(" ")
                self.jparm[name.upper()] = value.strip().strip('"')
                if name.upper() == "DOCUMENT" or name.upper() == "COVER":
                    self.reply("200 Added document %s as file." % value)
                else:
                    self.reply("213 %s set to %s." % (name.upper(), value))
            elif cmd == "JSUBM":
                self.jobs += 1
                self.reply("200 Job %d submitted." % self.next_job)
            elif cmd == "QUIT":
                self.reply("221 Goodbye.")
                break
            elif cmd in ("NOOP", "SITE", "IDLE", "JREST", "JGREST"):
                self.reply("200 %s command successful." % cmd)
            else:
                self.reply("200 %s ignored by the benchmark's stub." % cmd)
        self.rfile.close()
        self.conn.close()


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: hfaxd-stub.py DIR [--idle SECONDS] [--trace]")
    outdir = sys.argv[1]
    idle = 600.0
    global TRACE
    TRACE = "--trace" in sys.argv
    if "--idle" in sys.argv:
        idle = float(sys.argv[sys.argv.index("--idle") + 1])
    os.makedirs(outdir, exist_ok=True)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    print("ready %d" % srv.getsockname()[1], flush=True)

    # Stop when stdin closes (the benchmark script ended).
    stop = threading.Event()

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    number = 0
    last = time.monotonic()
    while not stop.is_set() and time.monotonic() - last < idle:
        ready, _, _ = select.select([srv], [], [], 0.2)
        if not ready:
            continue
        conn, _ = srv.accept()
        conn.settimeout(120)
        number += 1
        s = Session(conn, outdir, number)
        try:
            s.run()
        except (OSError, ValueError) as e:
            print("session %d: %s" % (number, e), file=sys.stderr, flush=True)
        with open(os.path.join(outdir, "sessions"), "a") as f:
            f.write("%d %d %s %s %s %s\n" % (
                number, s.jobs,
                s.jparm.get("VRES", "-"), s.jparm.get("PAGEWIDTH", "-"), s.jparm.get("PAGELENGTH", "-"),
                " ".join(s.docs)))
        last = time.monotonic()
    srv.close()


if __name__ == "__main__":
    main()
