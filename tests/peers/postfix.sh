#!/usr/bin/env bash
# tests/peers/postfix.sh: a private Postfix instance as an SMTP peer for
# tests (the approach of bench/accept.sh), on a loopback address only.
#
#   tests/peers/postfix.sh start DIR ADDR PORT DOMAIN [USER...]
#   tests/peers/postfix.sh reload DIR
#   tests/peers/postfix.sh stop DIR
#
# start: makes DIR/etc (main.cf, master.cf, a self-signed certificate made
# with openssl), starts Postfix with smtpd on ADDR:PORT (ADDR in
# 127.0.0.0/8) and STARTTLS offered (smtpd_tls_security_level = may, with
# the TLS details in the Received header), and waits until it answers.
# Mail for DOMAIN is delivered by virtual(8) to DIR/mail/DOMAIN/USER/new;
# with USERs, only those exist (others are refused at RCPT with 550 5.1.1),
# without, every local part does. A USER written user@other.domain makes
# that domain one of the instance's too (DIR/mail/other.domain/user/new),
# e.g. to catch the reports Postfix sends back to a sender. Nothing leaves the instance: mail for
# any other domain fails at once (default_transport = error). The log is
# DIR/maillog. Extra main.cf lines come from $POSTFIX_MAIN_CF (e.g.
# "smtpd_discard_ehlo_keywords = dsn"), extra master.cf lines from
# $POSTFIX_MASTER_CF (e.g. a second smtpd with -o smtpd_tls_wrappermode=yes
# for implicit TLS; it must listen in 127.0.0.0/8 too). Lookup tables: files DIR/etc/NAME.map
# put there before start are compiled with postmap, for main.cf lines such
# as "check_recipient_access hash:${config_directory}/NAME.map".
#
# reload: compiles DIR/etc/*.map again (after the caller rewrote one) and
# has Postfix reload its configuration: idle smtpd processes exit, new
# sessions see the new tables (a session already open keeps the old ones).
#
# stop: stops the instance started in DIR (and kills its master if it
# does not go).
#
# Needs root (Postfix's master starts as root) and the Debian package
# postfix (scripts/test installs it).
set -euo pipefail
export LC_ALL=C

die() { echo "postfix.sh: $*" >&2; exit 1; }

stop() {
    local dir=$1 master=
    [[ -f $dir/spool/pid/master.pid ]] || return 0
    master=$(tr -dc 0-9 <"$dir/spool/pid/master.pid")
    postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
    for _ in $(seq 50); do
        [[ -n $master ]] && kill -0 "$master" 2>/dev/null || return 0
        sleep 0.1
    done
    [[ -n $master ]] && kill -KILL "$master" 2>/dev/null || true
}

maps() { # maps DIR: compile DIR/etc/*.map
    local map
    for map in "$1"/etc/*.map; do
        [[ -e $map ]] || continue
        postmap -c "$1/etc" "hash:$map"
    done
}

reload() {
    local dir=$1
    [[ -f $dir/spool/pid/master.pid ]] || die "no Postfix running in $dir"
    maps "$dir"
    postfix -c "$dir/etc" reload >/dev/null 2>&1 || die "postfix reload failed"
}

wait_port() { # wait_port ADDR PORT SECONDS
    local end=$((SECONDS + $3))
    while ((SECONDS < end)); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start() {
    local dir=$1 addr=$2 port=$3 domain=$4
    shift 4
    [[ $addr =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "ADDR must be in 127.0.0.0/8 (tests stay on loopback), not $addr"
    local line service type
    while IFS= read -r line; do
        read -r service type _ <<<"$line" || true
        [[ $line == [[:space:]]* || $line == \#* || $type != inet \
            || $service =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$ ]] \
            || die "POSTFIX_MASTER_CF: inet services listen on ADDR:PORT in 127.0.0.0/8 only, not $service"
    done <<<"${POSTFIX_MASTER_CF:-}"
    [[ $(id -u) -eq 0 ]] || die "needs root (Postfix's master starts as root)"
    command -v postfix >/dev/null || die "postfix is not installed (apt-get install postfix)"
    command -v openssl >/dev/null || die "openssl is not installed (apt-get install openssl)"
    id postfix >/dev/null 2>&1 || die "no user postfix"

    mkdir -p "$dir/etc" "$dir/spool" "$dir/data" "$dir/mail"
    # Postfix's daemons run as user postfix and must reach their dirs.
    chmod 755 "$dir"
    chown postfix:postfix "$dir/data" "$dir/mail"

    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/etc/key.pem" -out "$dir/etc/cert.pem" -days 2 \
        -subj "/CN=peer.$domain" >"$dir/openssl.out" 2>&1 \
        || { cat "$dir/openssl.out" >&2; die "openssl could not make a certificate"; }
    chmod 600 "$dir/etc/key.pem"

    local maps domains=$domain
    if (($#)); then
        maps="inline:{"
        local user dom
        for user in "$@"; do
            if [[ $user == *@* ]]; then
                dom=${user#*@}
                [[ " $domains " == *" $dom "* ]] || domains+=" $dom"
            else
                dom=$domain user=$user@$domain
            fi
            maps+=" $user=$dom/${user%@*}/,"
        done
        maps="${maps%,} }"
    else
        # Every local part exists, each in its own Maildir.
        maps="regexp:$dir/etc/mailboxes"
        printf '/^([^@+]+)@/ %s/${1}/\n' "$domain" >"$dir/etc/mailboxes"
    fi

    # Only the services this path needs; nothing chrooted.
    cat >"$dir/etc/master.cf" <<EOF
$addr:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
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
${POSTFIX_MASTER_CF:-}
EOF
    # inet_interfaces names 127.0.0.1 because Postfix wants an address
    # that is on an interface; the listener itself is $addr (master.cf).
    cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = peer.$domain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtpd_banner = \$myhostname ESMTP
smtpd_peername_lookup = no
# Nothing leaves this instance: not even its own bounces.
default_transport = error:the test peer sends no mail
relay_transport = error:the test peer sends no mail
virtual_mailbox_domains = $domains
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = $maps
virtual_uid_maps = static:$(id -u postfix)
virtual_gid_maps = static:$(id -g postfix)
virtual_minimum_uid = 1
smtpd_tls_security_level = may
smtpd_tls_cert_file = $dir/etc/cert.pem
smtpd_tls_key_file = $dir/etc/key.pem
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
${POSTFIX_MAIN_CF:-}
EOF
    maps "$dir"
    # Postfix prints its errors on stderr only when that is a terminal;
    # `script` gives it one so a failure says why.
    if command -v script >/dev/null; then
        script -qec "postfix -c '$dir/etc' start" /dev/null >"$dir/start.out" 2>&1 || true
    else
        postfix -c "$dir/etc" start >"$dir/start.out" 2>&1 || true
    fi
    if ! wait_port "$addr" "$port" 20; then
        tr -d '\r' <"$dir/start.out" >&2
        [[ -f $dir/maillog ]] && tail -20 "$dir/maillog" >&2
        stop "$dir"
        die "Postfix did not start listening on $addr:$port"
    fi
}

case ${1:-} in
start) (($# >= 5)) || die "usage: $0 start DIR ADDR PORT DOMAIN [USER...]"; shift; start "$@" ;;
reload) (($# == 2)) || die "usage: $0 reload DIR"; reload "$2" ;;
stop) (($# == 2)) || die "usage: $0 stop DIR"; stop "$2" ;;
*) die "usage: $0 start DIR ADDR PORT DOMAIN [USER...] | reload DIR | stop DIR" ;;
esac
