#!/usr/bin/env bash
# bench/accept.sh: how many messages per second faxmta acknowledges durably,
# next to the disk's own single-stream write+fsync rate and (where possible)
# a private Postfix instance driven by the same load, all in the same run.
#
# A benchmark that prints figures; it asserts nothing about speed. It fails
# only when it cannot measure (no smtp-source, server does not start, not
# every message arrives).
#
#   bash bench/accept.sh
#
# Environment (all optional):
#   FAXMTA_BIN        use this binary instead of `cargo build --release`
#   MESSAGES=2000     messages sent by smtp-source (-m)
#   SESSIONS=20       parallel SMTP sessions (-s)
#   SIZE=10240        message size in octets (-l)
#   SMTP_SOURCE_OPTS  extra smtp-source flags, e.g. "-d" (reuse connections)
#   FSYNCS=2000       writes in the disk fsync test
#   BENCH_POSTFIX=auto  auto|1|0: also measure a private Postfix on 127.0.0.2
#   BENCH_DIR         parent of the temp dir (default $TMPDIR or /tmp); the
#                     queue, the Maildirs and the fsync test all live there
#   KEEP=1            keep the temp dir (logs, Maildirs) after the run
#   DELIVERY_WAIT=60  seconds to wait for every message to reach the Maildir
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-10240}
SMTP_SOURCE_OPTS=${SMTP_SOURCE_OPTS:-}
FSYNCS=${FSYNCS:-2000}
BENCH_POSTFIX=${BENCH_POSTFIX:-auto}
DELIVERY_WAIT=${DELIVERY_WAIT:-60}
export LC_ALL=C

die() { echo "accept.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }
now() { date +%s.%N; }
# calc EXPR: floating-point arithmetic with awk (bc is not always installed).
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
# cpu_snap: "busy idle" jiffies of the whole machine, from /proc/stat.
cpu_snap() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
# cpu_busy "B0 I0" "B1 I1": percent of all cores busy between two snaps.
cpu_busy() { echo "$1 $2" | awk '{ b = $3 - $1; i = $4 - $2; printf "%.0f%%", (b + i) ? 100 * b / (b + i) : 0 }'; }

command -v python3 >/dev/null || die "python3 is required (free ports, fsync test)"

# --- smtp-source ------------------------------------------------------------
find_smtp_source() {
    command -v smtp-source 2>/dev/null && return 0
    [[ -x /usr/sbin/smtp-source ]] && { echo /usr/sbin/smtp-source; return 0; }
    return 1
}
if ! SMTP_SOURCE=$(find_smtp_source); then
    note "smtp-source not found; installing Debian package postfix"
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        # "No configuration": no main.cf is written, so the system's own
        # Postfix does not start and take port 25.
        echo "postfix postfix/main_mailer_type select No configuration" \
            | debconf-set-selections 2>/dev/null || true
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q postfix >&2 \
            || { apt-get update -q >&2 && apt-get install -y -q postfix >&2; } \
            || true
    fi
    SMTP_SOURCE=$(find_smtp_source) \
        || die "smtp-source is missing and could not be installed; install it with: apt-get install postfix (Debian/Ubuntu) and run again"
fi

# --- faxmta binary ----------------------------------------------------------
if [[ -n ${FAXMTA_BIN:-} ]]; then
    BIN=$FAXMTA_BIN
    [[ -x $BIN ]] || die "FAXMTA_BIN=$BIN is not an executable file"
else
    note "building faxmta (cargo build --release) in $REPO"
    (cd "$REPO" && cargo build --release --quiet) >&2 || die "cargo build --release failed"
    BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/faxmta
    [[ -x $BIN ]] || die "no binary at $BIN after the build"
fi

# --- temp dir and cleanup ---------------------------------------------------
TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-bench.XXXXXX")
# Postfix's daemons run as user postfix and must reach their dirs under here.
chmod 755 "$TMP"
FAXMTA_PID=
PF_DIR=
cleanup() {
    set +e
    if [[ -n $FAXMTA_PID ]] && kill -0 "$FAXMTA_PID" 2>/dev/null; then
        kill -TERM "$FAXMTA_PID"
        for _ in $(seq 50); do kill -0 "$FAXMTA_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$FAXMTA_PID" 2>/dev/null && kill -KILL "$FAXMTA_PID"
        wait "$FAXMTA_PID" 2>/dev/null
    fi
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
    if [[ ${KEEP:-0} == 1 ]]; then
        note "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # free_port ADDR
    python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}
wait_port() { # wait_port ADDR PORT SECONDS PID-or-empty
    local end=$((SECONDS + $3))
    while ((SECONDS < end)); do
        if [[ -n $4 ]] && ! kill -0 "$4" 2>/dev/null; then return 1; fi
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
count_mail() { # count_mail MAILDIR: messages in new/ and cur/
    find "$1" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null | wc -l
}
# wait_delivered MAILDIR N: prints the time at which N messages were there
# (or the time of giving up); returns 1 if they never all arrived.
wait_delivered() {
    local end=$((SECONDS + DELIVERY_WAIT)) n
    while :; do
        n=$(count_mail "$1")
        if ((n >= $2)); then now; return 0; fi
        if ((SECONDS >= end)); then now; return 1; fi
        sleep 0.05
    done
}
# drive LABEL ADDR PORT: runs smtp-source, sets T_START, T_ACKED, CPU0.
drive() {
    note "$1: smtp-source -s $SESSIONS -l $SIZE -m $MESSAGES $SMTP_SOURCE_OPTS $2:$3"
    CPU0=$(cpu_snap)
    T_START=$(now)
    # shellcheck disable=SC2086
    if ! "$SMTP_SOURCE" -s "$SESSIONS" -l "$SIZE" -m "$MESSAGES" $SMTP_SOURCE_OPTS \
        -f sender@bench.test -t user@bench.test "$2:$3" \
        >"$TMP/$1-smtp-source.out" 2>&1; then
        cat "$TMP/$1-smtp-source.out" >&2
        die "$1: smtp-source failed"
    fi
    T_ACKED=$(now)
    if [[ -s $TMP/$1-smtp-source.out ]]; then
        note "$1: smtp-source said:"; head -5 "$TMP/$1-smtp-source.out" >&2
    fi
}

# --- the machine ------------------------------------------------------------
FS=$(df -hT "$TMP" | awk 'NR==2 { print $1 " (" $2 ", " $3 " total, " $5 " free)" }')
echo "== faxmta accept benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:    $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr)"
echo "cpu:        $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "filesystem: $TMP on $FS"
C0=$(cpu_snap); sleep 1
echo "idle check: $(cpu_busy "$C0" "$(cpu_snap)") of all cores busy in the second before the run, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "            (other work on the machine skews every figure)"
echo "faxmta:     $BIN ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$REPO" status --porcelain -- src queue transports 2>/dev/null) ]] && echo ', work tree has uncommitted changes'))"
echo "load:       smtp-source -s $SESSIONS -l $SIZE -m $MESSAGES ${SMTP_SOURCE_OPTS:+$SMTP_SOURCE_OPTS }(one connection per message unless -d)"
echo

# --- 1. the disk's own write+fsync rate -------------------------------------
note "disk: $FSYNCS x (write $SIZE octets, fsync) in $TMP"
cat >"$TMP/fsync.py" <<'EOF'
import os, sys, time
mode, base, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
buf = b"x" * size
if mode == "append":
    # One growing file, like a write-ahead log: write, fsync, repeat.
    fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    t = time.perf_counter()
    for _ in range(n):
        os.write(fd, buf)
        os.fsync(fd)
    el = time.perf_counter() - t
    os.close(fd)
elif mode == "sfr":
    # One growing file, made durable the way sled 0.34 does its log writes
    # on Linux: sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER), which writes
    # the data out but neither the metadata nor the disk's write cache.
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    t = time.perf_counter()
    for i in range(n):
        os.write(fd, buf)
        if libc.sync_file_range(fd, i * size, size, 7) != 0:
            raise OSError(ctypes.get_errno(), "sync_file_range")
    el = time.perf_counter() - t
    os.close(fd)
else:
    # A new file each time, like a Maildir or a Postfix queue file.
    os.makedirs(base, exist_ok=True)
    t = time.perf_counter()
    for i in range(n):
        fd = os.open(os.path.join(base, str(i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, buf)
        os.fsync(fd)
        os.close(fd)
    el = time.perf_counter() - t
print("%.1f" % (n / el))
EOF
FSYNC_APPEND=$(python3 "$TMP/fsync.py" append "$TMP/fsync-append.bin" "$FSYNCS" "$SIZE")
FSYNC_NEWFILE=$(python3 "$TMP/fsync.py" newfile "$TMP/fsync-files" "$FSYNCS" "$SIZE")
SFR_RATE=$(python3 "$TMP/fsync.py" sfr "$TMP/fsync-sfr.bin" "$FSYNCS" "$SIZE" 2>/dev/null || echo "n/a")
rm -rf "$TMP/fsync-append.bin" "$TMP/fsync-files" "$TMP/fsync-sfr.bin"
DD_SECS=$(dd if=/dev/zero of="$TMP/dd.bin" bs="$SIZE" count="$FSYNCS" oflag=dsync 2>&1 \
    | sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p')
rm -f "$TMP/dd.bin"
DD_RATE=$( [[ -n $DD_SECS ]] && calc "$FSYNCS / $DD_SECS" || echo "n/a")

# --- 2. faxmta --------------------------------------------------------------
FX=$TMP/faxmta
mkdir -p "$FX"
FX_PORT=$(free_port 127.0.0.1)
cat >"$FX/faxmta.toml" <<EOF
hostname = "mx.bench.test"
[queue]
path = "$FX/queue"
[control]
socket = "$FX/faxmta.sock"
[tls]
generated_dir = "$FX/tls"
[[listener]]
addr = "127.0.0.1:$FX_PORT"
role = "mx"
tls = "none"
[smtp]
shutdown_grace = "2s"
[log]
level = "warn"
[[domain]]
name = "bench.test"
kind = "local"
deliver = "maildir:$FX/mail/{domain}/{user}"
EOF
note "faxmta: starting on 127.0.0.1:$FX_PORT"
"$BIN" serve --config "$FX/faxmta.toml" 2>"$FX/faxmta.log" &
FAXMTA_PID=$!
if ! wait_port 127.0.0.1 "$FX_PORT" 30 "$FAXMTA_PID"; then
    tail -20 "$FX/faxmta.log" >&2
    die "faxmta did not start listening on 127.0.0.1:$FX_PORT"
fi
# cpu_ticks PID: user+system CPU time used so far, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
FX_CPU0=$(cpu_ticks "$FAXMTA_PID")
drive faxmta 127.0.0.1 "$FX_PORT"
FX_START=$T_START FX_ACKED=$T_ACKED
FX_OK=1
FX_DONE=$(wait_delivered "$FX/mail" "$MESSAGES") || FX_OK=0
FX_CPU1=$(cpu_ticks "$FAXMTA_PID")
FX_BUSY=$(cpu_busy "$CPU0" "$(cpu_snap)")
FX_CPU_MS=$(awk -v a="$FX_CPU0" -v b="$FX_CPU1" -v hz="$(getconf CLK_TCK)" -v n="$MESSAGES" \
    'BEGIN { printf "%.2f", (b - a) * 1000 / hz / n }')
FX_DELIVERED=$(count_mail "$FX/mail")
FX_RSS=$(awk '/VmHWM/ { printf "%.1f MiB", $2/1024 }' "/proc/$FAXMTA_PID/status" 2>/dev/null || echo "?")
FX_WARN=$(grep -c . "$FX/faxmta.log" || true)
FX_ACK_RATE=$(calc "$MESSAGES / ($FX_ACKED - $FX_START)")
FX_E2E_RATE=$(calc "$FX_DELIVERED / ($FX_DONE - $FX_START)")

# --- 3. Postfix (optional) --------------------------------------------------
PF_STATUS="skipped (BENCH_POSTFIX=0)"
if [[ $BENCH_POSTFIX != 0 ]]; then
    why=
    [[ $(id -u) -eq 0 ]] || why="needs root"
    command -v postfix >/dev/null || why="postfix is not installed"
    id postfix >/dev/null 2>&1 || why="no user postfix"
    getent group postdrop >/dev/null || why="no group postdrop"
    if [[ -n $why ]]; then
        [[ $BENCH_POSTFIX == 1 ]] && die "Postfix comparison: $why"
        PF_STATUS="skipped ($why)"
    else
        PF_DIR=$TMP/postfix
        PF_PORT=$(free_port 127.0.0.2)
        mkdir -p "$PF_DIR/etc" "$PF_DIR/spool" "$PF_DIR/data" "$PF_DIR/mail"
        chown postfix:postfix "$PF_DIR/data" "$PF_DIR/mail"
        # Only the services this path needs; nothing chrooted.
        cat >"$PF_DIR/etc/master.cf" <<EOF
127.0.0.2:$PF_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
        # Postfix accepts for bench.test and delivers with its virtual(8)
        # agent into a Maildir, as faxmta does; both fsync on accept and on
        # delivery. inet_interfaces names 127.0.0.1 because Postfix wants an
        # address that is on an interface; the listener itself is 127.0.0.2.
        cat >"$PF_DIR/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF_DIR/spool
data_directory = $PF_DIR/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtpd_banner = \$myhostname ESMTP
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $PF_DIR/mail
virtual_mailbox_maps = static:bench.test/user/
virtual_uid_maps = static:$(id -u postfix)
virtual_gid_maps = static:$(id -g postfix)
virtual_minimum_uid = 1
maillog_file = $PF_DIR/maillog
maillog_file_prefixes = $PF_DIR
EOF
        note "postfix: starting a private instance on 127.0.0.2:$PF_PORT ($PF_DIR/etc)"
        # Postfix prints its errors on stderr only when that is a terminal;
        # `script` gives it one so a failure says why.
        if command -v script >/dev/null; then
            script -qec "postfix -c '$PF_DIR/etc' start" /dev/null >"$PF_DIR/start.out" 2>&1 || true
        else
            postfix -c "$PF_DIR/etc" start >"$PF_DIR/start.out" 2>&1 || true
        fi
        if wait_port 127.0.0.2 "$PF_PORT" 30 ""; then
            drive postfix 127.0.0.2 "$PF_PORT"
            PF_START=$T_START PF_ACKED=$T_ACKED
            PF_OK=1
            PF_DONE=$(wait_delivered "$PF_DIR/mail" "$MESSAGES") || PF_OK=0
            PF_BUSY=$(cpu_busy "$CPU0" "$(cpu_snap)")
            PF_DELIVERED=$(count_mail "$PF_DIR/mail")
            PF_ACK_RATE=$(calc "$MESSAGES / ($PF_ACKED - $PF_START)")
            PF_E2E_RATE=$(calc "$PF_DELIVERED / ($PF_DONE - $PF_START)")
            PF_STATUS="ran ($(postconf -h mail_version 2>/dev/null || echo '?'))"
        else
            [[ $BENCH_POSTFIX == 1 ]] && { cat "$PF_DIR/start.out" >&2; die "Postfix did not start"; }
            PF_STATUS="skipped (did not start: $(tr -d '\r' <"$PF_DIR/start.out" | grep -m1 -i 'fatal\|error' || echo 'see maillog'))"
        fi
    fi
fi

# --- report -----------------------------------------------------------------
row() { printf '%-44s %14s %14s\n' "$@"; }
echo "== results"
echo "disk (same filesystem as the queue, $FSYNCS x $SIZE octets, one stream):"
row "  disk write+fsync/s (append, python3)" "$FSYNC_APPEND" ""
row "  disk create+write+fsync/s (new file)" "$FSYNC_NEWFILE" ""
row "  disk dd oflag=dsync writes/s" "$DD_RATE" ""
row "  disk write+sync_file_range/s (as sled)" "$SFR_RATE" ""
echo
row "" "faxmta" "postfix"
row "durable accepts/s (250 after DATA)" "$FX_ACK_RATE" "${PF_ACK_RATE:--}"
row "accept+deliver to Maildir msgs/s" "$FX_E2E_RATE" "${PF_E2E_RATE:--}"
row "wall time to last 250 (s)" "$(calc "$FX_ACKED - $FX_START" 2)" "$( [[ -n ${PF_ACKED:-} ]] && calc "$PF_ACKED - $PF_START" 2 || echo -)"
row "wall time to last Maildir file (s)" "$(calc "$FX_DONE - $FX_START" 2)" "$( [[ -n ${PF_DONE:-} ]] && calc "$PF_DONE - $PF_START" 2 || echo -)"
row "machine CPU busy, all $(nproc) cores" "$FX_BUSY" "${PF_BUSY:--}"
row "messages sent / delivered to Maildir" "$MESSAGES/$FX_DELIVERED" "$( [[ -n ${PF_DELIVERED:-} ]] && echo "$MESSAGES/$PF_DELIVERED" || echo -)"
row "faxmta CPU ms per message (user+sys)" "$FX_CPU_MS" ""
row "faxmta peak RSS" "$FX_RSS" ""
echo
echo "faxmta durable accepts/s / disk write+fsync/s = $(calc "$FX_ACK_RATE / $FSYNC_APPEND" 2)"
echo "  (above 1, group commit is sharing one sync among several messages;"
echo "   below 1, something other than the disk's sync rate sets the pace)"
echo "postfix: $PF_STATUS"
echo "note: delivery to Maildir runs concurrently with accepting (there is no"
echo "      'hold all' switch), so 'durable accepts/s' is measured while the"
echo "      scheduler is also writing and fsyncing Maildir files."
[[ $FX_WARN -gt 0 ]] && echo "faxmta log: $FX_WARN line(s) at warn or above (KEEP=1 keeps $FX/faxmta.log)"

[[ $FX_OK == 1 ]] || die "faxmta: only $FX_DELIVERED of $MESSAGES messages reached the Maildir within ${DELIVERY_WAIT}s"
[[ ${PF_OK:-1} == 1 ]] || die "postfix: only $PF_DELIVERED of $MESSAGES messages reached the Maildir within ${DELIVERY_WAIT}s"
exit 0
