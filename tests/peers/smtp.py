#!/usr/bin/env python3
"""A scripted SMTP client for the tests, with TLS (STARTTLS or implicit).

    smtp.py PORT [--source IP] [--implicit-tls] < steps.json

steps.json is a list of strings, each a command line sent with CRLF and
answered by one reply, or one of:
  "!starttls"     STARTTLS, then the TLS handshake (any certificate)
  "!data:TEXT"    the message text (CRLF line ends, dot-stuffed by the
                  caller), then ".", answered by one reply
  "!maybe-data:TEXT"  DATA, and TEXT and "." only if DATA got 354 (the
                  replies joined by a newline)
  "!close"        read until the server closes the connection
  "!sleep:SECS"   wait, holding the connection (reply "")

Prints a JSON list of [step, reply, seconds] (seconds from sending the
step to its complete reply); the greeting is the first, with step "".
A connection closed early gives "<closed>" as the reply of every step
after it.
"""
import json
import socket
import ssl
import sys
import time


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.closed = False

    def line(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(4096)
            except (ConnectionResetError, ssl.SSLError, OSError):
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("latin-1").rstrip("\r")

    def reply(self):
        if self.closed:
            return "<closed>"
        lines = []
        while True:
            line = self.line()
            if line is None:
                lines.append("<closed>")
                break
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        return "\n".join(lines)

    def send(self, data):
        if self.closed:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True


def main():
    port = int(sys.argv[1])
    source = "127.0.0.1"
    implicit = False
    args = sys.argv[2:]
    while args:
        arg = args.pop(0)
        if arg == "--source":
            source = args.pop(0)
        elif arg == "--implicit-tls":
            implicit = True
    steps = json.load(sys.stdin)
    raw = socket.socket()
    raw.settimeout(30)
    raw.bind((source, 0))
    raw.connect(("127.0.0.1", port))
    if implicit:
        raw = tls_context().wrap_socket(raw, server_hostname="mx.example.test")
    c = Client(raw)
    out = [["", c.reply(), 0.0]]
    for step in steps:
        start = time.monotonic()
        if step == "!starttls":
            c.send(b"STARTTLS\r\n")
            reply = c.reply()
            if reply.startswith("220"):
                c.sock = tls_context().wrap_socket(c.sock, server_hostname="mx.example.test")
                c.buf = b""
        elif step.startswith("!data:"):
            c.send(step[6:].encode("utf-8") + b".\r\n")
            reply = c.reply()
        elif step.startswith("!maybe-data:"):
            c.send(b"DATA\r\n")
            reply = c.reply()
            if reply.startswith("354"):
                c.send(step[12:].encode("utf-8") + b".\r\n")
                reply += "\n" + c.reply()
        elif step.startswith("!sleep:"):
            time.sleep(float(step[7:]))
            reply = ""
        elif step == "!close":
            replies = []
            while not c.closed:
                replies.append(c.reply())
            reply = "\n".join(replies)
        else:
            c.send(step.encode("utf-8") + b"\r\n")
            reply = c.reply()
        out.append([step, reply, time.monotonic() - start])
    print(json.dumps(out))


main()
