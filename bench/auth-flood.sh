#!/usr/bin/env bash
# bench/auth-flood.sh: memory under an AUTH flood.
#
# CLIENTS connections from one address (127.0.0.1) to an implicit-TLS
# submission listener each send AUTH PLAIN with a wrong password, all at
# once. Each password verification is an argon2id run that takes ~19 MiB
# for a moment, so what bounds the memory is how many run: at most
# [auth] max_failures from one address (a failure is counted before the
# verification) and at most [auth] max_verifications at once.
#
# It prints, per run: the server's VmRSS before, its peak (VmHWM) and
# VmRSS after, the replies (535 verified and failed, 421 refused without
# a verification), and faxmta_smtp_auth_verifications_total. A benchmark
# that prints figures; it asserts nothing and fails only when it cannot
# measure.
#
#   bash bench/auth-flood.sh
#
# Environment (all optional):
#   FAXMTA_BIN        use this binary instead of `cargo build --release`
#   CLIENTS=48        connections at once
#   MAX_FAILURES=5    [auth] max_failures of the first run
#   OPEN=1            a second run with the limits opened up
#                     (max_failures = 1000, max_verifications = CLIENTS):
#                     what every attempt verified costs, as before the fix
#   LEGACY=1          a binary older than the fix (no max_verifications
#                     key, no verification counter): one run, the old way
#   KEEP=1            keep the temp dir (config, server log) after the run
set -euo pipefail

NAME=auth-flood.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib/common.sh
source "$REPO/bench/lib/common.sh"
CLIENTS=${CLIENTS:-48}
MAX_FAILURES=${MAX_FAILURES:-5}
OPEN=${OPEN:-1}
LEGACY=${LEGACY:-0}
export LC_ALL=C

command -v python3 >/dev/null || die "python3 is required (the client side)"
build_faxmta "$REPO"

TMP=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/faxmta-authflood.XXXXXX")
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

hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { calc "$1 / 1024" 1; }

# run NAME AUTH-LINES: one server, one flood.
run() {
    local dir=$TMP/$1
    mkdir -p "$dir"
    PORT=$(free_port 127.0.0.1)
    ADMIN=$(free_port 127.0.0.1)
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
listen = "127.0.0.1:$ADMIN"
[tls]
generated_dir = "$dir/tls"
[[listener]]
addr = "127.0.0.1:$PORT"
role = "submission"
tls = "implicit"
[smtp]
shutdown_grace = "2s"
max_connections_per_ip = 0
[auth]
users_file = "$dir/users"
failure_delay = "0s"
$2
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:$dir/mail/{domain}/{user}"
EOF
    echo "s3cret" | "$BIN" user add alice@example.test --config "$dir/faxmta.toml" >/dev/null 2>&1 \
        || printf 's3cret\ns3cret\n' | "$BIN" user add alice@example.test --config "$dir/faxmta.toml" >/dev/null \
        || die "faxmta user add failed"
    "$BIN" serve --config "$dir/faxmta.toml" 2>"$dir/faxmta.log" &
    FAXMTA_PID=$!
    wait_port 127.0.0.1 "$PORT" 30 "$FAXMTA_PID" || { tail -20 "$dir/faxmta.log" >&2; die "faxmta did not start"; }
    sleep 1
    local before after peak replies verified
    before=$(rss_kib "$FAXMTA_PID")
    replies=$(python3 - "$PORT" "$CLIENTS" <<'PY'
import smtplib, ssl, sys, threading, collections
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
start = threading.Barrier(n)
counts = collections.Counter()
lock = threading.Lock()
def one():
    code = "error"
    try:
        s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=300)
        s.ehlo("flood.test")
        start.wait()
        c, _ = s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==")
        code = str(c)
        s.close()
    except Exception as e:
        code = type(e).__name__
    with lock:
        counts[code] += 1
ts = [threading.Thread(target=one) for _ in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print(" ".join(f"{k}x{v}" for k, v in sorted(counts.items())))
PY
)
    sleep 1
    after=$(rss_kib "$FAXMTA_PID")
    peak=$(hwm_kib "$FAXMTA_PID")
    verified=$(curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '/^faxmta_smtp_auth_verifications_total / { print $2 }')
    printf '%-34s RSS before %6s MiB, peak %6s MiB, after %6s MiB; replies %s; passwords verified %s\n' \
        "$1" "$(mib "$before")" "$(mib "$peak")" "$(mib "$after")" "$replies" "${verified:-n/a}"
    stop_server
}

echo "== faxmta AUTH flood $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine:  $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) RAM, $(uname -sr); load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "faxmta:   $BIN ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "clients:  $CLIENTS at once from 127.0.0.1, AUTH PLAIN with a wrong password over implicit TLS"
echo
if [[ $LEGACY == 1 ]]; then
    run "max_failures $MAX_FAILURES (legacy binary)" "max_failures = $MAX_FAILURES"
    exit 0
fi
run "max_failures $MAX_FAILURES, max_verifications 4" "max_failures = $MAX_FAILURES"
if [[ $OPEN == 1 ]]; then
    run "max_failures 1000, max_verifications $CLIENTS" "max_failures = 1000
max_verifications = $CLIENTS"
fi
