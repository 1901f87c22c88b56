#!/usr/bin/env bash
# Makes sure Debian's PostgreSQL server binaries are present (/usr/lib/postgresql/*/bin),
# for the PostgreSQL baseline of `osprey bench ingest` and, later, the PostgreSQL tests.
# Does nothing when they already are. Needs root (apt-get) when they are not.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "install-postgres: $(ls -d /usr/lib/postgresql/*/bin | tail -n1) present"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgres: PostgreSQL server not found; install Debian's postgresql package (apt-get install postgresql)" >&2
    exit 1
fi
echo "install-postgres: installing Debian's postgresql"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib
ls -d /usr/lib/postgresql/*/bin
