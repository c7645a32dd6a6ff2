#!/usr/bin/env python3
"""A misbehaving SMTP server for tests and benches, on loopback only.

    python3 tests/peers/hostile.py MODE [--address 127.0.0.2] [--port 0]
                                        [--interval 1.0] [--log FILE]

MODE is what it does on every connection:

  silent      accept TCP and never say anything (reads and discards)
  trickle     a correct SMTP server whose every reply goes out one byte
              each --interval seconds (greeting included)
  endless     a greeting line that never ends: one 'x' each --interval
  drop-data   a correct server up to the final dot of the data, then it
              closes the connection without a reply
  silent-dot  a correct server up to the final dot, then it says nothing
  421         "421 4.3.2 …" as the greeting, then it hangs up
  421-mail    greets, answers EHLO (PIPELINING offered), then 421 to
              MAIL FROM and hangs up
  good        a correct, prompt server (250 to the dot): a control

Prints "ready PORT" on stdout once it listens. Exits when stdin closes (so
it dies with the test that started it) or on SIGTERM/SIGINT. --log gets one
line per event: "connect", "mail", "dot", "close".
"""

import argparse
import re
import signal
import socket
import sys
import threading
import time

LOOPBACK = re.compile(r"^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
MODES = ["silent", "trickle", "endless", "drop-data", "silent-dot", "421",
         "421-mail", "good"]


class Peer:
    def __init__(self, mode, interval, log):
        self.mode = mode
        self.interval = interval
        self.log = log
        self.lock = threading.Lock()

    def note(self, event):
        if self.log is None:
            return
        with self.lock:
            self.log.write("%.3f %s\n" % (time.time(), event))
            self.log.flush()

    def send(self, conn, text):
        data = text.encode()
        if self.mode == "trickle":
            for i in range(len(data)):
                conn.sendall(data[i:i + 1])
                time.sleep(self.interval)
        else:
            conn.sendall(data)

    def serve(self, conn):
        self.note("connect")
        try:
            self.session(conn)
        except OSError:
            pass
        finally:
            self.note("close")
            try:
                conn.close()
            except OSError:
                pass

    def session(self, conn):
        mode = self.mode
        if mode == "silent":
            while conn.recv(4096):
                pass
            return
        if mode == "endless":
            conn.sendall(b"220 ")
            while True:
                conn.sendall(b"x")
                time.sleep(self.interval)
        if mode == "421":
            conn.sendall(b"421 4.3.2 hostile.test busy, try again later\r\n")
            return
        reader = conn.makefile("rb")
        self.send(conn, "220 hostile.test ESMTP\r\n")
        while True:
            line = reader.readline()
            if not line:
                return
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"LHLO"):
                self.send(conn, "250-hostile.test\r\n250 PIPELINING\r\n")
            elif verb == b"HELO":
                self.send(conn, "250 hostile.test\r\n")
            elif verb == b"MAIL":
                self.note("mail")
                if mode == "421-mail":
                    # Read the rest of the pipelined batch first, so that
                    # closing does not reset the connection under the 421.
                    conn.settimeout(0.2)
                    try:
                        conn.recv(65536)
                    except OSError:
                        pass
                    conn.settimeout(None)
                    conn.sendall(b"421 4.3.2 hostile.test closing, too busy\r\n")
                    return
                self.send(conn, "250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                self.send(conn, "250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                self.send(conn, "354 go ahead\r\n")
                while True:
                    data = reader.readline()
                    if not data:
                        return
                    if data in (b".\r\n", b".\n"):
                        break
                self.note("dot")
                if mode == "drop-data":
                    return
                if mode == "silent-dot":
                    while conn.recv(4096):
                        pass
                    return
                self.send(conn, "250 2.0.0 queued\r\n")
            elif verb == b"RSET" or verb == b"NOOP":
                self.send(conn, "250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                self.send(conn, "221 2.0.0 bye\r\n")
                return
            else:
                self.send(conn, "502 5.5.2 what?\r\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=MODES)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--log", help="append one line per event to this file")
    args = p.parse_args()
    if not LOOPBACK.match(args.address):
        sys.exit("hostile.py: tests stay on loopback: --address must be in 127.0.0.0/8")

    log = open(args.log, "a", encoding="utf-8") if args.log else None
    peer = Peer(args.mode, args.interval, log)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.address, args.port))
    listener.listen(128)

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=peer.serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()

    def stop(*_):
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready %d" % listener.getsockname()[1], flush=True)
    try:
        while sys.stdin.read(4096):
            pass
    except (OSError, ValueError):
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
