#!/usr/bin/env bash
# bench/soak.sh: the soak. DURATION seconds of mixed
# load with faults against one faxmta process, sampling its resident
# memory (VmRSS), open file descriptors, threads and queue size every
# SAMPLE seconds, then printing the samples and the trend (least-squares
# slope) over the second half of the run, and the same figures a minute
# after the load stopped.
#
# The load, all at once for the whole run:
#   - smtp-source, 10 sessions, 1 s pause between messages: relayed to
#     Postfix's smtp-sink (domain sink.test)
#   - smtp-source, 2 sessions, 1 s pause: local Maildir delivery (the
#     Maildir is emptied at every sample, as a user's client would)
#   - bench/lib/chaos.py, about two actions a second: mail to domains that
#     reject at RCPT (a second smtp-sink with -f rcpt: bounces, which go to
#     the local sender), have their relay down (connection refused), never
#     speak (tests/peers/hostile.py silent: outbound timeouts), hang up
#     after DATA (hostile.py drop-data), answer 421 (hostile.py 421), or
#     have no DNS (MX lookup against 127.0.0.1:9: DNS timeouts) — the
#     queue gives up after 3 minutes ([queue] lifetime), so delay warnings
#     and expiry reports run too —, slowloris clients, transactions cut in DATA,
#     garbage and out-of-order commands, pipelined transactions, and
#     connections closed at once
#   - `faxmta queue list` (the control socket) at every sample
#
#   bash bench/soak.sh                 # 30 minutes
#   DURATION=300 bash bench/soak.sh    # a 5-minute try
#   SCALE=3 DURATION=7200 bash bench/soak.sh
#                                      # 3 times the load for 2 hours: the
#                                      # work of a 6-hour soak at SCALE=1
#
# Environment (all optional): FAXMTA_BIN, DURATION=1800, SAMPLE=15,
# SCALE=1 (load multiplier: smtp-source sessions and chaos clients),
# CHAOS (chaos clients; default SCALE; 0: only good mail),
# CHAOS_KINDS (a comma-separated subset of chaos.py's kinds: mail,
# slowloris, drop-data, garbage, pipelined, abort; default all),
# CHAOS_DOMAINS (the domains chaos.py mails, space-separated; default
# "reject.test down.test silent.test drop.test busy.test nodns.test"),
# MALLOC_ARENA_MAX and other allocator settings pass through to faxmta,
# QUEUE_CACHE ([queue] cache, e.g. 4M: sled's page cache, to tell a full
# cache from a leak),
# BENCH_DIR (parent of the temp dir), KEEP=1 (keep it: logs, samples.csv).
# Nothing leaves 127.0.0.0/8.
set -euo pipefail
NAME=soak.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib/common.sh
source "$REPO/bench/lib/common.sh"
DURATION=${DURATION:-1800}
SCALE=${SCALE:-1}
SAMPLE=${SAMPLE:-15}
export LC_ALL=C

command -v python3 >/dev/null || die "python3 is required (peers, chaos client)"
need_postfix_tools
build_faxmta "$REPO"

TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-soak.XXXXXX")
chmod 755 "$TMP"
PIDS=()
FX_PID=
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [[ -n $FX_PID ]] && kill -9 "$FX_PID" 2>/dev/null || true
    pkill -TERM -f "smtp-source.*:${FX_PORT:-x}\$" 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 ]]; then note "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

SINK_USER=()
[[ $(id -u) -eq 0 ]] && SINK_USER=(-u nobody)
# start_sink IP PORT [FLAGS...]
start_sink() {
    local ip=$1 port=$2
    shift 2
    "$SMTP_SINK" "${SINK_USER[@]}" "$@" "$ip:$port" 256 >"$TMP/sink.$ip.log" 2>&1 &
    PIDS+=($!)
    wait_port "$ip" "$port" 10 $! || die "smtp-sink on $ip did not start"
}
# start_hostile IP MODE: tests/peers/hostile.py; prints its port.
start_hostile() {
    local fifo=$TMP/hostile.$1.in out=$TMP/hostile.$1.out
    mkfifo "$fifo"
    python3 "$REPO/tests/peers/hostile.py" "$2" --address "$1" <"$fifo" >"$out" 2>&1 &
    PIDS+=($!)
    exec {fd}>"$fifo" # held open: hostile.py exits when its stdin closes
    local end=$((SECONDS + 10))
    until grep -q '^ready' "$out" 2>/dev/null; do
        ((SECONDS < end)) || die "hostile.py $2 did not start"
        sleep 0.1
    done
    awk '/^ready/ { print $2 }' "$out"
}

GOOD=127.0.0.40 REJECT=127.0.0.45 DOWN=127.0.0.44
GOOD_PORT=$(free_port $GOOD)
REJECT_PORT=$(free_port $REJECT)
DOWN_PORT=$(free_port $DOWN)
FX_PORT=$(free_port 127.0.0.1)
ADMIN_PORT=$(free_port 127.0.0.1)
start_sink $GOOD "$GOOD_PORT"
start_sink $REJECT "$REJECT_PORT" -f rcpt
SILENT_PORT=$(start_hostile 127.0.0.41 silent)
DROP_PORT=$(start_hostile 127.0.0.42 drop-data)
BUSY_PORT=$(start_hostile 127.0.0.43 421)

CACHE_LINE=
[[ -n ${QUEUE_CACHE:-} ]] && CACHE_LINE="cache = \"$QUEUE_CACHE\""
relay_domain() { # relay_domain NAME HOST:PORT
    printf '[[domain]]\nname = "%s"\nkind = "relay"\nhosts = ["%s"]\n' "$1" "$2"
}
{
    cat <<EOF
hostname = "mx.soak.test"
[queue]
path = "$TMP/queue"
retry = ["30s", "1m"]
lifetime = "3m"
delay_warning = "1m"
$CACHE_LINE
[control]
socket = "$TMP/faxmta.sock"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[tls]
generated_dir = "$TMP/tls"
[dns]
nameservers = ["127.0.0.1:9"]
timeout = "2s"
[outbound]
tls = "off"
connect_timeout = "10s"
helo_timeout = "20s"
command_timeout = "20s"
data_init_timeout = "20s"
data_timeout = "20s"
data_done_timeout = "30s"
[relay]
allow = ["127.0.0.0/8"]
[[listener]]
addr = "127.0.0.1:$FX_PORT"
role = "mx"
tls = "none"
[smtp]
shutdown_grace = "2s"
max_connections_per_ip = 0
command_timeout = "30s"
data_timeout = "60s"
[log]
level = "info"
[[domain]]
name = "soak.test"
kind = "local"
deliver = "maildir:$TMP/mail/{domain}/{user}"
[[domain]]
name = "sink.test"
kind = "relay"
hosts = ["$GOOD:$GOOD_PORT"]
EOF
    relay_domain reject.test "$REJECT:$REJECT_PORT"
    relay_domain down.test "$DOWN:$DOWN_PORT"
    relay_domain silent.test "127.0.0.41:$SILENT_PORT"
    relay_domain drop.test "127.0.0.42:$DROP_PORT"
    relay_domain busy.test "127.0.0.43:$BUSY_PORT"
} >"$TMP/faxmta.toml"

"$BIN" serve --config "$TMP/faxmta.toml" >"$TMP/faxmta.log" 2>&1 &
FX_PID=$!
wait_port 127.0.0.1 "$FX_PORT" 30 "$FX_PID" || { tail "$TMP/faxmta.log" >&2; die "faxmta did not start"; }
note "faxmta (pid $FX_PID) on 127.0.0.1:$FX_PORT for ${DURATION}s; $TMP"

"$SMTP_SOURCE" -s $((10 * SCALE)) -w 1 -m 100000000 -f load@soak.test -t u@sink.test \
    "127.0.0.1:$FX_PORT" >"$TMP/source.relay.log" 2>&1 &
PIDS+=($!)
"$SMTP_SOURCE" -s $((2 * SCALE)) -w 1 -m 100000000 -f load@soak.test -t u@soak.test \
    "127.0.0.1:$FX_PORT" >"$TMP/source.local.log" 2>&1 &
PIDS+=($!)
read -r -a CHAOS_DOMAIN_LIST <<<"${CHAOS_DOMAINS:-reject.test down.test silent.test drop.test busy.test nodns.test}"
CHAOS_PIDS=()
for ((c = 0; c < ${CHAOS:-$SCALE}; c++)); do
    python3 "$REPO/bench/lib/chaos.py" 127.0.0.1 "$FX_PORT" "$DURATION" load@soak.test \
        "${CHAOS_DOMAIN_LIST[@]}" >"$TMP/chaos.$c.log" 2>&1 &
    CHAOS_PIDS+=($!)
    PIDS+=($!)
done

# sample PHASE: one CSV line (phase, seconds, rss KiB, fds, threads, queued).
T0=$SECONDS
echo "phase,seconds,rss_kib,fds,threads,queued" >"$TMP/samples.csv"
sample() {
    kill -0 "$FX_PID" 2>/dev/null || { tail -30 "$TMP/faxmta.log" >&2; die "faxmta died"; }
    local queued threads
    queued=$("$BIN" queue list --config "$TMP/faxmta.toml" 2>/dev/null \
        | awk '/queue is empty/ { n = 0 } /Requests\.$/ { n = $(NF - 1) } END { print n + 0 }')
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$FX_PID/status")
    echo "$1,$((SECONDS - T0)),$(rss_kib "$FX_PID"),$(fds "$FX_PID"),$threads,$queued" >>"$TMP/samples.csv"
    find "$TMP/mail" -type f -path '*/new/*' -delete 2>/dev/null || true
}
while ((SECONDS - T0 < DURATION)); do
    sample load
    sleep "$SAMPLE"
done
for p in "${CHAOS_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done # they stop by themselves, with their counts
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
END_LOAD=$((SECONDS - T0))
for _ in 1 2 3 4; do sleep 15; sample after; done

kill -TERM "$FX_PID"
wait "$FX_PID" 2>/dev/null && CLEAN=yes || CLEAN=no
FX_PID=

echo "soak: ${END_LOAD}s of mixed load (scale $SCALE) with faults, then 60 s without; one sample every ${SAMPLE}s"
column -s, -t <"$TMP/samples.csv" | awk -v n="$(wc -l <"$TMP/samples.csv")" \
    'NR == 1 || NR % 8 == 2 || NR >= n - 4'
awk -F, -v half="$((END_LOAD / 2))" '
    $1 == "load" && $2 >= half { n++; x += $2; y += $3; f += $4; xx += $2 * $2; xy += $2 * $3; xf += $2 * $4 }
    $1 == "load" { if (!first) first = $3; last = $3; if ($3 > peak) peak = $3; if ($4 > fpeak) fpeak = $4 }
    END {
        d = n * xx - x * x
        printf "second half of the load: RSS slope %+.1f KiB/min, fd slope %+.2f/min (least squares over %d samples)\n",
            60 * (n * xy - x * y) / d, 60 * (n * xf - x * f) / d, n
        printf "RSS first sample %d KiB, last under load %d KiB, peak %d KiB; fds peak %d\n", first, last, peak, fpeak
    }' "$TMP/samples.csv"
echo "load generators:"
grep -hs "^chaos:" "$TMP"/chaos.*.log | sed 's/^/  /' || true
grep -c "status=sent" "$TMP/faxmta.log" | sed 's/^/  deliveries (status=sent): /' || true
grep -c "status=deferred" "$TMP/faxmta.log" | sed 's/^/  deferrals: /' || true
grep -c "status=bounced\|status=expired" "$TMP/faxmta.log" | sed 's/^/  bounced or expired: /' || true
grep -c "panicked" "$TMP/faxmta.log" | sed 's/^/  panics in the log: /' || true
echo "  clean exit on SIGTERM: $CLEAN"
