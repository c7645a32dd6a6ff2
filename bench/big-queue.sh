#!/usr/bin/env bash
# bench/big-queue.sh: faxmta with a large queue.
#
# Fills a queue with MESSAGES small messages (1 KiB body, one recipient)
# through the store's own API (queue/examples/fill_queue.rs: real enqueues,
# many at once so that their syncs are shared), MESSAGES - HELD of them
# deferred to a relay domain whose host is a closed port (next attempt in
# a day) and HELD held for an ETRN domain. Then measures:
#   - start-up (recovery) time of `faxmta serve` until it logs "ready", and
#     its resident memory then;
#   - `faxmta queue list` (through the running server's control socket)
#     and `faxmta queue list --json`: wall time, the CLI's peak RSS, the
#     server's RSS after; `faxmta queue summary`; the same list with no
#     server running (the CLI opens the queue itself);
#   - `ETRN etrn.test` over SMTP (python smtplib) from a client in
#     release_from: the time of the 25x reply, then the delivery of the HELD
#     messages to Postfix's smtp-sink: time to drain, messages per second,
#     SMTP sessions used.
# A benchmark that prints figures; it asserts nothing about speed. It fails
# only when it cannot measure (a tool missing, not enough disk, a server
# that does not start, messages that never reach the sink).
#
#   bash bench/big-queue.sh                      # 1,000,000 messages
#   MESSAGES=100000 HELD=10000 bash bench/big-queue.sh
#
# Environment (all optional):
#   FAXMTA_BIN          use this binary instead of `cargo build --release`
#   FILL_BIN            the fill tool (default: built with
#                       `cargo build --release -p faxmta-queue --example fill_queue`)
#   MESSAGES=1000000    messages in the queue
#   HELD=100000         of which held for the ETRN domain
#   FILL_CONCURRENCY=512  concurrent enqueues while filling
#   FILLED=DIR          keep the filled queue in DIR (filled only if DIR does
#                       not exist yet) and run on a copy of it: repeated runs
#                       skip the fill
#   DROP_CACHES=0       1: also measure a cold start (drops the page cache:
#                       root only, and it slows everyone on the machine a bit)
#   FX_CONCURRENCY, FX_DEST_CONCURRENCY
#                       faxmta's [queue] concurrency / destination_concurrency
#                       (default: faxmta's defaults)
#   FAXMTA_LOG=info     faxmta's [log] level
#   DRAIN_WAIT=1800     seconds to wait for the released messages
#   BENCH_DIR           parent of the temp dir (default $TMPDIR or /tmp)
#   KEEP=1              keep the temp dir (queue, logs, listings)
#
# Nothing leaves 127.0.0.0/8 and no resolver is asked: [dns] nameservers is
# 127.0.0.1:9 (nothing listens there); both domains have literal hosts.
set -euo pipefail

NAME=big-queue.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib/common.sh
source "$REPO/bench/lib/common.sh"
MESSAGES=${MESSAGES:-1000000}
HELD=${HELD:-100000}
FILL_CONCURRENCY=${FILL_CONCURRENCY:-512}
FAXMTA_LOG=${FAXMTA_LOG:-info}
DRAIN_WAIT=${DRAIN_WAIT:-1800}
DROP_CACHES=${DROP_CACHES:-0}
export LC_ALL=C

((HELD <= MESSAGES)) || die "HELD ($HELD) cannot exceed MESSAGES ($MESSAGES)"

# --- tools and binaries -------------------------------------------------------
command -v python3 >/dev/null || die "python3 is required (ETRN client, free ports)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is required: apt-get install time"
SMTP_SINK=$(find_tool smtp-sink) || die "smtp-sink is missing: apt-get install postfix"
if [[ -z ${FAXMTA_BIN:-} || -z ${FILL_BIN:-} ]]; then
    note "building faxmta and the fill tool (cargo build --release) in $REPO"
    (cd "$REPO" && cargo build --release --quiet && cargo build --release --quiet -p faxmta-queue --example fill_queue) >&2 \
        || die "cargo build --release failed"
fi
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${FAXMTA_BIN:-$TARGET/release/faxmta}
FILL=${FILL_BIN:-$TARGET/release/examples/fill_queue}
[[ -x $BIN ]] || die "no faxmta binary at $BIN"
[[ -x $FILL ]] || die "no fill tool at $FILL"

TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-bigq.XXXXXX")
chmod 755 "$TMP" # smtp-sink runs as nobody
FAXMTA_PID=
SINK_PID=
stop_pid() { # stop_pid PID: TERM, wait up to 30 s, then KILL
    kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null || true
    return 0
}
cleanup() {
    set +e
    [[ -n $FAXMTA_PID ]] && stop_pid "$FAXMTA_PID"
    [[ -n $SINK_PID ]] && stop_pid "$SINK_PID"
    if [[ ${KEEP:-0} == 1 ]]; then note "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss() { awk -v k="$2" '$1 == k":" { printf "%.0f MiB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
# timed LABEL OUTFILE CMD...: runs CMD under GNU time; prints wall and peak RSS.
timed() {
    local label=$1 out=$2
    shift 2
    /usr/bin/time -v -o "$TMP/time.txt" "$@" >"$out" 2>"$TMP/timed.err" \
        || { cat "$TMP/timed.err" >&2; die "$label failed"; }
    local wall peak
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f s", s }' "$TMP/time.txt")
    peak=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f MiB", $2 / 1024 }' "$TMP/time.txt")
    printf '%-34s %10s, peak RSS %8s, output %s\n' "$label" "$wall" "$peak" \
        "$(du -h "$out" | cut -f1) ($(wc -l <"$out") lines)"
}

# --- the machine ------------------------------------------------------------
NEED_KB=$((MESSAGES * 7 + 1048576))
FREE_KB=$(df -Pk "$TMP" | awk 'NR==2 { print $4 }')
COPIES=1
[[ -n ${FILLED:-} && ! -d ${FILLED:-} ]] && COPIES=2
((FREE_KB > NEED_KB * COPIES)) \
    || die "not enough disk under $TMP: $((FREE_KB / 1024)) MiB free, about $((NEED_KB / 1024)) MiB needed per queue copy"
echo "== faxmta big-queue benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:    $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr), load avg $(cut -d' ' -f1-3 /proc/loadavg) (shared)"
echo "filesystem: $TMP on $(df -hT "$TMP" | awk 'NR==2 { print $1 " (" $2 ", " $5 " free)" }')"
echo "faxmta:     $BIN ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$REPO" status --porcelain -- src queue 2>/dev/null) ]] && echo ', work tree has uncommitted changes'))"
echo "queue:      $MESSAGES messages of ~1 KiB: $((MESSAGES - HELD)) deferred to relay.test (closed port), $HELD held for ETRN etrn.test"
echo

# --- fill ---------------------------------------------------------------------
QUEUE=$TMP/queue
fill() { # fill DIR
    note "filling $1 with $MESSAGES messages ($FILL)"
    local t0 t1
    t0=$(now)
    # Deferred a day: none of them comes due during the run (a reused
    # FILLED queue keeps its times).
    "$FILL" "$1" "$MESSAGES" "$HELD" --relay relay.test --etrn etrn.test --defer 86400 \
        --concurrency "$FILL_CONCURRENCY" >"$TMP/fill.out" || die "the fill tool failed"
    t1=$(now)
    echo "fill:       $(cat "$TMP/fill.out") (wall $(calc "$t1 - $t0") s, $(du -sh "$1" | cut -f1) on disk)"
}
if [[ -n ${FILLED:-} ]]; then
    if [[ ! -d $FILLED ]]; then
        fill "$FILLED"
    else
        echo "fill:       reusing $FILLED ($(du -sh "$FILLED" | cut -f1))"
    fi
    note "copying $FILLED to $QUEUE"
    cp -a "$FILLED" "$QUEUE"
else
    fill "$QUEUE"
fi

# --- the sink and the configuration -------------------------------------------
SINK_PORT=$(free_port 127.0.0.5)
user=()
[[ $(id -u) -eq 0 ]] && user=(-u nobody)
"$SMTP_SINK" "${user[@]}" -c "127.0.0.5:$SINK_PORT" 1024 >"$TMP/sink.out" 2>&1 &
SINK_PID=$!
wait_port 127.0.0.5 "$SINK_PORT" 10 "$SINK_PID" || { cat "$TMP/sink.out" >&2; die "smtp-sink did not start"; }
PORT=$(free_port 127.0.0.1)
ADMIN_PORT=$(free_port 127.0.0.1)
CONF=$TMP/faxmta.toml
cat >"$CONF" <<EOF
hostname = "bigq.bench.test"
[queue]
path = "$QUEUE"
${FX_CONCURRENCY:+concurrency = $FX_CONCURRENCY}
${FX_DEST_CONCURRENCY:+destination_concurrency = $FX_DEST_CONCURRENCY}
[control]
socket = "$TMP/faxmta.sock"
[tls]
generated_dir = "$TMP/tls"
[[listener]]
addr = "127.0.0.1:$PORT"
role = "mx"
tls = "none"
[smtp]
shutdown_grace = "2s"
[dns]
nameservers = ["127.0.0.1:9"]
[outbound]
tls = "off"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[log]
level = "$FAXMTA_LOG"

[[domain]]
name = "relay.test"
kind = "relay"
hosts = ["127.0.0.1:9"]

[[domain]]
name = "etrn.test"
kind = "etrn"
release_from = ["127.0.0.0/8"]
hosts = ["127.0.0.5:$SINK_PORT"]
EOF

# --- start-up -----------------------------------------------------------------
# start LABEL: starts faxmta, waits for "ready"; prints the time and RSS.
start() {
    local log=$TMP/faxmta-$1.log t0 t1
    t0=$(now)
    "$BIN" serve --config "$CONF" 2>"$log" &
    FAXMTA_PID=$!
    local end=$((SECONDS + 600))
    until grep -q ' ready as ' "$log" 2>/dev/null; do
        kill -0 "$FAXMTA_PID" 2>/dev/null || { tail -20 "$log" >&2; die "faxmta exited during start-up"; }
        ((SECONDS < end)) || die "faxmta not ready after 600 s"
        sleep 0.02
    done
    t1=$(now)
    printf '%-34s %8s s, RSS %s (peak %s)\n' "start-up until ready ($1)" "$(calc "$t1 - $t0" 2)" \
        "$(rss "$FAXMTA_PID" VmRSS)" "$(rss "$FAXMTA_PID" VmHWM)"
    sleep 5
    printf '%-34s %10s, RSS %s\n' "  5 s later" "" "$(rss "$FAXMTA_PID" VmRSS)"
}
stop() {
    local t0
    t0=$(now)
    stop_pid "$FAXMTA_PID"
    FAXMTA_PID=
    printf '%-34s %8s s\n' "shutdown (SIGTERM until exit)" "$(calc "$(now) - $t0" 2)"
}
fx() { "$BIN" "$@" --config "$CONF"; }

start warm
timed "queue list (server running)" "$TMP/list.txt" "$BIN" queue list --config "$CONF"
printf '%-34s %10s  RSS %s\n' "  server after the list" "" "$(rss "$FAXMTA_PID" VmRSS)"
timed "queue list --json (server running)" "$TMP/list.json" "$BIN" queue list --json --config "$CONF"
printf '%-34s %10s  RSS %s\n' "  server after the list" "" "$(rss "$FAXMTA_PID" VmRSS)"
if fx queue summary >"$TMP/summary.txt" 2>&1; then
    timed "queue summary" "$TMP/summary.txt" "$BIN" queue summary --config "$CONF"
    sed 's/^/    /' "$TMP/summary.txt"
fi
tail -1 "$TMP/list.txt" | sed 's/^/  list ends: /'
stop
timed "queue list (no server)" "$TMP/list-offline.txt" "$BIN" queue list --config "$CONF"
if [[ $DROP_CACHES == 1 ]]; then
    sync
    echo 3 >/proc/sys/vm/drop_caches || die "cannot drop the page cache (DROP_CACHES=1 needs root)"
    start cold
else
    start again
fi

# --- ETRN release -------------------------------------------------------------
note "ETRN etrn.test: releasing $HELD messages to smtp-sink on 127.0.0.5:$SINK_PORT"
T0=$(now)
REPLY=$(python3 - "$PORT" <<'EOF'
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=600)
s.ehlo('customer.etrn.test')
code, text = s.docmd('ETRN', 'etrn.test')
print(code, text.decode())
s.quit()
EOF
) || die "the ETRN client failed"
T1=$(now)
printf '%-34s %8s s: %s\n' "ETRN reply" "$(calc "$T1 - $T0" 2)" "$REPLY"
end=$((SECONDS + DRAIN_WAIT))
FIRST=
while :; do
    read -r SESS MSGS < <(sink_counts "$TMP/sink.out")
    [[ -z $FIRST && $MSGS -gt 0 ]] && FIRST=$(now)
    ((MSGS >= HELD)) && break
    ((SECONDS < end)) || die "only $MSGS of $HELD messages reached the sink in $DRAIN_WAIT s"
    sleep 0.2
done
T2=$(now)
printf '%-34s %8s s after ETRN (first message after %s s)\n' "drained $MSGS messages" \
    "$(calc "$T2 - $T0" 1)" "$(calc "${FIRST:-$T2} - $T0" 2)"
printf '%-34s %8s msg/s (from the ETRN command to the last message)\n' "delivery rate" \
    "$(calc "$MSGS / ($T2 - $T0)" 0)"
printf '%-34s %10s  RSS %s (peak %s)\n' "  server after the release" "" \
    "$(rss "$FAXMTA_PID" VmRSS)" "$(rss "$FAXMTA_PID" VmHWM)"
stop
# smtp-sink counts a session when it ends: read them once faxmta has
# closed its pooled connections.
sleep 1
read -r SESS MSGS < <(sink_counts "$TMP/sink.out")
printf '%-34s %8s (%s messages per session)\n' "SMTP sessions to the sink" "$SESS" \
    "$(calc "$MSGS / ($SESS > 0 ? $SESS : 1)" 1)"
echo "warnings/errors logged: $(cat "$TMP"/faxmta-*.log | grep -cE ' (WARN|ERROR) ' || true)"
