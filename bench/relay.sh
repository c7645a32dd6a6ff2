#!/usr/bin/env bash
# bench/relay.sh: relay throughput, smtp-source -> faxmta -> smtp-sink next
# to smtp-source -> Postfix -> smtp-sink, same machine, same run, same load.
# Both servers acknowledge durably (250 after DATA
# only once the message is synced to their queue) and then relay it over
# SMTP to an smtp-sink on loopback.
#
# A benchmark that prints figures; it asserts nothing about speed. It fails
# only when it cannot measure (a tool is missing, a server does not start,
# not every message reaches its sink).
#
#   bash bench/relay.sh
#
# Nothing leaves 127.0.0.0/8, and the system resolver is never asked:
#   - faxmta resolves the sink's domain (sink.test: MX 10 mx.sink.test,
#     mx.sink.test A 127.0.0.5) through tests/peers/dns.py on 127.0.0.1,
#     named in its [dns] nameservers; its [outbound] port is the sink's port.
#   - Postfix relays sink.test through a transport map to
#     smtp:[127.0.0.6]:PORT, with smtp_dns_support_level = disabled,
#     smtp_host_lookup = native and smtpd_peername_lookup = no.
#   - As root (and unless NETNS=0), the whole benchmark runs in a private
#     network namespace (unshare -n) whose only interface is lo: a lookup
#     that slipped through could not reach any resolver but dns.py.
#
# Environment (all optional):
#   FAXMTA_BIN        use this binary instead of `cargo build --release`
#   MESSAGES=2000     messages sent by smtp-source (-m)
#   SESSIONS=20       parallel SMTP sessions (-s)
#   SIZE=10240        message size in octets (-l)
#   SMTP_SOURCE_OPTS  extra smtp-source flags, e.g. "-d" (reuse connections)
#   BENCH_POSTFIX=auto  auto|1|0: also measure a private Postfix
#   ORDER="faxmta postfix"  which server is measured first
#   FAXMTA_LOG=info   faxmta's [log] level (info logs one line per delivery,
#                     as Postfix's maillog does)
#   FX_CONCURRENCY, FX_DEST_CONCURRENCY
#                     faxmta's [queue] concurrency / destination_concurrency
#                     (default: faxmta's defaults, 20 and 10)
#   OUTBOUND_TLS=off  faxmta's [outbound] tls (smtp-sink offers no STARTTLS)
#   NETNS=auto        auto|1|0: run inside `unshare -n` (needs root)
#   BENCH_DIR         parent of the temp dir (default $TMPDIR or /tmp); both
#                     queues live there
#   FX_STRACE=1       diagnostic: run faxmta under `strace -f -c -w
#                     --seccomp-bpf` and print its disk and connection system
#                     calls per message, and how long the syncs took
#   KEEP=1            keep the temp dir (logs, sink output) after the run
#   RELAY_WAIT=120    seconds to wait for every message to reach the sink
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-10240}
SMTP_SOURCE_OPTS=${SMTP_SOURCE_OPTS:-}
BENCH_POSTFIX=${BENCH_POSTFIX:-auto}
ORDER=${ORDER:-faxmta postfix}
FAXMTA_LOG=${FAXMTA_LOG:-info}
OUTBOUND_TLS=${OUTBOUND_TLS:-off}
NETNS=${NETNS:-auto}
RELAY_WAIT=${RELAY_WAIT:-120}
export LC_ALL=C
NAME=relay.sh
# shellcheck source=bench/lib/common.sh
. "$REPO/bench/lib/common.sh"
# The configurations of the private faxmta and Postfix (shared with peers.sh).
# shellcheck source=bench/lib/mta.sh
. "$REPO/bench/lib/mta.sh"

cpu_busy() { echo "$1 $2" | awk '{ b = $3 - $1; i = $4 - $2; printf "%.0f%%", (b + i) ? 100 * b / (b + i) : 0 }'; }

# ============================================================================
# Outside the network namespace: tools, the binary, then re-exec inside.
# ============================================================================
if [[ -z ${RELAY_SH_INSIDE:-} ]]; then
    command -v python3 >/dev/null || die "python3 is required (DNS server, free ports, CPU accounting)"
    if ! python3 -c 'import dnslib' 2>/dev/null; then
        note "installing dnslib (pip) for tests/peers/dns.py"
        python3 -m pip install --quiet dnslib >&2 \
            || python3 -m pip install --quiet --break-system-packages dnslib >&2 \
            || die "dnslib is missing and could not be installed: pip install dnslib"
    fi

    need_postfix_tools

    if [[ -n ${FAXMTA_BIN:-} ]]; then
        [[ -x $FAXMTA_BIN ]] || die "FAXMTA_BIN=$FAXMTA_BIN is not an executable file"
        RELAY_SH_BIN_FROM="FAXMTA_BIN; the work tree is at"
    else
        RELAY_SH_BIN_FROM="built from the work tree at"
        note "building faxmta (cargo build --release) in $REPO"
        (cd "$REPO" && cargo build --release --quiet) >&2 || die "cargo build --release failed"
        FAXMTA_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/faxmta
        [[ -x $FAXMTA_BIN ]] || die "no binary at $FAXMTA_BIN after the build"
    fi

    NETNS_STATE="off (NETNS=0): traffic stays on loopback by configuration only"
    if [[ $NETNS != 0 ]]; then
        if [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null && command -v ip >/dev/null \
            && unshare -n true 2>/dev/null; then
            export RELAY_SH_INSIDE=1 FAXMTA_BIN SMTP_SOURCE SMTP_SINK RELAY_SH_BIN_FROM
            export RELAY_SH_NETNS="private network namespace (unshare -n), only lo"
            exec unshare -n -- bash "${BASH_SOURCE[0]}" "$@"
        fi
        [[ $NETNS == 1 ]] && die "NETNS=1 but cannot run in a private network namespace (needs root, unshare, ip)"
        NETNS_STATE="not available (needs root, unshare and ip): traffic stays on loopback by configuration only"
    fi
    export RELAY_SH_NETNS=$NETNS_STATE SMTP_SOURCE SMTP_SINK FAXMTA_BIN RELAY_SH_BIN_FROM
fi

# ============================================================================
# From here on: the benchmark (inside the namespace when there is one).
# ============================================================================
BIN=$FAXMTA_BIN
if [[ $RELAY_SH_NETNS == private* ]]; then
    ip link set lo up || die "cannot bring up lo in the network namespace"
fi

TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-relay.XXXXXX")
# Postfix's daemons (user postfix) and smtp-sink (user nobody) reach in here.
chmod 755 "$TMP"
FAXMTA_PID=
STRACE_PID=
PF_DIR=
SINK_PIDS=()
DNS_PID=
cleanup() {
    set +e
    [[ -n $FAXMTA_PID ]] && stop_pid "$FAXMTA_PID"
    [[ -n $STRACE_PID ]] && stop_pid "$STRACE_PID"
    if [[ -n $PF_DIR && -f $PF_DIR/spool/pid/master.pid ]]; then
        local master
        master=$(tr -dc 0-9 <"$PF_DIR/spool/pid/master.pid")
        postfix -c "$PF_DIR/etc" stop >/dev/null 2>&1
        for _ in $(seq 50); do
            [[ -n $master ]] && kill -0 "$master" 2>/dev/null || break
            sleep 0.1
        done
        [[ -n $master ]] && kill -0 "$master" 2>/dev/null && kill -KILL "$master"
    fi
    local pid
    for pid in "${SINK_PIDS[@]}"; do stop_pid "$pid"; done
    [[ -n $DNS_PID ]] && stop_pid "$DNS_PID"
    if [[ ${KEEP:-0} == 1 ]]; then
        note "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_relayed FILE N: prints the time at which the sink had N messages
# (or the time of giving up); returns 1 if they never all arrived.
wait_relayed() {
    local end=$((SECONDS + RELAY_WAIT)) n
    while :; do
        n=$(sink_counts "$1" | cut -d' ' -f2)
        if ((n >= $2)); then now; return 0; fi
        if ((SECONDS >= end)); then now; return 1; fi
        sleep 0.05
    done
}
# thread_ticks PID: "NAME TICKS" per thread name (user+sys) of PID.
thread_ticks() {
    python3 - "$1" <<'EOF'
import os, sys, collections
pid = sys.argv[1]
acc = collections.Counter()
for t in os.listdir("/proc/%s/task" % pid):
    try:
        with open("/proc/%s/task/%s/stat" % (pid, t)) as f:
            s = f.read()
    except OSError:
        continue
    name = s[s.index("(") + 1:s.rindex(")")].replace(" ", "_")
    f = s[s.rindex(")") + 2:].split()
    acc[name] += int(f[11]) + int(f[12])
for name, ticks in sorted(acc.items()):
    print(name, ticks)
EOF
}
HZ=$(getconf CLK_TCK)
# children_ticks: user+sys ticks of the children this script ($$) has reaped so far.
children_ticks() { awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"; }
# machine_ms CPU0 CPU1: busy CPU ms per message, whole machine, between two cpu_snaps.
machine_ms() { echo "$1 $2" | awk -v hz="$HZ" -v n="$MESSAGES" '{ printf "%.2f", ($3 - $1) * 1000 / hz / n }'; }
# ms_per_msg TICKS0 TICKS1: CPU ms per message between two tick counts.
ms_per_msg() { awk -v a="$1" -v b="$2" -v hz="$HZ" -v n="$MESSAGES" 'BEGIN { printf "%.2f", (b - a) * 1000 / hz / n }'; }
# drive LABEL ADDR PORT: runs smtp-source, sets T_START, T_ACKED, CPU0.
drive() {
    note "$1: smtp-source -s $SESSIONS -l $SIZE -m $MESSAGES $SMTP_SOURCE_OPTS $2:$3"
    sync # start both runs with no dirty pages left by the previous one
    local c0
    c0=$(children_ticks)
    CPU0=$(cpu_snap)
    T_START=$(now)
    # shellcheck disable=SC2086
    if ! "$SMTP_SOURCE" -s "$SESSIONS" -l "$SIZE" -m "$MESSAGES" $SMTP_SOURCE_OPTS \
        -f sender@bench.test -t user@sink.test "$2:$3" \
        >"$TMP/$1-smtp-source.out" 2>&1; then
        cat "$TMP/$1-smtp-source.out" >&2
        die "$1: smtp-source failed"
    fi
    T_ACKED=$(now)
    CPU_ACKED=$(cpu_snap)
    # CPU of smtp-source (and the two `date`s around it): what this shell's
    # reaped children used meanwhile.
    SOURCE_MS=$(ms_per_msg "$c0" "$(children_ticks)")
    if [[ -s $TMP/$1-smtp-source.out ]]; then
        note "$1: smtp-source said:"; head -5 "$TMP/$1-smtp-source.out" >&2
    fi
}
# start_sink LABEL ADDR: an smtp-sink counting messages; sets SINK_PORT, SINK_OUT, SINK_PID.
start_sink() {
    SINK_PORT=$(free_port "$2")
    SINK_OUT=$TMP/$1-sink.out
    local user=()
    [[ $(id -u) -eq 0 ]] && user=(-u nobody)
    "$SMTP_SINK" "${user[@]}" -c "$2:$SINK_PORT" 1024 >"$SINK_OUT" 2>&1 &
    SINK_PID=$!
    SINK_PIDS+=("$SINK_PID")
    wait_port "$2" "$SINK_PORT" 10 "$SINK_PID" \
        || { cat "$SINK_OUT" >&2; die "smtp-sink did not start on $2:$SINK_PORT"; }
}

# --- the machine ------------------------------------------------------------
FS=$(df -hT "$TMP" | awk 'NR==2 { print $1 " (" $2 ", " $3 " total, " $5 " free)" }')
echo "== faxmta relay benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:    $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr)"
echo "cpu:        $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "filesystem: $TMP on $FS"
C0=$(cpu_snap); sleep 1
echo "idle check: $(cpu_busy "$C0" "$(cpu_snap)") of all cores busy in the second before the run, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "            (other work on the machine skews every figure)"
echo "network:    $RELAY_SH_NETNS"
echo "faxmta:     $BIN ($RELAY_SH_BIN_FROM $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$REPO" status --porcelain -- src queue transports 2>/dev/null) ]] && echo ', work tree has uncommitted changes'))"
echo "load:       smtp-source -s $SESSIONS -l $SIZE -m $MESSAGES ${SMTP_SOURCE_OPTS:+$SMTP_SOURCE_OPTS }-t user@sink.test (one connection per message unless -d)"
echo

# --- the DNS server for faxmta ----------------------------------------------
cat >"$TMP/sink.zone" <<'EOF'
$ORIGIN sink.test.
$TTL 3600
@    IN SOA ns.sink.test. hostmaster.sink.test. 1 3600 600 86400 3600
@    IN NS  ns.sink.test.
@    IN MX  10 mx.sink.test.
mx   IN A   127.0.0.5
ns   IN A   127.0.0.1
EOF
# dns.py serves until its stdin closes: give it a pipe (coproc) that stays
# open as long as this script runs.
coproc DNS_PROC { exec python3 "$REPO/tests/peers/dns.py" "$TMP/sink.zone" \
    --address 127.0.0.1 --log "$TMP/dns-queries.log" 2>"$TMP/dns.err"; }
DNS_PID=$DNS_PROC_PID
DNS_LINE=
read -r -t 15 DNS_LINE <&"${DNS_PROC[0]}" || true
[[ $DNS_LINE =~ ^ready\ ([0-9]+)$ ]] || { cat "$TMP/dns.err" >&2; die "tests/peers/dns.py did not start"; }
DNS_PORT=${BASH_REMATCH[1]}
note "dns: tests/peers/dns.py on 127.0.0.1:$DNS_PORT (sink.test MX 10 mx.sink.test, A 127.0.0.5)"

# --- faxmta -----------------------------------------------------------------
run_faxmta() {
    start_sink faxmta 127.0.0.5
    FX_SINK_OUT=$SINK_OUT FX_SINK_PID=$SINK_PID
    FX=$TMP/faxmta
    mkdir -p "$FX"
    FX_PORT=$(free_port 127.0.0.1)
    local admin_port
    admin_port=$(free_port 127.0.0.1)
    FX_ADMIN=127.0.0.1:$admin_port
    DNS_ADDR=127.0.0.1 mta_conf_faxmta "$FX" 127.0.0.1 "$FX_PORT" "$SINK_PORT"
    note "faxmta: starting on 127.0.0.1:$FX_PORT, relaying sink.test to 127.0.0.5:$SINK_PORT (smtp-sink)"
    if [[ ${FX_STRACE:-0} == 1 ]]; then
        # Diagnostic: count the system calls that touch the disk or open
        # connections, with their wall time. --seccomp-bpf stops faxmta
        # only at these calls, so it runs at nearly its normal speed.
        strace -f -c -w --seccomp-bpf -o "$FX/strace.txt" \
            -e trace=fsync,fdatasync,sync_file_range,pwrite64,openat,unlink,connect,accept4 \
            "$BIN" serve --config "$FX/faxmta.toml" 2>"$FX/faxmta.log" &
        STRACE_PID=$!
        for _ in $(seq 100); do
            FAXMTA_PID=$(pgrep -P "$STRACE_PID" | head -1 || true)
            [[ -n $FAXMTA_PID ]] && break
            sleep 0.05
        done
        [[ -n $FAXMTA_PID ]] || die "faxmta did not start under strace"
    else
        "$BIN" serve --config "$FX/faxmta.toml" 2>"$FX/faxmta.log" &
        FAXMTA_PID=$!
    fi
    if ! wait_port 127.0.0.1 "$FX_PORT" 30 "$FAXMTA_PID"; then
        tail -20 "$FX/faxmta.log" >&2
        die "faxmta did not start listening on 127.0.0.1:$FX_PORT"
    fi
    local t0 t1 s0 s1 th0
    t0=$(tree_ticks "$FAXMTA_PID")
    s0=$(tree_ticks "$FX_SINK_PID")
    th0=$(thread_ticks "$FAXMTA_PID")
    drive faxmta 127.0.0.1 "$FX_PORT"
    FX_START=$T_START FX_ACKED=$T_ACKED
    FX_CPU_ACKED=$(tree_ticks "$FAXMTA_PID")
    FX_BUSY_ACCEPT=$(cpu_busy "$CPU0" "$CPU_ACKED")
    FX_OK=1
    FX_DONE=$(wait_relayed "$FX_SINK_OUT" "$MESSAGES") || FX_OK=0
    t1=$(tree_ticks "$FAXMTA_PID")
    s1=$(tree_ticks "$FX_SINK_PID")
    local c1
    c1=$(cpu_snap)
    FX_BUSY=$(cpu_busy "$CPU0" "$c1")
    FX_MACHINE_MS=$(machine_ms "$CPU0" "$c1")
    FX_SOURCE_MS=$SOURCE_MS
    FX_THREADS=$(join -a2 -e0 -o 0,1.2,2.2 <(echo "$th0" | sort) <(thread_ticks "$FAXMTA_PID" | sort) \
        | awk -v hz="$HZ" -v n="$MESSAGES" '{ d = $3 - $2; if (d > 0) printf "%s %.2f\n", $1, d * 1000 / hz / n }' \
        | sort -k2 -rn | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 } END { print "" }')
    FX_CPU_MS=$(ms_per_msg "$(echo "$t0" | awk '{ print $1 + $2 }')" "$(echo "$t1" | awk '{ print $1 + $2 }')")
    FX_CPU_USER=$(ms_per_msg "${t0% *}" "${t1% *}")
    FX_CPU_SYS=$(ms_per_msg "${t0#* }" "${t1#* }")
    FX_CPU_ACCEPT_MS=$(ms_per_msg "$(echo "$t0" | awk '{ print $1 + $2 }')" "$(echo "$FX_CPU_ACKED" | awk '{ print $1 + $2 }')")
    FX_SINK_MS=$(ms_per_msg "$(echo "$s0" | awk '{ print $1 + $2 }')" "$(echo "$s1" | awk '{ print $1 + $2 }')")
    read -r FX_SINK_SESS FX_SINK_MSGS < <(sink_counts "$FX_SINK_OUT")
    FX_RSS=$(awk '/VmHWM/ { printf "%.1f MiB", $2/1024 }' "/proc/$FAXMTA_PID/status" 2>/dev/null || echo "?")
    local metrics
    metrics=$(curl -s --max-time 5 "http://$FX_ADMIN/metrics" || true)
    FX_SENT=$(echo "$metrics" | awk '/^faxmta_deliveries_total\{status="sent",transport="smtp"\}/ { print $2 }')
    FX_DEFERRED=$(echo "$metrics" | awk '/^faxmta_deliveries_total\{status="deferred",transport="smtp"\}/ { print $2 }')
    FX_SENT=${FX_SENT:-0} FX_DEFERRED=${FX_DEFERRED:-0}
    FX_LOGGED_SENT=$(grep -c 'status=sent' "$FX/faxmta.log" || true)
    FX_WARN=$(grep -cE ' (WARN|ERROR) ' "$FX/faxmta.log" || true)
    FX_DNS_QUERIES=$(grep -c . "$TMP/dns-queries.log" 2>/dev/null || true)
    FX_DNS_WHAT=$(awk '{ print $1, $2 }' "$TMP/dns-queries.log" 2>/dev/null | sort | uniq -c | awk '{ printf "%s%s %s x%s", (NR > 1 ? ", " : ""), $2, $3, $1 }')
    FX_ACK_RATE=$(calc "$MESSAGES / ($FX_ACKED - $FX_START)")
    FX_E2E_RATE=$(calc "$FX_SINK_MSGS / ($FX_DONE - $FX_START)")
    # Stop it now, so that it cannot take CPU from the other server's run.
    stop_pid "$FAXMTA_PID"
    FAXMTA_PID=
    if [[ -n ${STRACE_PID:-} ]]; then
        wait "$STRACE_PID" 2>/dev/null || true
        STRACE_PID=
        # strace -c: "% time seconds usecs/call calls errors syscall".
        FX_SYSCALLS=$(awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { print $NF, $4 }' "$FX/strace.txt" \
            | sort -k2 -rn | head -15 \
            | awk -v n="$MESSAGES" '{ printf "%s%s %.2f", (NR > 1 ? ", " : ""), $1, $2 / n } END { print "" }')
        FX_SYSCALL_US=$(awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF ~ /^(fsync|sync_file_range|pwrite64)$/ { printf "%s%s %s", (n++ ? ", " : ""), $NF, $3 }' "$FX/strace.txt")
    fi
}

# --- Postfix ----------------------------------------------------------------
PF_STATUS="skipped (BENCH_POSTFIX=0)"
run_postfix() {
    [[ $BENCH_POSTFIX == 0 ]] && return 0
    local why=
    [[ $(id -u) -eq 0 ]] || why="needs root"
    command -v postfix >/dev/null || why="postfix is not installed"
    id postfix >/dev/null 2>&1 || why="no user postfix"
    getent group postdrop >/dev/null || why="no group postdrop"
    if [[ -n $why ]]; then
        [[ $BENCH_POSTFIX == 1 ]] && die "Postfix comparison: $why"
        PF_STATUS="skipped ($why)"
        return 0
    fi
    start_sink postfix 127.0.0.6
    PF_SINK_OUT=$SINK_OUT PF_SINK_PID=$SINK_PID
    PF_DIR=$TMP/postfix
    PF_PORT=$(free_port 127.0.0.2)
    # Only the services this path needs, nothing chrooted; relays from
    # 127.0.0.0/8 (mynetworks); sink.test goes by the transport map to the
    # sink's IP literal (no MX or A lookup), everything else would fail at
    # once; no DNS anywhere (bench/lib/mta.sh).
    mta_conf_postfix "$PF_DIR" 127.0.0.2 "$PF_PORT" 127.0.0.6 "$SINK_PORT"
    note "postfix: starting a private instance on 127.0.0.2:$PF_PORT ($PF_DIR/etc), relaying sink.test to [127.0.0.6]:$SINK_PORT (smtp-sink)"
    if command -v script >/dev/null; then
        script -qec "postfix -c '$PF_DIR/etc' start" /dev/null >"$PF_DIR/start.out" 2>&1 || true
    else
        postfix -c "$PF_DIR/etc" start >"$PF_DIR/start.out" 2>&1 || true
    fi
    if ! wait_port 127.0.0.2 "$PF_PORT" 30 ""; then
        [[ $BENCH_POSTFIX == 1 ]] && { cat "$PF_DIR/start.out" >&2; die "Postfix did not start"; }
        PF_STATUS="skipped (did not start: $(tr -d '\r' <"$PF_DIR/start.out" | grep -m1 -i 'fatal\|error' || echo 'see maillog'))"
        return 0
    fi
    local master t0 t1 s0 s1
    master=$(tr -dc 0-9 <"$PF_DIR/spool/pid/master.pid")
    t0=$(tree_ticks "$master")
    s0=$(tree_ticks "$PF_SINK_PID")
    drive postfix 127.0.0.2 "$PF_PORT"
    PF_START=$T_START PF_ACKED=$T_ACKED
    PF_CPU_ACKED=$(tree_ticks "$master")
    PF_BUSY_ACCEPT=$(cpu_busy "$CPU0" "$CPU_ACKED")
    PF_OK=1
    PF_DONE=$(wait_relayed "$PF_SINK_OUT" "$MESSAGES") || PF_OK=0
    t1=$(tree_ticks "$master")
    s1=$(tree_ticks "$PF_SINK_PID")
    local c1
    c1=$(cpu_snap)
    PF_BUSY=$(cpu_busy "$CPU0" "$c1")
    PF_MACHINE_MS=$(machine_ms "$CPU0" "$c1")
    PF_SOURCE_MS=$SOURCE_MS
    PF_CPU_MS=$(ms_per_msg "$(echo "$t0" | awk '{ print $1 + $2 }')" "$(echo "$t1" | awk '{ print $1 + $2 }')")
    PF_CPU_USER=$(ms_per_msg "${t0% *}" "${t1% *}")
    PF_CPU_SYS=$(ms_per_msg "${t0#* }" "${t1#* }")
    PF_CPU_ACCEPT_MS=$(ms_per_msg "$(echo "$t0" | awk '{ print $1 + $2 }')" "$(echo "$PF_CPU_ACKED" | awk '{ print $1 + $2 }')")
    PF_SINK_MS=$(ms_per_msg "$(echo "$s0" | awk '{ print $1 + $2 }')" "$(echo "$s1" | awk '{ print $1 + $2 }')")
    read -r PF_SINK_SESS PF_SINK_MSGS < <(sink_counts "$PF_SINK_OUT")
    sleep 0.5 # postlogd writes the maillog a moment later
    PF_LOGGED_SENT=$(grep -c 'status=sent' "$PF_DIR/maillog" 2>/dev/null || true)
    PF_DEFERRED=$(grep -c 'status=deferred' "$PF_DIR/maillog" 2>/dev/null || true)
    PF_WARN=$(grep -cE 'warning:|fatal:|panic:|error:' "$PF_DIR/maillog" 2>/dev/null || true)
    PF_WARN_FIRST=$(grep -m1 -E 'warning:|fatal:|panic:|error:' "$PF_DIR/maillog" 2>/dev/null | cut -d' ' -f5- || true)
    PF_ACK_RATE=$(calc "$MESSAGES / ($PF_ACKED - $PF_START)")
    PF_E2E_RATE=$(calc "$PF_SINK_MSGS / ($PF_DONE - $PF_START)")
    PF_STATUS="ran ($(postconf -c "$PF_DIR/etc" -h mail_version 2>/dev/null || echo '?'))"
}

for who in $ORDER; do
    case $who in
        faxmta) run_faxmta ;;
        postfix) run_postfix ;;
        *) die "ORDER: unknown server $who (faxmta, postfix)" ;;
    esac
done
[[ -n ${FX_ACK_RATE:-} ]] || die "ORDER must include faxmta"

# --- report -----------------------------------------------------------------
row() { printf '%-46s %14s %14s\n' "$@"; }
pf() { [[ -n ${PF_ACK_RATE:-} ]] && echo "$1" || echo -; }
echo "== results"
row "" "faxmta" "postfix"
row "accepted msgs/s (smtp-source wall time)" "$FX_ACK_RATE" "$(pf "${PF_ACK_RATE:-}")"
row "relayed msgs/s (until the sink had them all)" "$FX_E2E_RATE" "$(pf "${PF_E2E_RATE:-}")"
row "wall time to last 250 (s)" "$(calc "$FX_ACKED - $FX_START" 2)" "$(pf "$(calc "${PF_ACKED:-0} - ${PF_START:-0}" 2)")"
row "wall time to last message at the sink (s)" "$(calc "$FX_DONE - $FX_START" 2)" "$(pf "$(calc "${PF_DONE:-0} - ${PF_START:-0}" 2)")"
row "messages sent / at the sink" "$MESSAGES/$FX_SINK_MSGS" "$(pf "$MESSAGES/${PF_SINK_MSGS:-}")"
row "connections to the sink (msgs per connection)" "$FX_SINK_SESS ($(calc "$FX_SINK_MSGS / ($FX_SINK_SESS ? $FX_SINK_SESS : 1)"))" \
    "$(pf "${PF_SINK_SESS:-} ($(calc "${PF_SINK_MSGS:-0} / (${PF_SINK_SESS:-0} ? ${PF_SINK_SESS:-1} : 1)"))")"
row "server CPU ms/msg, whole run (user+sys)" "$FX_CPU_MS" "$(pf "${PF_CPU_MS:-}")"
row "  of which user / sys" "$FX_CPU_USER / $FX_CPU_SYS" "$(pf "${PF_CPU_USER:-} / ${PF_CPU_SYS:-}")"
row "  spent until the last 250" "$FX_CPU_ACCEPT_MS" "$(pf "${PF_CPU_ACCEPT_MS:-}")"
row "smtp-source CPU ms/msg (until last 250)" "$FX_SOURCE_MS" "$(pf "${PF_SOURCE_MS:-}")"
row "smtp-sink CPU ms/msg" "$FX_SINK_MS" "$(pf "${PF_SINK_MS:-}")"
row "whole machine busy CPU ms/msg (any process)" "$FX_MACHINE_MS" "$(pf "${PF_MACHINE_MS:-}")"
other() { calc "$1 - $2 - $3 - $4" 2; }
row "  of which none of the above (noise, irqs)" "$(other "$FX_MACHINE_MS" "$FX_CPU_MS" "$FX_SOURCE_MS" "$FX_SINK_MS")" \
    "$(pf "$(other "${PF_MACHINE_MS:-0}" "${PF_CPU_MS:-0}" "${PF_SOURCE_MS:-0}" "${PF_SINK_MS:-0}")")"
row "machine CPU busy until last 250, all $(nproc) cores" "$FX_BUSY_ACCEPT" "$(pf "${PF_BUSY_ACCEPT:-}")"
row "machine CPU busy until last at sink" "$FX_BUSY" "$(pf "${PF_BUSY:-}")"
row "deliveries sent / deferred (metrics, maillog)" "$FX_SENT / $FX_DEFERRED" "$(pf "${PF_LOGGED_SENT:-} / ${PF_DEFERRED:-}")"
row "faxmta peak RSS" "$FX_RSS" ""
echo
if [[ -n ${PF_ACK_RATE:-} ]]; then
    echo "faxmta / postfix, accepted msgs/s: $(calc "$FX_ACK_RATE / $PF_ACK_RATE" 2)"
    echo "faxmta / postfix, relayed msgs/s:  $(calc "$FX_E2E_RATE / $PF_E2E_RATE" 2)   (the goal: >= 3)"
    echo "faxmta / postfix, CPU ms/msg:      $(calc "$FX_CPU_MS / $PF_CPU_MS" 2)"
fi
echo "faxmta CPU ms/msg by thread: ${FX_THREADS:-?}"
if [[ -n ${FX_SYSCALLS:-} ]]; then
    echo "faxmta system calls per message (FX_STRACE=1): $FX_SYSCALLS"
    echo "  wall time per call (us): $FX_SYSCALL_US"
fi
echo "faxmta DNS queries answered by dns.py: $FX_DNS_QUERIES (${FX_DNS_WHAT:-none})"
echo "faxmta log: $FX_LOGGED_SENT line(s) status=sent, $FX_WARN at WARN/ERROR ([log] level = \"$FAXMTA_LOG\")"
echo "postfix: $PF_STATUS${PF_WARN:+, maillog: $PF_WARN warning/error line(s)}${PF_WARN_FIRST:+, first: $PF_WARN_FIRST}"
echo "order:   $ORDER (each server alone on the machine; faxmta is stopped after its run)"

[[ $FX_OK == 1 ]] || die "faxmta: only $FX_SINK_MSGS of $MESSAGES messages reached the sink within ${RELAY_WAIT}s"
[[ ${PF_OK:-1} == 1 ]] || die "postfix: only $PF_SINK_MSGS of $MESSAGES messages reached the sink within ${RELAY_WAIT}s"
exit 0
