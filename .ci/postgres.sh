#!/usr/bin/env bash
# Installs (if needed) and starts a throw-away PostgreSQL on 127.0.0.1 for the key-store tests.
# Sourced by .ci/run: exports AUTHZ_TEST_DATABASE_URL and registers a stop on exit.
set -euo pipefail

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres

AUTHZ_PG_DIR=$(mktemp -d /tmp/authz-pg.XXXXXX)
chown postgres:postgres "$AUTHZ_PG_DIR"
AUTHZ_PG_PORT=${AUTHZ_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
su postgres -s /bin/sh -c "$pg_bin/initdb -D $AUTHZ_PG_DIR/data -A trust -U postgres -E UTF8" >/dev/null
su postgres -s /bin/sh -c "$pg_bin/pg_ctl -D $AUTHZ_PG_DIR/data -l $AUTHZ_PG_DIR/log -w \
    -o '-c listen_addresses=127.0.0.1 -p $AUTHZ_PG_PORT -k $AUTHZ_PG_DIR' start" >/dev/null
export AUTHZ_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$AUTHZ_PG_PORT/postgres"
# The outage test starts and stops a PostgreSQL of its own with these binaries.
export AUTHZ_TEST_PG_BIN="$pg_bin"
stop_postgres() {
    su postgres -s /bin/sh -c "$pg_bin/pg_ctl -D $AUTHZ_PG_DIR/data -m fast -w stop" >/dev/null 2>&1 || true
    rm -rf "$AUTHZ_PG_DIR"
}
trap stop_postgres EXIT
echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$AUTHZ_PG_PORT"
