#!/bin/sh
# A private PostgreSQL for the tests and benchmarks, never the system's
# cluster: `initdb` in DIR, listening on HOST:PORT (default 127.0.0.1)
# and on a Unix socket in DIR, trust authentication, superuser `faxmta`.
# initdb refuses to run as root (CI runs as root), so as root the
# instance runs as Debian's `postgres` user, which owns DIR. With
# FAXMTA_PG_TLS=CERTDIR (holding server.crt and server.key) it also
# speaks TLS.
#
#   postgres.sh start DIR PORT [HOST]   initdb (once) and start; returns when it accepts connections
#   postgres.sh stop DIR                stop at once (a crash, as far as PostgreSQL can tell: -m immediate)
#   postgres.sh restart DIR             stop at once and start again
#   postgres.sh bin                     print the directory of initdb and pg_ctl
set -eu

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "postgres.sh: no PostgreSQL server installed (Debian package postgresql; scripts/test installs it)" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cmd=${1:?usage: postgres.sh start|stop|restart|bin DIR [PORT [HOST]]}
case $cmd in
bin)
  echo "$bin"
  exit 0
  ;;
esac
dir=${2:?DIR missing}

case $cmd in
start)
  port=${3:?PORT missing}
  host=${4:-127.0.0.1}
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    # The postgres user must reach DIR through its (root's, 0700) parent.
    chmod o+x "$(dirname "$dir")"
  fi
  chmod 700 "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U faxmta -E UTF8 --no-sync \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    # What starts it again (restart) must know how.
    printf '%s\n' "$port" "$host" >"$dir/listen"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir/listen"
    # Synchronous commit as in production (the default); a small instance.
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '$host'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 32MB
synchronous_commit = on
fsync = ${FAXMTA_PG_FSYNC:-on}
log_min_messages = warning
CONF
    if [ -n "${FAXMTA_PG_TLS:-}" ]; then
      cp "$FAXMTA_PG_TLS/server.crt" "$FAXMTA_PG_TLS/server.key" "$dir/data/"
      chmod 600 "$dir/data/server.key"
      [ "$(id -u)" = 0 ] && chown postgres: "$dir/data/server.crt" "$dir/data/server.key"
      printf "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n" \
        >>"$dir/data/postgresql.conf"
    fi
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >/dev/null \
    || { cat "$dir/log" >&2; exit 1; }
  ;;
stop)
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  ;;
restart)
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >/dev/null \
    || { cat "$dir/log" >&2; exit 1; }
  ;;
*)
  echo "postgres.sh: unknown command $cmd" >&2
  exit 2
  ;;
esac
