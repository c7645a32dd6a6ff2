#!/usr/bin/env python3
"""Run a server as the child of a subreaper, for CPU accounting and stopping.

    python3 bench/lib/subreaper.py CMD [ARGS...]

Marks itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), starts CMD
and reaps every process below it: a server that forks per connection or
daemonizes (Exim, OpenSMTPD, Postfix's `postfix start`) leaves its orphans
to this process instead of to init. So the user+sys time of the whole
server, including processes that have already exited, is this process's
cutime/cstime plus what its live descendants used: bench/lib/common.sh's
tree_ticks reads exactly that.

On SIGTERM or SIGINT it sends SIGTERM to CMD (or, when CMD has already
exited, as `postfix start` does, to every remaining child), waits up to
5 seconds for them, then sends SIGTERM to every descendant still there,
SIGKILL 2 seconds later, and exits: nothing it started is left running.
It exits by itself when the last process below it has exited. Linux only.
"""

import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def children(of):
    """PIDs whose parent is `of` (from /proc)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                s = f.read()
        except OSError:
            continue
        if int(s[s.rindex(")") + 2:].split()[1]) == of:
            out.append(int(p))
    return out


def descendants(of):
    seen, todo = [], [of]
    while todo:
        kids = children(todo.pop())
        seen.extend(kids)
        todo.extend(kids)
    return seen


def reap():
    """Reap every exited child; False once there is none left at all."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_gone(pids, seconds):
    """Reap until none of `pids` exists any more, or `seconds` passed."""
    end = time.monotonic() + seconds
    while True:
        reap()
        if not any(alive(p) for p in pids) or time.monotonic() >= end:
            return
        time.sleep(0.02)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("subreaper: prctl(PR_SET_CHILD_SUBREAPER) failed: errno %d" % ctypes.get_errno(),
              file=sys.stderr)
        return 1
    main_pid = os.fork()
    if main_pid == 0:
        try:
            os.execvp(sys.argv[1], sys.argv[1:])
        except OSError as e:
            print("subreaper: cannot run %s: %s" % (sys.argv[1], e), file=sys.stderr)
        os._exit(127)

    class Stop(Exception):
        pass

    def stop(signum, frame):
        # Raised out of os.wait(), which Python would otherwise resume.
        raise Stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    try:
        while True:
            try:
                pid, st = os.wait()
            except ChildProcessError:
                return status
            if pid == main_pid:
                status = os.waitstatus_to_exitcode(st)
    except Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    # Stop: the server first, then whatever it leaves behind.
    me = os.getpid()
    reap()
    targets = [main_pid] if alive(main_pid) else children(me)
    signal_all(targets, signal.SIGTERM)
    wait_gone(targets, 5)
    signal_all(descendants(me), signal.SIGTERM)
    wait_gone(descendants(me), 2)
    signal_all(descendants(me), signal.SIGKILL)
    wait_gone(descendants(me), 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
