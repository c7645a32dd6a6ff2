#!/usr/bin/env python3
"""Which allocations grow: live heap by allocating function over time,
from a heaptrack recording (bench/lib/heaptrack-serve.sh).

    zstd -dc ht.zst > ht.txt
    python3 bench/lib/heap_growth.py ht.txt STEP [PREFIXES] [ROWS] [END]

Reads heaptrack's interpreted trace (file format 3: `+`/`-` allocation
and free of an allocation-info index, `a` size and trace, `t` trace
nodes, `i` instruction pointers with their functions, `s` strings, `c`
timestamps in ms). Every STEP seconds it sums the bytes still allocated,
grouped by the innermost frame whose function starts with one of
PREFIXES (comma-separated; default `sled::,crossbeam,faxmta`), and prints
the ROWS groups (default 20) whose size changes fastest: a least-squares
slope in KiB/min over the last two thirds of the recording, then the
size in KiB at every other step. END (seconds) stops reading there: the
end of the load, before the shutdown frees everything. A leak is a group that rises steadily;
a cache or a buffer comes and goes.
"""
import re
import sys
from collections import defaultdict


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, step = sys.argv[1], float(sys.argv[2]) * 1000
    prefixes = tuple((sys.argv[3] if len(sys.argv) > 3 else "sled::,crossbeam,faxmta").split(","))
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    end = float(sys.argv[5]) * 1000 if len(sys.argv) > 5 else float("inf")
    strings, ips, traces, allocs = [None], [None], [None], []
    live = defaultdict(int)
    snaps = []
    group_of = {}

    def name(i):
        s = strings[i] if 0 < i < len(strings) else "?"
        parts = s.split(" ", 1)  # "<length> <text>"
        return parts[1] if len(parts) == 2 else s

    def group(trace):
        if trace in group_of:
            return group_of[trace]
        t, depth, found = trace, 0, None
        while t and depth < 300 and found is None:
            ip, parent = traces[t]
            for fn in ips[ip]:
                n = re.sub(r"::h[0-9a-f]{16}$", "", name(fn)).replace("$LT$", "<").replace("$GT$", ">")
                if n.startswith(prefixes) or any("<" + p in n[:60] for p in prefixes):
                    found = n[:90]
                    break
            t, depth = parent, depth + 1
        group_of[trace] = found or "(other)"
        return group_of[trace]

    def snapshot(now):
        by = defaultdict(int)
        for a, n in live.items():
            if n:
                size, trace = allocs[a]
                by[group(trace)] += n * size
        snaps.append((now, by))

    next_at = step
    with open(path, errors="replace") as f:
        for line in f:
            k = line[0]
            if k == "+":
                live[int(line[2:], 16)] += 1
            elif k == "-":
                live[int(line[2:], 16)] -= 1
            elif k == "c":
                now = int(line[2:], 16)
                if now > end:
                    break
                if now >= next_at:
                    snapshot(now)
                    next_at += step
            elif k == "a":
                size, trace = line[2:].split()
                allocs.append((int(size, 16), int(trace, 16)))
            elif k == "t":
                ip, parent = line[2:].split()
                traces.append((int(ip, 16), int(parent, 16)))
            elif k == "i":
                rest = line[2:].split()[2:]  # ip, module, then (function, file, line)...
                ips.append([int(rest[j], 16) for j in range(0, len(rest) - 2, 3)]
                           if len(rest) >= 3 else [int(r, 16) for r in rest[:1]])
            elif k == "s":
                strings.append(line[2:].rstrip("\n"))
    if len(snaps) < 3:
        sys.exit("heap_growth.py: fewer than 3 steps recorded; a smaller STEP?")

    def slope(key):
        pts = [(t / 60000, by.get(key, 0) / 1024) for t, by in snaps if t >= snaps[-1][0] / 3]
        n = len(pts)
        sx, sy = sum(p[0] for p in pts), sum(p[1] for p in pts)
        sxx, sxy = sum(p[0] ** 2 for p in pts), sum(p[0] * p[1] for p in pts)
        d = n * sxx - sx * sx
        return (n * sxy - sx * sy) / d if d else 0.0

    keys = set()
    for _, by in snaps:
        keys |= set(by)
    print("KiB/min " + " ".join("%6ds" % (t // 1000) for t, _ in snaps[::2]))
    for key in sorted(keys, key=lambda k: -abs(slope(k)))[:rows]:
        print("%+7.1f " % slope(key) + " ".join("%7d" % (by.get(key, 0) // 1024) for _, by in snaps[::2]) + "  " + key)
    print("%7s " % "total" + " ".join("%7d" % (sum(by.values()) // 1024) for _, by in snaps[::2]))


if __name__ == "__main__":
    main()
