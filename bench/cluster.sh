#!/usr/bin/env bash
# bench/cluster.sh: relay throughput of faxmta nodes sharing one queue on
# PostgreSQL — 1, 2 and 3 nodes — next to one node on sled and Postfix
# (bench/relay.sh, run first in the same invocation, same load), CPU per
# message, and the recovery after kill -9 of a node.
#
# A benchmark that prints figures; it asserts nothing about speed. It fails
# only when it cannot measure (a tool is missing, a server does not start,
# not every message reaches its sink).
#
#   bash bench/cluster.sh
#
# Load: smtp-source → the nodes (each its own smtp-source, MESSAGES/N
# messages over SESSIONS/N sessions, all at once) → smtp-sink on
# 127.0.0.5. Nodes listen on 127.0.0.2, .3 and .4; PostgreSQL is a private
# instance (tests/peers/postgres.sh: initdb in the temp dir, fsync and
# synchronous_commit on) on 127.0.0.1, a fresh database per measurement.
# As root the PostgreSQL part runs in a private network namespace (unshare
# -n, only lo); nothing resolves names (relay-to-host, [dns] pinned to a
# port where nothing listens).
#
# Environment (all optional):
#   FAXMTA_BIN        use this binary instead of `cargo build --release`
#   MESSAGES=3000     messages per measurement
#   SESSIONS=30       SMTP sessions in all, split over the nodes
#   SIZE=10240        message size in octets
#   NODE_COUNTS="1 2 3"  the cluster sizes measured
#   LEASE=10          [queue] lease_time of the recovery run, seconds
#   RECOVERY_MESSAGES=600  messages of the recovery run
#   RELAY=1           also run bench/relay.sh (sled and Postfix) first
#   NETNS=auto        auto|1|0 as in bench/relay.sh
#   KEEP=1            keep the temp dir
set -euo pipefail
NAME=cluster.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib/common.sh
. "$REPO/bench/lib/common.sh"
MESSAGES=${MESSAGES:-3000}
SESSIONS=${SESSIONS:-30}
SIZE=${SIZE:-10240}
NODE_COUNTS=${NODE_COUNTS:-"1 2 3"}
LEASE=${LEASE:-10}
RECOVERY_MESSAGES=${RECOVERY_MESSAGES:-600}
RELAY=${RELAY:-1}
NETNS=${NETNS:-auto}
export LC_ALL=C

if [[ -z ${CLUSTER_SH_INSIDE:-} ]]; then
    need_postfix_tools
    build_faxmta "$REPO"
    "$REPO/tests/peers/postgres.sh" bin >/dev/null \
        || die "PostgreSQL is missing: apt-get install postgresql (scripts/test installs it)"
    if [[ $RELAY == 1 ]]; then
        echo "== one node on sled, and Postfix: bench/relay.sh (same load)"
        MESSAGES=$MESSAGES SESSIONS=$SESSIONS SIZE=$SIZE FAXMTA_BIN=$BIN BENCH_POSTFIX=auto \
            bash "$REPO/bench/relay.sh" | grep -v '^#' || die "bench/relay.sh failed"
        echo
    fi
    export CLUSTER_SH_NETNS="off: loopback by configuration only"
    if [[ $NETNS != 0 && $(id -u) -eq 0 ]] && unshare -n true 2>/dev/null; then
        export CLUSTER_SH_INSIDE=1 CLUSTER_SH_NETNS="private network namespace (unshare -n), only lo"
        export FAXMTA_BIN=$BIN SMTP_SOURCE SMTP_SINK
        exec unshare -n -- bash "${BASH_SOURCE[0]}" "$@"
    fi
    [[ $NETNS == 1 ]] && die "NETNS=1 but no private network namespace (needs root and unshare)"
    export FAXMTA_BIN=$BIN
fi
BIN=$FAXMTA_BIN
[[ $CLUSTER_SH_NETNS == private* ]] && ip link set lo up
SMTP_SOURCE=${SMTP_SOURCE:-$(find_tool smtp-source)}
SMTP_SINK=${SMTP_SINK:-$(find_tool smtp-sink)}
HZ=$(getconf CLK_TCK)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/faxmta-cluster.XXXXXX")
chmod 755 "$TMP"
PG=$TMP/pg
PG_PORT=$(free_port 127.0.0.1)
NODE_PIDS=()
SINK_PID=
cleanup() {
    for p in "${NODE_PIDS[@]}" $SINK_PID; do kill -9 "$p" 2>/dev/null || true; done
    "$REPO/tests/peers/postgres.sh" stop "$PG" 2>/dev/null || true
    [[ ${KEEP:-0} == 1 ]] && note "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

note "PostgreSQL: a private instance on 127.0.0.1:$PG_PORT"
"$REPO/tests/peers/postgres.sh" start "$PG" "$PG_PORT" >&2
psql_do() { psql -X -q -A -t -h 127.0.0.1 -p "$PG_PORT" -U faxmta -d "${2:-postgres}" -c "$1"; }

# ticks PID...: user+sys clock ticks of these processes (all threads).
ticks() {
    local sum=0 p t
    for p in "$@"; do
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        sum=$((sum + t))
    done
    echo "$sum"
}
# pg_pids: the postmaster and its children (backends, writers).
pg_pids() {
    local master
    master=$(head -1 "$PG/data/postmaster.pid")
    echo "$master" $(pgrep -P "$master" || true)
}
ms_per() { awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN { printf "%.2f", t * 1000 / hz / n }'; }
cpu_snap() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# start_sink [FLAGS]: smtp-sink counting messages on 127.0.0.5.
start_sink() {
    SINK_PORT=$(free_port 127.0.0.5)
    SINK_OUT=$TMP/sink.out
    local user=()
    [[ $(id -u) -eq 0 ]] && user=(-u nobody)
    "$SMTP_SINK" "${user[@]}" -c "$@" "127.0.0.5:$SINK_PORT" 1024 >"$SINK_OUT" 2>&1 &
    SINK_PID=$!
    wait_port 127.0.0.5 "$SINK_PORT" 10 "$SINK_PID" || die "smtp-sink did not start"
}
stop_sink() { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; SINK_PID=; }
delivered() { sink_counts "$SINK_OUT" | cut -d' ' -f2; }

# start_node I: node nI on 127.0.0.(I+1); sets NODE_PORT[I].
declare -A NODE_PORT NODE_PID
start_node() {
    local i=$1 ip=127.0.0.$(($1 + 1)) dir=$TMP/n$1
    mkdir -p "$dir"
    NODE_PORT[$i]=${NODE_PORT[$i]:-$(free_port "$ip")}
    cat >"$dir/faxmta.toml" <<EOF
hostname = "n$i.bench.test"
[queue]
backend = "postgres"
url = "postgres://faxmta@127.0.0.1:$PG_PORT/bench"
node = "n$i"
path = "$dir/queue"
lease_time = "${LEASE}s"
[control]
socket = "$dir/faxmta.sock"
[tls]
generated_dir = "$dir/tls"
[[listener]]
addr = "$ip:${NODE_PORT[$i]}"
role = "mx"
tls = "none"
[smtp]
shutdown_grace = "2s"
[relay]
allow = ["127.0.0.0/8"]
[dns]
nameservers = ["127.0.0.1:9"]
[outbound]
tls = "off"
[admin]
enabled = false
[log]
level = "info"
[[domain]]
name = "sink.test"
kind = "relay"
hosts = ["127.0.0.5:$SINK_PORT"]
EOF
    "$BIN" serve --config "$dir/faxmta.toml" 2>>"$dir/faxmta.log" &
    NODE_PID[$i]=$!
    NODE_PIDS+=("${NODE_PID[$i]}")
    wait_port "$ip" "${NODE_PORT[$i]}" 30 "${NODE_PID[$i]}" \
        || { tail -20 "$dir/faxmta.log" >&2; die "node n$i did not start"; }
}
stop_nodes() {
    local i
    for i in "${!NODE_PID[@]}"; do kill "${NODE_PID[$i]}" 2>/dev/null || true; done
    for i in "${!NODE_PID[@]}"; do wait "${NODE_PID[$i]}" 2>/dev/null || true; done
    NODE_PID=()
}
fresh_database() {
    PGOPTIONS="-c client_min_messages=warning" psql_do "DROP DATABASE IF EXISTS bench" >/dev/null
    psql_do "CREATE DATABASE bench" >/dev/null
}
# wait_delivered N SECONDS: until the sink has N messages.
wait_delivered() {
    local end=$((SECONDS + $2))
    while (($(delivered) < $1)); do
        ((SECONDS < end)) || return 1
        sleep 0.1
    done
}

echo "== faxmta nodes on PostgreSQL $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:    $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr)"
echo "postgresql: $(psql_do 'SHOW server_version'), fsync $(psql_do 'SHOW fsync'), synchronous_commit on for the enqueue's commit"
echo "network:    $CLUSTER_SH_NETNS"
echo "load:       $MESSAGES messages of $SIZE octets, $SESSIONS sessions in all"
printf '%-6s %10s %10s %12s %12s %12s %10s\n' nodes "accept/s" "relay/s" "faxmta ms" "postgres ms" "machine ms" "WAL KiB"
wal() { psql_do "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"; }

for n in $NODE_COUNTS; do
    fresh_database
    start_sink
    for i in $(seq 1 "$n"); do start_node "$i"; done
    nodes=()
    for i in $(seq 1 "$n"); do nodes+=("${NODE_PID[$i]}"); done
    sync
    fx0=$(ticks "${nodes[@]}")
    pg0=$(ticks $(pg_pids))
    m0=$(cpu_snap)
    w0=$(wal)
    t0=$(now)
    per=$((MESSAGES / n))
    sess=$(((SESSIONS + n - 1) / n))
    srcs=()
    for i in $(seq 1 "$n"); do
        "$SMTP_SOURCE" -s "$sess" -l "$SIZE" -m "$per" -f sender@bench.test -t user@sink.test \
            "127.0.0.$((i + 1)):${NODE_PORT[$i]}" >"$TMP/source-$n-$i.out" 2>&1 &
        srcs+=($!)
    done
    for p in "${srcs[@]}"; do wait "$p" || die "smtp-source failed: $(cat "$TMP"/source-"$n"-*.out)"; done
    t_acked=$(now)
    total=$((per * n))
    wait_delivered "$total" 300 || die "$n node(s): only $(delivered) of $total delivered"
    t_done=$(now)
    fx1=$(ticks "${nodes[@]}")
    pg1=$(ticks $(pg_pids))
    m1=$(cpu_snap)
    w1=$(wal)
    printf '%-6s %10s %10s %12s %12s %12s %10s\n' "$n" \
        "$(calc "$total / ($t_acked - $t0)" 0)" "$(calc "$total / ($t_done - $t0)" 0)" \
        "$(ms_per $((fx1 - fx0)) "$total")" "$(ms_per $((pg1 - pg0)) "$total")" \
        "$(ms_per $((m1 - m0)) "$total")" "$(calc "($w1 - $w0) / 1024 / $total" 1)"
    stop_nodes
    stop_sink
done
echo "(ms: CPU milliseconds per message — of the faxmta nodes, of PostgreSQL's processes, and of the whole machine incl. smtp-source and smtp-sink;"
echo " WAL KiB: write-ahead log written per message, from its commit to its removal)"

# --- recovery after kill -9 ---------------------------------------------------
echo
echo "== recovery after kill -9 of a node (3 nodes, lease_time ${LEASE}s, $RECOVERY_MESSAGES messages, the sink waits 1 s before each DATA)"
fresh_database
start_sink -w 1
for i in 1 2 3; do start_node "$i"; done
per=$((RECOVERY_MESSAGES / 3))
srcs=()
for i in 1 2 3; do
    "$SMTP_SOURCE" -s 10 -l "$SIZE" -m "$per" -f sender@bench.test -t user@sink.test \
        "127.0.0.$((i + 1)):${NODE_PORT[$i]}" >"$TMP/source-rec-$i.out" 2>&1 &
    srcs+=($!)
done
for p in "${srcs[@]}"; do wait "$p" || die "smtp-source failed"; done
total=$((per * 3))
end=$((SECONDS + 60))
until [[ $(psql_do "SELECT count(*) FROM queue_message WHERE lease_node = 'n1' AND lease_until > now()" bench) != 0 ]]; do
    ((SECONDS < end)) || die "node n1 never held a lease"
    sleep 0.05
done
# The messages n1 is delivering when it dies: the others take them over
# once their leases expire.
psql_do "CREATE TABLE IF NOT EXISTS bench_killed AS SELECT id FROM queue_message WHERE lease_node = 'n1' AND lease_until > now()" bench >/dev/null
held=$(psql_do "SELECT count(*) FROM bench_killed" bench)
kill -9 "${NODE_PID[1]}"
t_kill=$(now)
wait "${NODE_PID[1]}" 2>/dev/null || true
unset 'NODE_PID[1]'
before=$(delivered)
end=$((SECONDS + 600))
# Taken over: leased by another node (or delivered already).
until [[ $(psql_do "SELECT count(*) FROM queue_message WHERE id IN (SELECT id FROM bench_killed) AND lease_node IS NOT DISTINCT FROM 'n1'" bench) == 0 ]]; do
    ((SECONDS < end)) || die "n1's messages were never taken over"
    sleep 0.1
done
t_taken=$(now)
until [[ $(psql_do "SELECT count(*) FROM queue_message WHERE id IN (SELECT id FROM bench_killed)" bench) == 0 ]]; do
    ((SECONDS < end)) || die "n1's messages were never delivered"
    sleep 0.1
done
t_gone=$(now)
wait_delivered "$total" 600 || die "after the kill only $(delivered) of $total delivered"
t_all=$(now)
t_restart=$(now)
start_node 1
t_up=$(now)
left=$(psql_do "SELECT count(*) FROM queue_message" bench)
echo "killed n1 while it delivered $held message(s); $before of $total at the sink then"
echo "n1's $held message(s) taken over by the other nodes $(calc "$t_taken - $t_kill" 1) s after the kill (lease_time ${LEASE} s), delivered after $(calc "$t_gone - $t_kill" 1) s (in turn with the rest)"
echo "every acknowledged message at the sink $(calc "$t_all - $t_kill" 1) s after the kill (two nodes left, 1 s per delivery at the sink)"
echo "n1 listening again $(calc "$t_up - $t_restart" 2) s after its restart; queue left: $left"
dups=$(($(delivered) - total))
echo "duplicates at the sink: $dups"
stop_nodes
stop_sink
