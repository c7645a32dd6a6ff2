# shellcheck shell=bash
# bench/lib/common.sh: shell functions shared by the reliability scripts in
# bench/ (crashloop.sh, soak.sh, peers.sh): messages, arithmetic, finding or
# installing Postfix's smtp-source/smtp-sink, building faxmta, ports, and
# reading a process's memory and descriptors from /proc. Source it after
# setting NAME (the script's name, for messages).

die() { echo "${NAME:-bench}: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }
now() { date +%s.%N; }
# calc EXPR [DECIMALS]: floating-point arithmetic with awk.
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }

# find_tool NAME: path of a tool on PATH or in /usr/sbin.
find_tool() {
    command -v "$1" 2>/dev/null && return 0
    [[ -x /usr/sbin/$1 ]] && { echo "/usr/sbin/$1"; return 0; }
    return 1
}

# need_postfix_tools: sets SMTP_SOURCE and SMTP_SINK, installing Debian's
# postfix package ("No configuration": the system's Postfix stays off).
need_postfix_tools() {
    if ! find_tool smtp-source >/dev/null || ! find_tool smtp-sink >/dev/null; then
        note "smtp-source/smtp-sink not found; installing Debian package postfix"
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            echo "postfix postfix/main_mailer_type select No configuration" \
                | debconf-set-selections 2>/dev/null || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >&2 \
                || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >&2; } \
                || true
        fi
    fi
    SMTP_SOURCE=$(find_tool smtp-source) && SMTP_SINK=$(find_tool smtp-sink) \
        || die "smtp-source/smtp-sink are missing; install them with: apt-get install postfix"
}

# build_faxmta REPO: sets BIN to FAXMTA_BIN or a fresh release build.
build_faxmta() {
    if [[ -n ${FAXMTA_BIN:-} ]]; then
        [[ -x $FAXMTA_BIN ]] || die "FAXMTA_BIN=$FAXMTA_BIN is not an executable file"
        BIN=$FAXMTA_BIN
        return
    fi
    note "building faxmta (cargo build --release) in $1"
    (cd "$1" && cargo build --release --quiet) >&2 || die "cargo build --release failed"
    BIN=${CARGO_TARGET_DIR:-$1/target}/release/faxmta
    [[ -x $BIN ]] || die "no binary at $BIN after the build"
}

# free_port ADDR: a port nothing listens on at ADDR.
free_port() {
    python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}

# wait_port ADDR PORT SECONDS [PID]: until ADDR:PORT accepts (or PID died).
wait_port() {
    local end=$((SECONDS + $3))
    while ((SECONDS < end)); do
        if [[ -n ${4:-} ]] && ! kill -0 "$4" 2>/dev/null; then return 1; fi
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# rss_kib PID: resident memory (VmRSS) in KiB; fds PID: open descriptors.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# sink_counts FILE: "SESSIONS MESSAGES" from smtp-sink -c output, whose
# counters ("sess=N quit=N mesg=N") are rewritten after a \r at every
# message end and every session end.
sink_counts() {
    tail -c 256 "$1" 2>/dev/null | tr '\r' '\n' \
        | awk '/^sess=[0-9]+ quit=[0-9]+ mesg=[0-9]+$/ { s = $1; m = $3 }
               END { sub(/sess=/, "", s); sub(/mesg=/, "", m); print (s == "" ? 0 : s), (m == "" ? 0 : m) }'
}

# python_bin: the real python3 interpreter (not a pyenv or other shim
# script), so that `$!` of a backgrounded python is the python process.
python_bin() { python3 -c 'import sys; print(sys.executable)'; }

# stop_pid PID: TERM, wait up to 10 s, then KILL; reaps it.
stop_pid() {
    kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
    kill -TERM "$1" 2>/dev/null
    local _
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null || true
    return 0
}

# cpu_snap: "BUSY IDLE" jiffies of the whole machine (/proc/stat).
cpu_snap() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }

# tree_ticks PID: "USER SYSTEM" clock ticks used by PID and every live
# descendant (threads included), plus what the children each of them has
# reaped used. Run the server under bench/lib/subreaper.py and pass the
# subreaper's PID: then processes that forked, daemonized or already
# exited are counted too.
tree_ticks() {
    python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1])
stat = {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        with open("/proc/%s/stat" % p) as f:
            s = f.read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    # f[1] ppid, f[11] utime, f[12] stime, f[13] cutime, f[14] cstime
    stat[int(p)] = (int(f[1]), int(f[11]) + int(f[13]), int(f[12]) + int(f[14]))
kids = {}
for p, (pp, _, _) in stat.items():
    kids.setdefault(pp, []).append(p)
user = system = 0
todo = [root] if root in stat else []
while todo:
    p = todo.pop()
    user += stat[p][1]
    system += stat[p][2]
    todo.extend(kids.get(p, []))
print(user, system)
PY
}

# wait_sink FILE N SECONDS [STALL]: prints the time at which smtp-sink's
# output FILE counted N messages (or the time of giving up); returns 1 if
# they did not all arrive within SECONDS, or (with STALL) if the count
# did not grow for STALL seconds.
wait_sink() {
    local end=$((SECONDS + $3)) n last=-1 moved=$SECONDS
    while :; do
        n=$(sink_counts "$1" | cut -d' ' -f2)
        if ((n >= $2)); then now; return 0; fi
        if ((n != last)); then last=$n moved=$SECONDS; fi
        if ((SECONDS >= end)); then now; return 1; fi
        if [[ -n ${4:-} ]] && ((SECONDS - moved >= $4)); then now; return 1; fi
        sleep 0.05
    done
}

# start_sink OUTFILE ADDR: an smtp-sink counting messages (as nobody when
# root); sets SINK_PORT and SINK_PID. Needs SMTP_SINK (need_postfix_tools).
start_sink() {
    SINK_PORT=$(free_port "$2")
    local user=()
    [[ $(id -u) -eq 0 ]] && user=(-u nobody)
    "$SMTP_SINK" "${user[@]}" -c "$2:$SINK_PORT" 1024 >"$1" 2>&1 &
    SINK_PID=$!
    wait_port "$2" "$SINK_PORT" 10 "$SINK_PID" \
        || { cat "$1" >&2; die "smtp-sink did not start on $2:$SINK_PORT"; }
}

# median: the median of the numbers on stdin, one a line ("-" if none).
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
