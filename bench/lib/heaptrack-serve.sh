#!/usr/bin/env bash
# bench/lib/heaptrack-serve.sh: a FAXMTA_BIN for bench/soak.sh that runs
# `faxmta serve` under heaptrack (every allocation recorded with its call
# stack) and every other command (`queue list`) plainly. heaptrack's own
# script would stand between soak.sh and the server (its pid, its
# signals); this starts heaptrack's interpreter on a pipe and execs
# faxmta with heaptrack's preload library instead.
#
#   REAL_BIN=target/release/faxmta HT_OUT=/tmp/ht \
#   FAXMTA_BIN=$PWD/bench/lib/heaptrack-serve.sh DURATION=900 KEEP=1 bash bench/soak.sh
#   zstd -dc /tmp/ht.zst > /tmp/ht.txt
#   python3 bench/lib/heap_growth.py /tmp/ht.txt 30 sled::,crossbeam
#
# The release profile keeps line tables (debug = 1): heaptrack names the
# functions. Needs Debian's heaptrack and zstd.
set -euo pipefail
BIN=${REAL_BIN:?REAL_BIN: the faxmta binary to run}
if [[ ${1:-} == serve ]]; then
    out=${HT_OUT:-/tmp/faxmta-heaptrack}
    lib=/usr/lib/heaptrack
    rm -f "$out.fifo"
    mkfifo "$out.fifo"
    "$lib/libexec/heaptrack_interpret" <"$out.fifo" | zstd -q -c >"$out.zst" &
    export LD_PRELOAD=$lib/libheaptrack_preload.so DUMP_HEAPTRACK_OUTPUT=$out.fifo
fi
exec "$BIN" "$@"
