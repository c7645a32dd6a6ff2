#!/usr/bin/env bash
# bench/idle-clients.sh: hostile and slow clients.
#
# What it measures, against the release binary with a private config:
#   1. 5,000 idle SMTP connections (greeting read, then silence): how many
#      the machine allowed, the server's VmRSS and open descriptors before
#      and after (from /proc), so memory per idle connection;
#   2. the latency of new clients doing a whole SMTP transaction (connect
#      -> 220, and connect -> EHLO/MAIL/RCPT/DATA/QUIT -> 221), p50/p95/p99/
#      max over PROBES clients one after the other: with no load, with the
#      idle ones connected, and with slowloris clients trickling too;
#   3. slowloris clients (one byte every EVERY s, in a command line or in
#      DATA): how long until the server cuts them, against the configured
#      command_timeout / data_timeout + min_data_rate;
#   4. stress (a second server run): IDLE connections against
#      max_connections STRESS_MAX with stress_threshold 80 %: how soon the
#      idle ones are cut at stress_timeout, and new clients' latency then.
# The client side (bench/idle_clients.py, asyncio) holds every socket in
# one process. A benchmark that prints figures; it asserts nothing about
# speed or memory, and fails only when it cannot measure.
#
#   bash bench/idle-clients.sh
#
# Environment (all optional):
#   FAXMTA_BIN          use this binary instead of `cargo build --release`
#   IDLE=5000           idle connections to hold
#   PROBES=200          new clients timed per latency figure
#   SLOW=500            slowloris clients in a command line
#   SLOW_DATA=100       slowloris clients in DATA
#   EVERY=2             seconds between a slowloris client's bytes
#   COMMAND_TIMEOUT=20s DATA_TIMEOUT=30s  the server's [smtp] timeouts here
#                       (shorter than the defaults, 5m and 10m, so that the
#                       run ends soon; the cut comes at the same point)
#   SLOW_WAIT=300       give up on a slowloris client after this many seconds
#   STRESS=1            also run step 4 (0: skip)
#   STRESS_MAX=6000     max_connections of step 4
#   LEGACY=1            for a build older than the stress settings (before
#                       they existed): write no stress_threshold and skip step 4,
#                       to measure the "before" figures with FAXMTA_BIN
#   BENCH_DIR           parent of the temp dir (default $TMPDIR or /tmp)
#   KEEP=1              keep the temp dir (config, server log) after the run
set -euo pipefail

NAME=idle-clients.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib/common.sh
source "$REPO/bench/lib/common.sh"
IDLE=${IDLE:-5000}
PROBES=${PROBES:-200}
SLOW=${SLOW:-500}
SLOW_DATA=${SLOW_DATA:-100}
EVERY=${EVERY:-2}
COMMAND_TIMEOUT=${COMMAND_TIMEOUT:-20s}
DATA_TIMEOUT=${DATA_TIMEOUT:-30s}
STRESS=${STRESS:-1}
STRESS_MAX=${STRESS_MAX:-6000}
LEGACY=${LEGACY:-0}
SLOW_WAIT=${SLOW_WAIT:-300}
if [[ $LEGACY == 1 ]]; then NO_STRESS=""; STRESS=0; else NO_STRESS="stress_threshold = 0"; fi
export LC_ALL=C


command -v python3 >/dev/null || die "python3 is required (the client side)"

build_faxmta "$REPO"

# --- temp dir and cleanup ---------------------------------------------------
TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-idle.XXXXXX")
FAXMTA_PID=
stop_server() {
    if [[ -n $FAXMTA_PID ]] && kill -0 "$FAXMTA_PID" 2>/dev/null; then
        kill -TERM "$FAXMTA_PID"
        for _ in $(seq 100); do kill -0 "$FAXMTA_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$FAXMTA_PID" 2>/dev/null && kill -KILL "$FAXMTA_PID"
        wait "$FAXMTA_PID" 2>/dev/null || true
    fi
    FAXMTA_PID=
}
cleanup() {
    set +e
    stop_server
    if [[ ${KEEP:-0} == 1 ]]; then note "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# start_server NAME SMTP-LINES: a private faxmta on a free port (PORT set).
start_server() {
    local dir=$TMP/$1
    mkdir -p "$dir"
    PORT=$(free_port 127.0.0.1)
    cat >"$dir/faxmta.toml" <<EOF
hostname = "mx.bench.test"
[queue]
path = "$dir/queue"
[control]
socket = "$dir/faxmta.sock"
[dns]
nameservers = ["127.0.0.1:9"]    # never the system resolver; nothing listens there
timeout = "1s"
[admin]
enabled = false
[tls]
generated_dir = "$dir/tls"
[[listener]]
addr = "127.0.0.1:$PORT"
role = "mx"
tls = "none"
[smtp]
shutdown_grace = "2s"
$2
[log]
level = "info"
[[domain]]
name = "localhost"
kind = "local"
deliver = "maildir:$dir/mail/{domain}/{user}"
EOF
    "$BIN" serve --config "$dir/faxmta.toml" 2>"$dir/faxmta.log" &
    FAXMTA_PID=$!
    if ! wait_port 127.0.0.1 "$PORT" 30 "$FAXMTA_PID"; then
        tail -20 "$dir/faxmta.log" >&2
        die "faxmta did not start listening on 127.0.0.1:$PORT"
    fi
    sleep 0.5
}

echo "== faxmta idle and slow clients $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:  $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr); load avg $(cut -d' ' -f1-3 /proc/loadavg) (shared machine: other work skews every figure)"
echo "limits:   ulimit -n $(ulimit -Sn) (soft) / $(ulimit -Hn) (hard); ephemeral ports $(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range); somaxconn $(cat /proc/sys/net/core/somaxconn)"
echo "faxmta:   $BIN ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$REPO" status --porcelain -- src 2>/dev/null) ]] && echo ', work tree has uncommitted changes'))"
echo

# --- 1-2: idle connections and latency (default timeouts) -----------------
MAX=$((IDLE + 1000))
start_server idle "max_connections = $MAX
max_connections_per_ip = 0
$NO_STRESS"
echo "server 1: max_connections $MAX, per-ip no limit, stress off, default timeouts (command 5m, data 10m)"
grep -m1 "open files limit" "$TMP/idle/faxmta.log" | sed 's/^.*INFO /          server log: /' || true
python3 "$REPO/bench/idle_clients.py" --phase idle --pid "$FAXMTA_PID" --port "$PORT" \
    --idle "$IDLE" --probes "$PROBES" || die "the client side failed (idle)"
echo "  server log: $(grep -c 'from=<bench@bench.test>' "$TMP/idle/faxmta.log" || true) messages queued"
stop_server
echo

# --- 3: slowloris (short timeouts so that the run ends soon) -----------------
start_server slow "max_connections = $((SLOW + SLOW_DATA + 1000))
max_connections_per_ip = 0
$NO_STRESS
command_timeout = \"$COMMAND_TIMEOUT\"
data_timeout = \"$DATA_TIMEOUT\""
echo "server 2: command_timeout $COMMAND_TIMEOUT, data_timeout $DATA_TIMEOUT$( [[ $LEGACY == 1 ]] || echo ', min_data_rate 500 octets/s (default), stress off')"
python3 "$REPO/bench/idle_clients.py" --phase slow --pid "$FAXMTA_PID" --port "$PORT" \
    --probes "$PROBES" --slow "$SLOW" --slow-data "$SLOW_DATA" --every "$EVERY" --wait "$SLOW_WAIT" \
    --command-timeout "$COMMAND_TIMEOUT" --data-timeout "$DATA_TIMEOUT" \
    || die "the client side failed (slowloris)"
echo "  server log: $(grep -c 'timeout waiting for a command' "$TMP/slow/faxmta.log" || true) command timeouts, $(grep -c 'timeout after .* octets of message data' "$TMP/slow/faxmta.log" || true) data timeouts, $(grep -c 'from=<slow@slow.test>' "$TMP/slow/faxmta.log" || true) messages queued from the slowloris clients"
stop_server
echo

# --- 4: stress --------------------------------------------------------------
if [[ $STRESS == 1 ]]; then
    echo "server 3: max_connections $STRESS_MAX, stress_threshold 80 (stress from $((STRESS_MAX * 80 / 100)) sessions, over at $((STRESS_MAX * 60 / 100))), stress_timeout 10s, command_timeout 5m"
    start_server stress "max_connections = $STRESS_MAX
max_connections_per_ip = 0
stress_threshold = 80
stress_timeout = \"10s\"
command_timeout = \"5m\""
    python3 "$REPO/bench/idle_clients.py" --phase stress --pid "$FAXMTA_PID" --port "$PORT" \
        --idle "$IDLE" --probes "$PROBES" --wait 120 \
        --max-connections "$STRESS_MAX" --stress-threshold 80 --stress-timeout 10s \
        || die "the client side failed (stress)"
    echo "  server log: $(grep -c 'under stress' "$TMP/stress/faxmta.log" || true) time(s) under stress, $(grep -c 'stress over' "$TMP/stress/faxmta.log" || true) time(s) over"
    stop_server
fi
