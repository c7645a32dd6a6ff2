#!/usr/bin/env bash
# bench/crashloop.sh: the crash loop. Under steady load
# — Postfix's smtp-source, SESSIONS sessions, one message per connection —
# faxmta is killed with SIGKILL at random moments KILLS times and started
# again each time. It relays everything (domain crash.test, kind relay) to
# Postfix's smtp-sink on 127.0.0.31, which dumps every transaction it
# receives. At the end the script compares, by queue id:
#
#   acknowledged  "250 2.0.0 Ok: queued as ID", as smtp-source printed it
#                 (smtp-source -v logs every reply it reads)
#   delivered     the id in faxmta's own Received header ("(faxmta) with
#                 ESMTP id ID") of each message in the sink's dumps
#
# and prints: kills, acknowledged, delivered, LOST (acknowledged, never
# delivered: must be 0), duplicates (delivered more than once: allowed
# after a crash, reported), delivered without an acknowledgement (the
# 250 was lost with the process: the client would send again), and the
# restart times. Exit status 1 when a message was lost.
#
#   bash bench/crashloop.sh
#
# Environment (all optional):
#   FAXMTA_BIN     use this binary instead of `cargo build --release`
#   KILLS=20       SIGKILLs
#   SESSIONS=20    smtp-source processes (each -s 1), restarted whenever the
#                  server's death makes them exit
#   SIZE=4096      message size (smtp-source -l)
#   UP_MIN=1 UP_MAX=6   seconds faxmta runs between two kills (uniform)
#   DRAIN_WAIT=300 seconds to wait for the queue to empty at the end
#   BENCH_DIR      parent of the temp dir; KEEP=1 keeps it (logs, dumps)
#
# Nothing leaves 127.0.0.0/8; faxmta's [dns] points at 127.0.0.1:9 (no
# server), the relay host is given as an address.
set -euo pipefail
NAME=crashloop.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib/common.sh
source "$REPO/bench/lib/common.sh"
KILLS=${KILLS:-20}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
UP_MIN=${UP_MIN:-1}
UP_MAX=${UP_MAX:-6}
DRAIN_WAIT=${DRAIN_WAIT:-300}
export LC_ALL=C

command -v python3 >/dev/null || die "python3 is required (free ports)"
need_postfix_tools
build_faxmta "$REPO"

TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-crashloop.XXXXXX")
chmod 755 "$TMP"
FX_PID=
SINK_PID=
LOADERS=()
cleanup() {
    touch "$TMP/stop" 2>/dev/null || true
    for p in "${LOADERS[@]}"; do kill "$p" 2>/dev/null || true; done
    pkill -TERM -f "smtp-source.*:$FX_PORT\$" 2>/dev/null || true
    [[ -n $FX_PID ]] && kill -9 "$FX_PID" 2>/dev/null || true
    [[ -n $SINK_PID ]] && kill "$SINK_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 ]]; then note "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

SINK_IP=127.0.0.31
SINK_PORT=$(free_port $SINK_IP)
FX_PORT=$(free_port 127.0.0.1)
mkdir -p "$TMP/dump"
chmod 777 "$TMP/dump"
SINK_USER=()
[[ $(id -u) -eq 0 ]] && SINK_USER=(-u nobody)
"$SMTP_SINK" "${SINK_USER[@]}" -d "$TMP/dump/msg." "$SINK_IP:$SINK_PORT" 256 \
    >"$TMP/sink.log" 2>&1 &
SINK_PID=$!
wait_port $SINK_IP "$SINK_PORT" 10 $SINK_PID || die "smtp-sink did not start"

cat >"$TMP/faxmta.toml" <<EOF
hostname = "mx.crash.test"
[queue]
path = "$TMP/queue"
retry = ["2s"]
[control]
socket = "$TMP/faxmta.sock"
[tls]
generated_dir = "$TMP/tls"
[dns]
nameservers = ["127.0.0.1:9"]
timeout = "1s"
[outbound]
tls = "off"
[[listener]]
addr = "127.0.0.1:$FX_PORT"
role = "mx"
tls = "none"
[smtp]
shutdown_grace = "2s"
max_connections_per_ip = 0
[log]
level = "info"
[[domain]]
name = "crash.test"
kind = "relay"
hosts = ["$SINK_IP:$SINK_PORT"]
EOF

# start_faxmta: start the server (FX_PID) and wait for its port; STARTED_MS
# is the time from the process start until the listener accepts.
start_faxmta() {
    local t0
    t0=$(now)
    "$BIN" serve --config "$TMP/faxmta.toml" >>"$TMP/faxmta.log" 2>&1 &
    FX_PID=$!
    wait_port 127.0.0.1 "$FX_PORT" 60 "$FX_PID" \
        || { tail -20 "$TMP/faxmta.log" >&2; die "faxmta did not start"; }
    STARTED_MS=$(calc "($(now) - $t0) * 1000" 0)
}

note "faxmta on 127.0.0.1:$FX_PORT relaying to smtp-sink on $SINK_IP:$SINK_PORT; $TMP"
start_faxmta

# The load: SESSIONS loops of smtp-source -v -s 1, each restarted when the
# server's death ends it (smtp-source gives up on a lost connection).
for i in $(seq 1 "$SESSIONS"); do
    (
        while [[ ! -e $TMP/stop ]]; do
            "$SMTP_SOURCE" -v -s 1 -m 1000000 -l "$SIZE" -f load@client.test \
                -t u@crash.test "127.0.0.1:$FX_PORT" >>"$TMP/source.$i.log" 2>&1 || sleep 0.1
        done
    ) &
    LOADERS+=($!)
done

T0=$(now)
RESTARTS=()
for k in $(seq 1 "$KILLS"); do
    up=$(calc "$UP_MIN + ($UP_MAX - $UP_MIN) * $RANDOM / 32767" 2)
    sleep "$up"
    queued=$(grep -hc "queued as" "$TMP"/source.*.log 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    kill -9 "$FX_PID"
    wait "$FX_PID" 2>/dev/null || true
    start_faxmta
    RESTARTS+=("$STARTED_MS")
    note "kill $k/$KILLS after ${up}s up ($queued acknowledged so far); back in ${STARTED_MS} ms"
done
LOAD_SECS=$(calc "$(now) - $T0" 1)

# Stop the load; let the queue drain.
touch "$TMP/stop"
for p in "${LOADERS[@]}"; do kill "$p" 2>/dev/null || true; done
pkill -TERM -f "smtp-source.*:$FX_PORT\$" 2>/dev/null || true
for p in "${LOADERS[@]}"; do wait "$p" 2>/dev/null || true; done
LOADERS=()
note "load stopped after ${LOAD_SECS}s; waiting for the queue to drain"
drained=0
for _ in $(seq 1 "$DRAIN_WAIT"); do
    if "$BIN" queue list --config "$TMP/faxmta.toml" 2>/dev/null | grep -q "queue is empty"; then
        drained=1
        break
    fi
    sleep 1
done
kill -TERM "$FX_PID" 2>/dev/null || true
wait "$FX_PID" 2>/dev/null || true
FX_PID=
sleep 1 # smtp-sink finishes its last dumps

grep -ho "queued as [0-9A-F]*" "$TMP"/source.*.log | awk '{ print $3 }' | sort >"$TMP/acked.all"
sort -u "$TMP/acked.all" >"$TMP/acked"
find "$TMP/dump" -type f -print0 \
    | xargs -0 -r grep -ho "(faxmta) with [A-Z]* id [0-9A-F]*" \
    | awk '{ print $NF }' | sort >"$TMP/delivered.all"
sort -u "$TMP/delivered.all" >"$TMP/delivered"
ACKED=$(wc -l <"$TMP/acked")
DELIVERED=$(wc -l <"$TMP/delivered.all")
LOST=$(comm -23 "$TMP/acked" "$TMP/delivered" | wc -l)
DUPS=$(uniq -d "$TMP/delivered.all" | wc -l)
EXTRA=$(uniq -c "$TMP/delivered.all" | awk '$1 > 1 { s += $1 - 1 } END { print s + 0 }')
UNACKED=$(comm -13 "$TMP/acked" "$TMP/delivered" | wc -l)
ACK_DUP=$(uniq -d "$TMP/acked.all" | wc -l)
RESTART_STATS=$(printf '%s\n' "${RESTARTS[@]}" | sort -n \
    | awk '{ a[NR] = $1; s += $1 } END { printf "mean %.0f ms, median %d ms, max %d ms", s / NR, a[int((NR + 1) / 2)], a[NR] }')

echo "crash loop: $KILLS × kill -9 under $SESSIONS smtp-source sessions ($SIZE-octet messages) over ${LOAD_SECS}s"
echo "  acknowledged (250 seen by smtp-source):   $ACKED  ($(calc "$ACKED / $LOAD_SECS" 0) msgs/s with the kills)"
echo "  delivered to smtp-sink (transactions):    $DELIVERED  ($(wc -l <"$TMP/delivered") distinct queue ids)"
echo "  LOST (acknowledged, never delivered):     $LOST"
echo "  duplicates (queue ids delivered twice+):  $DUPS  ($EXTRA extra copies)"
echo "  delivered without a 250 seen:             $UNACKED  (the reply died with the process)"
echo "  queue ids acknowledged twice:             $ACK_DUP"
echo "  restart until listening:                  $RESTART_STATS"
echo "  queue drained at the end:                 $([[ $drained == 1 ]] && echo yes || echo "NO, after ${DRAIN_WAIT}s")"
if ((LOST > 0)); then
    comm -23 "$TMP/acked" "$TMP/delivered" | head -20 | sed 's/^/  lost: /'
    KEEP=1
    exit 1
fi
[[ $drained == 1 ]] || { KEEP=1; exit 1; }
