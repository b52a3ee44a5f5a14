#!/usr/bin/env bash
# A local PostgreSQL for the audit-log tests: installs it from Debian if missing, starts
# a cluster listening on 127.0.0.1, creates a database and a user, and prints the
# DATABASE_URL on stdout (all else goes to stderr), e.g.
#   export MEDCITE_TEST_POSTGRES_URL="$(scripts/ci_postgres.sh)"
# Idempotent; works as root in a fresh Debian container without systemd (or as a user
# with sudo). Each run sets a new random password, so only the printed URL is valid.
set -euo pipefail

DB=${MEDCITE_PG_DB:-medcite_test}
ROLE=${MEDCITE_PG_USER:-medcite_test}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing PostgreSQL from Debian" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
fi
VERSION=$(ls /usr/lib/postgresql | sort -V | tail -1)

# The package creates a "main" cluster, except where policy-rc.d or a missing locale
# stopped it; create one then.
if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$VERSION main"; then
  $SUDO pg_createcluster "$VERSION" main >&2
fi
# Loopback only: these are throwaway test credentials.
echo "listen_addresses = '127.0.0.1'" \
  | $SUDO tee "/etc/postgresql/$VERSION/main/conf.d/medcite-ci.conf" >/dev/null
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}' | grep -qx online; then
  $SUDO pg_ctlcluster "$VERSION" main start >&2
fi
PORT=$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p "$PORT" && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p "$PORT" >&2

PASSWORD=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
psql_admin() { $SUDO -u postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
[ "$(id -u)" -eq 0 ] && psql_admin() { runuser -u postgres -- psql -p "$PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
  psql_admin -c "CREATE ROLE \"$ROLE\" LOGIN" >&2
fi
psql_admin -c "ALTER ROLE \"$ROLE\" PASSWORD '$PASSWORD'" >&2
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
  psql_admin -c "CREATE DATABASE \"$DB\" OWNER \"$ROLE\"" >&2
fi

echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
