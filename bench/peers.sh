#!/usr/bin/env bash
# bench/peers.sh: relay throughput, CPU per message and DATA-end-to-250
# latency of faxmta next to Postfix, Exim, OpenSMTPD, chasquid and Haraka,
# on the same machine in the same run under the same load (issue 21).
#
#   bash bench/peers.sh
#   MESSAGES=500 ROUNDS=3 PEERS="faxmta postfix exim" bash bench/peers.sh
#
# Throughput: Postfix's smtp-source -> MTA -> smtp-sink, one connection per
# message, for every cell SIZE x SESSIONS; per cell ROUNDS rounds, each
# round runs every peer once in the order of PEERS (A B C ... A B C ...), so
# a drift of the machine's other load hits all of them. Every round starts
# the peer afresh (empty queue, fresh sink) and stops it afterwards: only
# one server runs at a time. Latency: bench/loadgen offers RATE msg/s on
# LAT_SESSIONS persistent sessions to each peer in turn and times the final
# dot to the reply.
#
# Every peer is a private instance started by this script, listening on its
# own 127.0.0.x and relaying sink.test to its own smtp-sink, inside a
# private network namespace (unshare -n; only lo) as in bench/relay.sh;
# docs/design/peers-bench.md says how each is run and made durable. Peers
# are unpacked from Debian packages (apt-get download + dpkg-deb -x into
# PEERS_ROOT; never apt-get install: each conflicts with postfix) and
# Haraka comes from npm; a peer that cannot be fetched is skipped with a
# line saying why.
#
# A benchmark that prints figures (markdown tables); it asserts nothing
# about speed. It fails only when it cannot measure (not root, no
# unshare, a tool missing, faxmta not starting or losing messages); a peer
# that does not start or does not relay everything is reported as such.
#
# Environment (all optional):
#   PEERS="faxmta postfix exim opensmtpd chasquid haraka"  (faxmta first: ratios)
#   MESSAGES=500        messages per round (smtp-source -m)
#   ROUNDS=3            rounds per cell
#   SIZES="10240 1024"  message sizes (smtp-source -l)
#   SESSIONS_LIST="20 100"  parallel sessions (smtp-source -s)
#   RATE=500            latency: offered msg/s; LAT_SESSIONS=20; LAT_SIZE=10240
#   LAT_SECONDS=10      latency: seconds of offered load per peer (0: skip)
#   FAXMTA_BIN          use this faxmta binary instead of `cargo build --release`
#   LOADGEN_BIN         use this loadgen binary instead of building bench/loadgen
#   FAXMTA_LOG=info     faxmta's [log] level
#   PEERS_ROOT=/var/tmp/faxmta-peers  cache of the unpacked packages and Haraka
#   RELAY_WAIT=300      seconds a round waits for every message at the sink
#   STALL_WAIT=30       ... but gives up when none arrived for this long
#   SOURCE_WAIT=900     seconds smtp-source may take
#   BENCH_DIR           parent of the temp dir (default $TMPDIR or /tmp)
#   KEEP=1              keep the temp dir (every round's logs) after the run
set -euo pipefail

NAME=peers.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib/common.sh
. "$REPO/bench/lib/common.sh"
# shellcheck source=bench/lib/mta.sh
. "$REPO/bench/lib/mta.sh"
export LC_ALL=C
PEERS=${PEERS:-$MTA_ALL}
MESSAGES=${MESSAGES:-500}
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-10240 1024}
SESSIONS_LIST=${SESSIONS_LIST:-20 100}
RATE=${RATE:-500}
LAT_SESSIONS=${LAT_SESSIONS:-20}
LAT_SIZE=${LAT_SIZE:-10240}
LAT_SECONDS=${LAT_SECONDS:-10}
PEERS_ROOT=${PEERS_ROOT:-/var/tmp/faxmta-peers}
RELAY_WAIT=${RELAY_WAIT:-300}
STALL_WAIT=${STALL_WAIT:-30}
SOURCE_WAIT=${SOURCE_WAIT:-900}

# Each peer's listening address and its sink's.
addr_of() { case $1 in faxmta) echo 127.0.0.2 ;; postfix) echo 127.0.0.3 ;; exim) echo 127.0.0.4 ;;
    opensmtpd) echo 127.0.0.5 ;; chasquid) echo 127.0.0.6 ;; haraka) echo 127.0.0.7 ;; esac; }
sink_of() { case $1 in faxmta) echo 127.0.0.12 ;; postfix) echo 127.0.0.13 ;; exim) echo 127.0.0.14 ;;
    opensmtpd) echo 127.0.0.15 ;; chasquid) echo 127.0.0.16 ;; haraka) echo 127.0.0.17 ;; esac; }

# ============================================================================
# Outside the network namespace: tools, peers, binaries; then re-exec.
# ============================================================================
if [[ -z ${PEERS_SH_INSIDE:-} ]]; then
    [[ $(id -u) -eq 0 ]] || die "needs root (private network and mount namespaces, system users)"
    if ! command -v unshare >/dev/null || ! command -v ip >/dev/null || ! unshare -n true 2>/dev/null; then
        die "needs unshare and ip, and a kernel that allows unshare -n"
    fi
    for p in $PEERS; do
        [[ " $MTA_ALL " == *" $p "* ]] || die "PEERS: unknown peer $p (known: $MTA_ALL)"
    done
    command -v python3 >/dev/null || die "python3 is required"
    python3 -c 'import dnslib' 2>/dev/null || python3 -m pip install --quiet dnslib >&2 \
        || die "python3 module dnslib is missing: pip install dnslib"
    command -v openssl >/dev/null || die "openssl is required (chasquid's certificate)"
    need_postfix_tools
    build_faxmta "$REPO"
    BIN=$(realpath "$BIN")
    if [[ -z ${LOADGEN_BIN:-} && $LAT_SECONDS != 0 ]]; then
        note "building bench/loadgen (cargo build --release -p faxmta-loadgen)"
        (cd "$REPO" && cargo build --release --quiet -p faxmta-loadgen) >&2 \
            || die "cargo build --release -p faxmta-loadgen failed"
        LOADGEN_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/loadgen
    fi
    [[ $LAT_SECONDS == 0 || -x $LOADGEN_BIN ]] || die "no loadgen binary at $LOADGEN_BIN"
    # Fetch every peer (cached in PEERS_ROOT); skip, loudly, what cannot be.
    RUN_PEERS='' SKIPPED=''
    for p in $PEERS; do
        if why=$(mta_fetch "$p"); then
            RUN_PEERS+="$p "
        else
            [[ $p == faxmta ]] && die "faxmta: $why"
            note "SKIPPED $p: $why"
            SKIPPED+="$p: $why;"
        fi
    done
    export PEERS_SH_INSIDE=1 BIN SMTP_SOURCE SMTP_SINK LOADGEN_BIN RUN_PEERS SKIPPED
    exec unshare -n -- bash "${BASH_SOURCE[0]}" "$@"
fi

# ============================================================================
# Inside the namespace.
# ============================================================================
ip link set lo up || die "cannot bring up lo in the network namespace"
PYTHON=$(python_bin)
SUBREAPER=$REPO/bench/lib/subreaper.py
T=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-peers.XXXXXX")
chmod 755 "$T" # smtp-sink (nobody), Postfix's and Exim's users reach in here
mkdir -p "$T/run" "$T/keep"
MTA_PID='' SINK_PID='' DNS_PID=''
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    set +e
    [[ -n $MTA_PID ]] && stop_pid "$MTA_PID"
    [[ -n $SINK_PID ]] && stop_pid "$SINK_PID"
    [[ -n $DNS_PID ]] && stop_pid "$DNS_PID"
    mta_exim_untrust
    if [[ ${KEEP:-0} == 1 ]]; then note "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- DNS: faxmta's sink.test, chasquid's relay.test, all on 127.0.0.1:53 ----
DNS_ADDR=127.0.0.1
# SOA records, so that negative answers (no AAAA, no MTA-STS) are cached
# as in bench/relay.sh.
cat >"$T/zone" <<EOF
\$TTL 3600
sink.test.     IN SOA ns.sink.test. hostmaster.sink.test. 1 3600 600 86400 3600
sink.test.     IN NS ns.sink.test.
ns.sink.test.  IN A  127.0.0.1
relay.test.    IN SOA ns.sink.test. hostmaster.sink.test. 1 3600 600 86400 3600
relay.test.    IN NS ns.sink.test.
sink.test.     IN MX 10 mx.sink.test.
mx.sink.test.  IN A  $(sink_of faxmta)
relay.test.    IN MX 10 mx.relay.test.
mx.relay.test. IN A  $(sink_of chasquid)
EOF
coproc DNS_PROC { exec "$PYTHON" "$REPO/tests/peers/dns.py" "$T/zone" --address "$DNS_ADDR" \
    --port 53 --log "$T/dns.log" 2>"$T/dns.err"; }
DNS_PID=$DNS_PROC_PID
DNS_LINE=
read -r -t 15 DNS_LINE <&"${DNS_PROC[0]}" || true
[[ $DNS_LINE =~ ^ready\ ([0-9]+)$ ]] || { cat "$T/dns.err" >&2; die "tests/peers/dns.py did not start"; }
DNS_PORT=${BASH_REMATCH[1]}
dns_count() { if [[ -f $T/dns.log ]]; then wc -l <"$T/dns.log"; else echo 0; fi; }

# --- one server, one round ---------------------------------------------------
# start_peer PEER: fresh directory, sink and server; sets DIR, PORT, SINK_OUT.
# Returns 1 (with a note) if the server does not start.
start_peer() {
    local p=$1 addr sink
    addr=$(addr_of "$p") sink=$(sink_of "$p")
    DIR=$T/run/$p
    rm -rf "$DIR"
    mkdir -p "$DIR"
    SINK_OUT=$DIR/sink.out
    start_sink "$SINK_OUT" "$sink"
    PORT=$(free_port "$addr")
    MTA_LOG=$DIR/start.log
    if ! "mta_start_$p" "$DIR" "$addr" "$PORT" "$sink" "$SINK_PORT" >>"$DIR/start.log" 2>&1 \
        || ! wait_port "$addr" "$PORT" 60 "$MTA_PID"; then
        note "$p did not start; last lines of $MTA_LOG:"
        tail -5 "$MTA_LOG" >&2 || true
        stop_peer
        return 1
    fi
}
stop_peer() {
    [[ -n $MTA_PID ]] && stop_pid "$MTA_PID"
    [[ -n $SINK_PID ]] && stop_pid "$SINK_PID"
    MTA_PID='' SINK_PID=''
}
# keep_logs LABEL: the round's directory (logs, configuration, not the
# queue) is kept under $T/keep/LABEL when KEEP=1.
keep_logs() {
    if [[ ${KEEP:-0} == 1 ]]; then
        mkdir -p "$T/keep/$1"
        find "$DIR" -maxdepth 3 -type f \( -name '*.log' -o -name '*.out' -o -name '*.err' -o -name '*log' -o -name '*.conf' -o -name '*.toml' -o -name '*.cf' \) \
            -size -20M -exec cp {} "$T/keep/$1/" \; 2>/dev/null || true
    fi
    rm -rf "$DIR"
}

# round PEER SIZE SESSIONS R: appends one line to $T/results:
# "peer size sessions round accepted/s relayed/s cpu_ms at_sink dns/msg status"
round() {
    local p=$1 size=$2 sess=$3 r=$4 t0 t1 tk0 tk1 d0 ok=ok n
    if ! start_peer "$p"; then
        echo "$p $size $sess $r - - - 0 - no-start" >>"$T/results"
        return 0
    fi
    sync # no dirty pages of the previous round
    d0=$(dns_count)
    tk0=$(tree_ticks "$MTA_PID")
    t0=$(now)
    if ! timeout "$SOURCE_WAIT" "$SMTP_SOURCE" -s "$sess" -l "$size" -m "$MESSAGES" \
        -f s@bench.test -t u@sink.test "$(addr_of "$p"):$PORT" >"$DIR/smtp-source.out" 2>&1; then
        note "$p: smtp-source failed or timed out: $(head -c 300 "$DIR/smtp-source.out")"
        ok=source-failed
    fi
    t1=$(now)
    local acc_rate=- rel_rate=- t2
    [[ $ok == ok ]] && acc_rate=$(calc "$MESSAGES / ($t1 - $t0)")
    t2=$(wait_sink "$SINK_OUT" "$MESSAGES" "$RELAY_WAIT" "$STALL_WAIT") || { [[ $ok == ok ]] && ok=incomplete; }
    tk1=$(tree_ticks "$MTA_PID")
    n=$(sink_counts "$SINK_OUT" | cut -d' ' -f2)
    local cpu dns
    cpu=$(awk -v a="$tk0" -v b="$tk1" -v hz="$HZ" -v n="$MESSAGES" 'BEGIN {
        split(a, x, " "); split(b, y, " "); printf "%.2f", (y[1] + y[2] - x[1] - x[2]) * 1000 / hz / n }')
    dns=$(calc "($(dns_count) - $d0) / $MESSAGES" 2)
    [[ $ok == ok ]] && rel_rate=$(calc "$n / ($t2 - $t0)")
    stop_peer
    echo "$p $size $sess $r $acc_rate $rel_rate $cpu $n $dns $ok" >>"$T/results"
    note "$(printf '%-9s size %5s sessions %3s round %s: accepted %7s/s relayed %7s/s cpu %6s ms/msg sink %s/%s dns/msg %s load %s %s' \
        "$p" "$size" "$sess" "$r" "$acc_rate" "$rel_rate" "$cpu" "$n" "$MESSAGES" "$dns" "$(cut -d' ' -f1 /proc/loadavg)" "$ok")"
    cut -d' ' -f1 /proc/loadavg >>"$T/loadavg"
    keep_logs "$p-$size-$sess-$r"
}

# latency PEER: bench/loadgen at RATE msg/s; appends "peer key=value..."
# to $T/latency.
latency() {
    local p=$1 out
    if ! start_peer "$p"; then
        echo "$p no-start" >>"$T/latency"
        return 0
    fi
    sync
    note "$p: loadgen --rate $RATE --sessions $LAT_SESSIONS --size $LAT_SIZE for ${LAT_SECONDS}s"
    out=$("$LOADGEN_BIN" --server "$(addr_of "$p"):$PORT" --rate "$RATE" \
        --messages "$(calc "$RATE * $LAT_SECONDS" 0)" --sessions "$LAT_SESSIONS" --size "$LAT_SIZE" \
        --deadline "$(calc "$LAT_SECONDS * 2 + 1" 0)" 2>"$DIR/loadgen.err") || true
    [[ -n $out ]] || out="failed: $(head -c 200 "$DIR/loadgen.err")"
    note "$p: $out"
    echo "$p $out" >>"$T/latency"
    stop_peer
    keep_logs "$p-latency"
}

# --- the run -------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
RUN_PEERS=${RUN_PEERS% }
if [[ " $RUN_PEERS " == *" exim "* ]]; then
    mta_exim_trust "$T/run/exim/exim.conf"
fi
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
C0=$(cpu_snap); sleep 1; C1=$(cpu_snap)
IDLE_BUSY=$(echo "$C0 $C1" | awk '{ b = $3 - $1; i = $4 - $2; printf "%.0f%%", (b + i) ? 100 * b / (b + i) : 0 }')
: >"$T/results"
: >"$T/latency"
for size in $SIZES; do
    for sess in $SESSIONS_LIST; do
        for r in $(seq "$ROUNDS"); do
            for p in $RUN_PEERS; do
                round "$p" "$size" "$sess" "$r"
            done
        done
    done
done
if [[ $LAT_SECONDS != 0 ]]; then
    for p in $RUN_PEERS; do latency "$p"; done
fi
END=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# --- report --------------------------------------------------------------------
echo "## bench/peers.sh, $START to $END"
echo
echo "- command: \`MESSAGES=$MESSAGES ROUNDS=$ROUNDS SIZES=\"$SIZES\" SESSIONS_LIST=\"$SESSIONS_LIST\" RATE=$RATE LAT_SECONDS=$LAT_SECONDS PEERS=\"$PEERS\" bash bench/peers.sh\`"
echo "- machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr); $T on $(df -T "$T" | awk 'NR==2 { print $2 }')"
echo "- load average at start $LOAD_START (${IDLE_BUSY} of all cores busy in the second before), at end $(cut -d' ' -f1-3 /proc/loadavg); 1-min load average over the rounds: $(median <"$T/loadavg") median, $(sort -g "$T/loadavg" | head -1)-$(sort -g "$T/loadavg" | tail -1)"
echo "- faxmta: $BIN ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "- load: smtp-source -s SESSIONS -l SIZE -m $MESSAGES (one connection per message), $ROUNDS rounds per cell, peers interleaved in the order: $RUN_PEERS"
IFS=';' read -r -a skipped <<<"${SKIPPED:-}"
for s in "${skipped[@]}"; do [[ -n $s ]] && echo "- SKIPPED ${s}"; done
echo
echo "Versions and durability (the 250 after DATA only once the message is on disk):"
echo
echo "| peer | version | durable? |"
echo "|---|---|---|"
for p in $RUN_PEERS; do
    echo "| $p | $(PF_CONF_DIR=/etc/postfix mta_version "$p") | $(mta_durability "$p") |"
done
echo
# ratio A B: A / B, or "-" when either is missing or B is 0.
ratio() {
    if [[ $1 == - || $2 == - ]] || awk -v b="$2" 'BEGIN { exit !(b == 0) }'; then echo -; else calc "$1 / $2" 2; fi
}
# med PEER SIZE SESSIONS FIELD: the median of results' FIELD for one cell.
med() { awk -v p="$1" -v s="$2" -v n="$3" -v f="$4" '$1 == p && $2 == s && $3 == n && $f != "-" { print $f }' "$T/results" | median; }
for size in $SIZES; do
    for sess in $SESSIONS_LIST; do
        echo "### $size octets, $sess sessions (medians of $ROUNDS rounds of $MESSAGES messages)"
        echo
        echo "| peer | accepted msg/s | relayed msg/s | faxmta ÷ peer (relayed) | faxmta ÷ peer (accepted) | CPU ms/msg | at the sink | DNS queries/msg |"
        echo "|---|---:|---:|---:|---:|---:|---|---:|"
        fx_rel=$(med faxmta "$size" "$sess" 6)
        fx_acc=$(med faxmta "$size" "$sess" 5)
        for p in $RUN_PEERS; do
            acc=$(med "$p" "$size" "$sess" 5)
            rel=$(med "$p" "$size" "$sess" 6)
            cpu=$(med "$p" "$size" "$sess" 7)
            dns=$(med "$p" "$size" "$sess" 9)
            sink=$(awk -v p="$p" -v s="$size" -v n="$sess" -v m="$MESSAGES" '$1 == p && $2 == s && $3 == n {
                    r++; t += $8; if ($8 < m) short++; if ($10 != "ok") bad = bad " " $10 }
                END { if (!r) print "-"; else if (short) printf "%d/%d (%d round(s) short:%s)", t, r * m, short, bad;
                      else printf "all (%d/%d)", t, r * m }' "$T/results")
            echo "| $p | $acc | $rel | $(ratio "$fx_rel" "$rel") | $(ratio "$fx_acc" "$acc") | $cpu | $sink | $dns |"
        done
        echo
    done
done
if [[ $LAT_SECONDS != 0 ]]; then
    echo "### DATA-end to 250 at an offered $RATE msg/s ($LAT_SESSIONS persistent sessions, $LAT_SIZE octets, ${LAT_SECONDS} s; bench/loadgen)"
    echo
    echo "| peer | p50 ms | p90 ms | p99 ms | max ms | achieved msg/s | non-2xx | late starts (lag p99 / max ms) | not sent |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|---:|"
    while read -r p rest; do
        if [[ $rest != *p50_ms=* ]]; then echo "| $p | ${rest} | | | | | | | |"; continue; fi
        get() { echo " $rest" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
        echo "| $p | $(get p50_ms) | $(get p90_ms) | $(get p99_ms) | $(get max_ms) | $(get rate_achieved) | $(get non2xx) | $(get late) of $(get sent) ($(get lag_p99_ms) / $(get lag_max_ms)) | $(get unsent) |"
    done <"$T/latency"
    echo
fi
echo "Raw rounds (peer size sessions round accepted/s relayed/s cpu-ms/msg at-sink dns/msg status):"
echo
sed 's/^/    /' "$T/results"

fx_short=$(awk -v m="$MESSAGES" '$1 == "faxmta" && ($8 < m || $10 != "ok")' "$T/results")
[[ -z $fx_short ]] || die "faxmta did not relay every message in some rounds: $fx_short"
exit 0
