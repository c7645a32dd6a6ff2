# shellcheck shell=bash
# shellcheck disable=SC2034 # MTA_PID, MTA_LOG, PF_CONF_DIR are for the sourcing script
# bench/lib/mta.sh: private relay instances of faxmta and its peers
# (Postfix, Exim, OpenSMTPD, chasquid, Haraka) for bench/peers.sh, as
# worked out in docs/design/peers-bench.md: how each is fetched without
# installing an MTA package, configured to relay sink.test to an smtp-sink
# on loopback without asking the system resolver, started, and how it
# acknowledges durably or why it cannot.
#
# Source after bench/lib/common.sh. Globals the functions use:
#   PEERS_ROOT  cache of unpacked Debian packages and Haraka's npm tree
#   PYTHON      the real python3 (python_bin), SUBREAPER bench/lib/subreaper.py
#   BIN         the faxmta binary; DNS_ADDR:DNS_PORT tests/peers/dns.py
#
# Every mta_start_PEER DIR ADDR PORT SINK_ADDR SINK_PORT writes its
# configuration under DIR (created empty by the caller), starts the server
# in the background under the subreaper and sets MTA_PID to the
# subreaper's PID: stop it with stop_pid (the subreaper stops the whole
# server and everything it forked), count its CPU with tree_ticks. The
# caller waits for ADDR:PORT itself. MTA_LOG names the file to show when
# the server does not start.

MTA_ALL="faxmta postfix exim opensmtpd chasquid haraka"

# mta_durability PEER: one line, how the 250 after DATA is made durable.
mta_durability() {
    case $1 in
        faxmta) echo "yes: the message is synced to its queue before the 250 (DESIGN invariants)" ;;
        postfix) echo "yes, by default: cleanup fsyncs the queue file before the 250" ;;
        exim) echo "yes, by default (cannot be turned off in Debian's build): fsync of -D and -H files and of the input directory before the 250" ;;
        opensmtpd) echo "NO, cannot be made so: 6.8.0p2 never fsyncs a new message (queue_fs.c commits by rename only); only a -o sync mount would" ;;
        chasquid) echo "NO: 1.11 (Debian 12) renames the queue item without fsync; durable Put needs chasquid >= 1.17 (not in Debian 12)" ;;
        haraka) echo "yes (file, not directory): outbound queue file fsynced, then renamed, then the 250 (queue/smtp_forward, enable_outbound=false)" ;;
        *) echo "?" ;;
    esac
}

# mta_version PEER: the version being measured.
mta_version() {
    case $1 in
        faxmta) echo "faxmta $("$BIN" --version 2>/dev/null | awk '{ print $NF; exit }')" ;;
        postfix) echo "Postfix $(postconf -c "${PF_CONF_DIR:-/nonexistent}" -h mail_version 2>/dev/null \
            || dpkg-query -W -f '${Version}' postfix 2>/dev/null || echo '?')" ;;
        exim) echo "Exim $(dpkg-deb -f "$PEERS_ROOT"/debs/exim4-daemon-heavy_*.deb Version 2>/dev/null || echo '?')" ;;
        opensmtpd) echo "OpenSMTPD $(dpkg-deb -f "$PEERS_ROOT"/debs/opensmtpd_*.deb Version 2>/dev/null || echo '?')" ;;
        chasquid) echo "chasquid $(dpkg-deb -f "$PEERS_ROOT"/debs/chasquid_*.deb Version 2>/dev/null || echo '?')" ;;
        haraka) echo "Haraka $(node -p 'require(process.argv[1]).version' "$PEERS_ROOT/haraka/node_modules/Haraka/package.json" 2>/dev/null || echo '?')" ;;
    esac
}

# mta_fetch PEER: makes PEER runnable (outside the network namespace:
# needs the Debian mirror or npm). Prints nothing and returns 0 when it
# is; otherwise prints why not and returns 1.
mta_fetch() {
    case $1 in
        faxmta) return 0 ;;
        postfix)
            command -v postfix >/dev/null || { echo "postfix is not installed (apt-get install postfix)"; return 1; }
            id postfix >/dev/null 2>&1 || { echo "no user postfix"; return 1; }
            return 0 ;;
        exim) mta_unpack usr/sbin/exim4 exim4-daemon-heavy exim4-base || return 1
            if [[ $(ldd "$PEERS_ROOT/root/usr/sbin/exim4" 2>&1) == *"not found"* ]]; then
                # libspf2-2: the one shared library of exim4-daemon-heavy
                # that was missing here (a library, no MTA conflict).
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libspf2-2 >&2 \
                    || { echo "libspf2-2 (needed by exim4) could not be installed"; return 1; }
            fi
            mta_user Debian-exim ;;
        opensmtpd) mta_unpack usr/sbin/smtpd opensmtpd || return 1
            mta_user opensmtpd && mta_user opensmtpq ;;
        chasquid) mta_unpack usr/bin/chasquid chasquid ;;
        haraka)
            [[ -x $PEERS_ROOT/haraka/node_modules/.bin/haraka ]] && return 0
            command -v npm >/dev/null || { echo "npm is not installed (apt-get install npm)"; return 1; }
            mkdir -p "$PEERS_ROOT/haraka"
            note "haraka: npm install Haraka into $PEERS_ROOT/haraka"
            (cd "$PEERS_ROOT/haraka" && npm install --no-audit --no-fund --loglevel=error Haraka >&2) \
                || { echo "npm install Haraka failed (no network to the npm registry?)"; return 1; }
            [[ -x $PEERS_ROOT/haraka/node_modules/.bin/haraka ]] || { echo "npm installed no haraka binary"; return 1; }
            return 0 ;;
        *) echo "unknown peer (known: $MTA_ALL)"; return 1 ;;
    esac
}

# mta_unpack FILE PACKAGE...: apt-get download + dpkg-deb -x PACKAGEs into
# $PEERS_ROOT/root unless $PEERS_ROOT/root/FILE exists. Never apt-get
# install: each of these packages conflicts with postfix.
mta_unpack() {
    local file=$1
    shift
    [[ -x $PEERS_ROOT/root/$file ]] && return 0
    command -v apt-get >/dev/null || { echo "no apt-get to download $*"; return 1; }
    mkdir -p "$PEERS_ROOT/debs" "$PEERS_ROOT/root"
    note "downloading $* (apt-get download) into $PEERS_ROOT/debs"
    if ! (cd "$PEERS_ROOT/debs" && apt-get download -q "$@" >&2 2>&1); then
        apt-get update -q >&2 2>&1 || true
        (cd "$PEERS_ROOT/debs" && apt-get download -q "$@" >&2 2>&1) \
            || { echo "apt-get download $* failed (no network to the Debian mirror?)"; return 1; }
    fi
    local p d
    for p in "$@"; do
        for d in "$PEERS_ROOT/debs/${p}"_*.deb; do
            dpkg-deb -x "$d" "$PEERS_ROOT/root" || { echo "dpkg-deb -x $d failed"; return 1; }
        done
    done
    [[ -x $PEERS_ROOT/root/$file ]] || { echo "no $file in $*"; return 1; }
}

# mta_user NAME: a system user the peer insists on (its postinst would
# have made it).
mta_user() {
    getent passwd "$1" >/dev/null && return 0
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$1" || { echo "useradd $1 failed"; return 1; }
}

# mta_run LOG CMD...: CMD under the subreaper, output to LOG; sets MTA_PID.
mta_run() {
    MTA_LOG=$1
    shift
    "$PYTHON" "$SUBREAPER" "$@" >>"$MTA_LOG" 2>&1 &
    MTA_PID=$!
}

# mta_private_run LOG MOUNTS CMD...: like mta_run, in a private mount
# namespace where MOUNTS ("SRC:DST SRC:DST", bind mounts) apply to this
# server only (its own /etc/resolv.conf, spool, run directory).
mta_private_run() {
    local log=$1 mounts=$2 script="" m
    shift 2
    for m in $mounts; do
        script+="mount --bind '${m%%:*}' '${m#*:}' && "
    done
    mta_run "$log" unshare -m --propagation private bash -c "$script exec \"\$@\"" mta "$@"
}

# mta_conf_faxmta DIR ADDR PORT SINK_PORT: DIR/faxmta.toml, relaying from
# 127.0.0.0/8 through [dns] DNS_ADDR:DNS_PORT (sink.test's MX) to
# SINK_PORT. Optional: FX_ADMIN (admin listener, default a free port on
# ADDR), OUTBOUND_TLS (off), FAXMTA_LOG (info), FX_CONCURRENCY,
# FX_DEST_CONCURRENCY. Shared with bench/relay.sh.
mta_conf_faxmta() {
    local admin=${FX_ADMIN:-}
    [[ -n $admin ]] || admin=$2:$(free_port "$2")
    cat >"$1/faxmta.toml" <<EOF
hostname = "relay.bench.test"
[queue]
path = "$1/queue"
${FX_CONCURRENCY:+concurrency = $FX_CONCURRENCY}
${FX_DEST_CONCURRENCY:+destination_concurrency = $FX_DEST_CONCURRENCY}
[control]
socket = "$1/faxmta.sock"
[tls]
generated_dir = "$1/tls"
[[listener]]
addr = "$2:$3"
role = "mx"
tls = "none"
[smtp]
shutdown_grace = "2s"
[relay]
allow = ["127.0.0.0/8"]
[dns]
nameservers = ["$DNS_ADDR:$DNS_PORT"]
[outbound]
port = $4
tls = "${OUTBOUND_TLS:-off}"
[admin]
listen = "$admin"
[log]
level = "${FAXMTA_LOG:-info}"
EOF
}

mta_start_faxmta() { # DIR ADDR PORT SINK_ADDR SINK_PORT
    mta_conf_faxmta "$1" "$2" "$3" "$5"
    mta_run "$1/faxmta.log" "$BIN" serve --config "$1/faxmta.toml"
}

# mta_conf_postfix DIR ADDR PORT SINK_ADDR SINK_PORT: a private Postfix
# instance's DIR/etc/{master.cf,main.cf}, queue in DIR/spool, log in
# DIR/maillog. Shared with bench/relay.sh.
mta_conf_postfix() {
    local d=$1
    mkdir -p "$d/etc" "$d/spool" "$d/data"
    chown postfix:postfix "$d/data"
    cat >"$d/etc/master.cf" <<EOF
$2:$3 inet n - n - - smtpd
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
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    # Only the services this path needs; nothing chrooted. Relays from
    # 127.0.0.0/8 (mynetworks); sink.test goes by the transport map to the
    # sink's IP literal (no MX or A lookup), everything else would fail at
    # once (default_transport = error). No DNS anywhere:
    # smtp_dns_support_level = disabled, native host lookups (the nexthop
    # is an address anyway), no reverse lookup of SMTP clients.
    # inet_interfaces must name an interface address (lo has 127.0.0.1
    # only); master.cf binds the listener to ADDR itself.
    cat >"$d/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $d/spool
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
smtpd_banner = \$myhostname ESMTP
smtpd_peername_lookup = no
transport_maps = inline:{ sink.test=smtp:[$4]:$5 }
default_transport = error:this benchmark instance relays sink.test only
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtp_tls_security_level = none
maillog_file = $d/maillog
maillog_file_prefixes = $d
EOF
}

mta_start_postfix() { # DIR ADDR PORT SINK_ADDR SINK_PORT
    local d=$1
    mta_conf_postfix "$@"
    PF_CONF_DIR=$d/etc
    # `postfix start` daemonizes the master: the subreaper adopts it.
    if command -v script >/dev/null; then
        mta_run "$d/start.out" script -qec "postfix -c '$d/etc' start" /dev/null
    else
        mta_run "$d/start.out" postfix -c "$d/etc" start
    fi
}

# Exim: the spool belongs to Debian-exim; -bdf keeps the daemon in the
# foreground. A -C file not in /etc/exim4/trusted_configs makes every
# re-exec log "lost privilege" to the paniclog: mta_exim_trust lists it.
mta_start_exim() { # DIR ADDR PORT SINK_ADDR SINK_PORT
    local d=$1
    mkdir -p "$d/spool" "$d/log"
    chown Debian-exim:Debian-exim "$d/spool" "$d/log"
    cat >"$d/exim.conf" <<EOF
exim_path = $PEERS_ROOT/root/usr/sbin/exim4
primary_hostname = exim.bench.test
qualify_domain = bench.test
spool_directory = $d/spool
log_file_path = $d/log/%slog
pid_file_path = $d/exim.pid
local_interfaces = <; $2
daemon_smtp_ports = $3
disable_ipv6 = true
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
helo_lookup_domains =
smtp_accept_max = 1000
smtp_accept_queue_per_connection = 0
smtp_connect_backlog = 1024
split_spool_directory = false
# No STARTTLS offered (no peer here offers it; smtp-source would not use
# it), no warning about the environment at every start.
tls_advertise_hosts =
keep_environment =
domainlist relay_to_domains = sink.test
hostlist relay_from_hosts = <; 127.0.0.0/8
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept hosts = +relay_from_hosts
         domains = +relay_to_domains
  deny   message = relay not permitted
begin routers
to_sink:
  driver = manualroute
  domains = +relay_to_domains
  route_list = * $4
  transport = to_sink_smtp
  self = send
begin transports
to_sink_smtp:
  driver = smtp
  port = $5
  hosts_avoid_tls = *
EOF
    chmod 644 "$d/exim.conf"
    mta_run "$d/exim.out" "$PEERS_ROOT/root/usr/sbin/exim4" -C "$d/exim.conf" -bdf -q30m
}

# mta_exim_trust CONF: lists CONF in /etc/exim4/trusted_configs unless that
# file exists already; sets EXIM_TRUST_MADE to what mta_exim_untrust removes.
mta_exim_trust() {
    EXIM_TRUST_MADE=
    if [[ -e /etc/exim4/trusted_configs ]]; then
        grep -qxF "$1" /etc/exim4/trusted_configs \
            || note "exim: /etc/exim4/trusted_configs exists and does not list $1: Exim logs 'lost privilege' per message (slower)"
        return 0
    fi
    if [[ ! -d /etc/exim4 ]]; then
        mkdir /etc/exim4 && EXIM_TRUST_MADE=/etc/exim4
    else
        EXIM_TRUST_MADE=/etc/exim4/trusted_configs
    fi
    echo "$1" >/etc/exim4/trusted_configs
    chmod 644 /etc/exim4/trusted_configs
}
mta_exim_untrust() {
    case ${EXIM_TRUST_MADE:-} in
        /etc/exim4) rm -f /etc/exim4/trusted_configs && rmdir /etc/exim4 ;;
        /etc/exim4/trusted_configs) rm -f /etc/exim4/trusted_configs ;;
    esac
    EXIM_TRUST_MADE=
}

# OpenSMTPD: spool, chroot and control socket are compiled in, so it gets
# its own mount namespace with private directories over them, and a
# resolv.conf with `lookup file` (it reverse-resolves every client itself).
mta_start_opensmtpd() { # DIR ADDR PORT SINK_ADDR SINK_PORT
    local d=$1
    mkdir -p "$d/var-spool" "$d/var-lib/opensmtpd/empty" "$d/run"
    # max-mails: its default of 100 messages per session would refuse
    # (452) the rest of a persistent loadgen session.
    cat >"$d/smtpd.conf" <<EOF
smtp limit max-mails 1000000
listen on $2 port $3 hostname opensmtpd.bench.test
action "sink" relay host smtp://$4:$5 helo opensmtpd.bench.test
match from src 127.0.0.0/8 for domain sink.test action "sink"
EOF
    printf 'nameserver 127.0.0.1\nlookup file\n' >"$d/resolv.conf"
    "$PEERS_ROOT/root/usr/sbin/smtpd" -n -f "$d/smtpd.conf" >"$d/check.out" 2>&1 \
        || { cat "$d/check.out" >&2; return 1; }
    mta_private_run "$d/smtpd.log" \
        "$d/var-spool:/var/spool $d/var-lib:/var/lib $d/resolv.conf:/etc/resolv.conf $d/run:/run" \
        "$PEERS_ROOT/root/usr/sbin/smtpd" -d -f "$d/smtpd.conf"
}

# chasquid relays only for authenticated clients: sink.test is a local
# domain whose alias u forwards to u@relay.test, which chasquid resolves
# (MX, A) through dns.py on 127.0.0.1:53 and delivers to the sink's port.
mta_start_chasquid() { # DIR ADDR PORT SINK_ADDR SINK_PORT
    local d=$1 p2 p3 certs
    p2=$(free_port "$2")
    p3=$(free_port "$2")
    certs=$d/etc/certs/chasquid.bench.test
    mkdir -p "$d/etc/domains/sink.test" "$certs" "$d/data"
    cat >"$d/etc/chasquid.conf" <<EOF
hostname: "chasquid.bench.test"
smtp_address: "$2:$3"
submission_address: "$2:$p2"
submission_over_tls_address: "$2:$p3"
monitoring_address: ""
mail_delivery_agent_bin: "/bin/false"
data_dir: "$d/data"
mail_log_path: "$d/mail.log"
EOF
    echo "u: u@relay.test" >"$d/etc/domains/sink.test/aliases"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=chasquid.bench.test -keyout "$certs/privkey.pem" -out "$certs/fullchain.pem" \
        >/dev/null 2>&1 || { echo "openssl req failed" >&2; return 1; }
    echo "nameserver $DNS_ADDR" >"$d/resolv.conf"
    mta_private_run "$d/chasquid.out" "$d/resolv.conf:/etc/resolv.conf" \
        "$PEERS_ROOT/root/usr/bin/chasquid" -config_dir "$d/etc" \
        -testing__outgoing_smtp_port "$5" -logfile "$d/chasquid.log"
}

# Haraka: relay plugin + queue/smtp_forward in outbound mode (the message
# goes to the outbound queue, fsynced, before the 250; smtp_forward's
# per-domain route is the next hop). One process (no cluster nodes).
mta_start_haraka() { # DIR ADDR PORT SINK_ADDR SINK_PORT
    local d=$1 c=$1/inst/config
    if [[ ! -d $PEERS_ROOT/haraka/template ]]; then
        "$PEERS_ROOT/haraka/node_modules/.bin/haraka" -i "$PEERS_ROOT/haraka/template" >/dev/null 2>&1 \
            || { echo "haraka -i failed" >&2; return 1; }
    fi
    cp -a "$PEERS_ROOT/haraka/template" "$d/inst"
    printf '[main]\nlisten=%s:%s\n' "$2" "$3" >"$c/smtp.ini"
    printf 'relay\nqueue/smtp_forward\n' >"$c/plugins"
    echo "127.0.0.0/8" >"$c/relay_acl_allow"
    echo "haraka.bench.test" >"$c/me"
    cat >"$c/smtp_forward.ini" <<EOF
host=$4
port=$5
enable_tls=false
enable_outbound=false

[sink.test]
host=$4
port=$5
enable_tls=false
EOF
    printf '[main]\nenable_tls=false\n' >"$c/outbound.ini"
    printf '[main]\nlevel=notice\n' >"$c/log.ini"
    echo "nameserver $DNS_ADDR" >"$d/resolv.conf"
    mta_private_run "$d/haraka.out" "$d/resolv.conf:/etc/resolv.conf" \
        node "$PEERS_ROOT/haraka/node_modules/Haraka/bin/haraka" -c "$d/inst"
}

# mta_relayed_log PEER DIR: how many deliveries the peer's own log counts
# (a cross-check of the sink's count; "-" where there is no such log).
mta_relayed_log() {
    local f pat
    case $1 in
        faxmta) f=$2/faxmta.log pat='status=sent' ;;
        postfix) f=$2/maillog pat='status=sent' ;;
        exim) f=$2/log/mainlog pat=' => ' ;;
        opensmtpd) f=$2/smtpd.log pat='result="Ok"' ;;
        chasquid) f=$2/chasquid.log pat='sent' ;;
        *) echo -; return ;;
    esac
    if [[ -f $f ]]; then grep -c -- "$pat" "$f" || true; else echo 0; fi
}
