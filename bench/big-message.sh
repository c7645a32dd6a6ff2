#!/usr/bin/env bash
# bench/big-message.sh: memory per concurrent large message.
# Starts `faxmta serve` on a fresh temp directory with one local
# and one ETRN domain (mail for the ETRN domain is held, never read back
# for delivery, so only receiving is measured), then for each N in
# CONCURRENCY sends N messages of SIZE_MB MiB at once (python3 smtplib, one
# thread per message, DATA) and prints:
#
#   N, size, RSS before, and the peak RSS (VmHWM) growth over it: at the
#   moment the last client got its 250 (receiving), and again 3 s later
#   (the scheduler's first look at each message reads its body back into
#   memory, even for a held ETRN message: the delivery side's cost, one
#   copy per message being attempted; `concurrency = 1` keeps that to one
#   at a time), both also per message. With N > 1 the messages do not all
#   end at once, so the first figure may include one such read-back.
#
# The peak (VmHWM) is reset through /proc/PID/clear_refs before each round
# (needs root or the same user), so each round's growth is its own.
#
#   bash bench/big-message.sh
#
# Environment (all optional):
#   FAXMTA_BIN     use this binary instead of `cargo build --release`
#   BEFORE_BIN     also run this binary (e.g. a build of an older commit)
#                  and print its figures first, for comparison
#   SIZE_MB=30     message size in MiB
#   CONCURRENCY="1 4 8"
#   BENCH_DIR      parent of the temp dir; KEEP=1 keeps it
#
# Nothing leaves 127.0.0.0/8.
set -euo pipefail
NAME=big-message.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib/common.sh
source "$REPO/bench/lib/common.sh"
SIZE_MB=${SIZE_MB:-30}
CONCURRENCY=${CONCURRENCY:-1 4 8}
export LC_ALL=C
command -v python3 >/dev/null || die "python3 is required"
build_faxmta "$REPO"

TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-big-message.XXXXXX")
FX_PID=
cleanup() {
    [[ -n $FX_PID ]] && kill "$FX_PID" 2>/dev/null && wait "$FX_PID" 2>/dev/null
    [[ -n ${KEEP:-} ]] && note "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# run BIN LABEL: one server, one round per concurrency.
run() {
    local bin=$1 label=$2 dir="$TMP/$2"
    mkdir -p "$dir"
    local port admin
    port=$(free_port 127.0.0.1)
    admin=$(free_port 127.0.0.1)
    cat >"$dir/faxmta.toml" <<TOML
hostname = "mx.bench.test"
[queue]
path = "$dir/queue"
# One message attempted at a time: the scheduler's read-back of a body
# (see above) counts once, not per message.
concurrency = 1
[dns]
nameservers = ["127.0.0.1:9"]
[control]
socket = "$dir/faxmta.sock"
[admin]
listen = "127.0.0.1:$admin"
[tls]
generated_dir = "$dir/tls"
[smtp]
max_message_size = "$((SIZE_MB * 2))M"
[[listener]]
addr = "127.0.0.1:$port"
role = "mx"
[[domain]]
name = "hold.bench.test"
kind = "etrn"
release_from = ["127.0.0.1/32"]
TOML
    "$bin" serve --config "$dir/faxmta.toml" >"$dir/faxmta.log" 2>&1 &
    FX_PID=$!
    wait_port 127.0.0.1 "$port" 30 "$FX_PID" || die "$label: the server did not start: $(tail -5 "$dir/faxmta.log")"
    for n in $CONCURRENCY; do
        echo 5 >"/proc/$FX_PID/clear_refs" || die "cannot reset the peak RSS (run as root)"
        local before acked later
        before=$(rss_kib "$FX_PID")
        acked=$(python3 - "$port" "$n" "$SIZE_MB" "$FX_PID" <<'PY'

import smtplib, sys, threading
port, n, mb, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
line = b"y" * 76 + b"\r\n"
body = b"".join([b"From: a@client.bench.test\r\nTo: u@hold.bench.test\r\nSubject: big\r\n\r\n",
                 line * (mb * 1024 * 1024 // len(line))])
errors = []
def send():
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as s:
            s.sendmail("a@client.bench.test", ["u@hold.bench.test"], body)
    except Exception as e:
        errors.append(e)
threads = [threading.Thread(target=send) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
if errors: sys.exit(f"{len(errors)} failed: {errors[0]}")
for l in open(f"/proc/{pid}/status"):
    if l.startswith("VmHWM:"): print(l.split()[1])
PY
) || die "$label: sending failed"
        sleep 3
        later=$(hwm_kib "$FX_PID")
        printf '%-7s N=%-2s %3s MiB each, RSS before %5s MiB; peak growth at the 250s %6s MiB (%5s per message), 3 s later %6s MiB (%5s per message)\n' \
            "$label" "$n" "$SIZE_MB" "$(calc "$before/1024")" \
            "$(calc "($acked-$before)/1024")" "$(calc "($acked-$before)/1024/$n")" \
            "$(calc "($later-$before)/1024")" "$(calc "($later-$before)/1024/$n")"
    done
    kill "$FX_PID" && wait "$FX_PID" 2>/dev/null || true
    FX_PID=
}

[[ -n ${BEFORE_BIN:-} ]] && run "$BEFORE_BIN" before
run "$BIN" after
