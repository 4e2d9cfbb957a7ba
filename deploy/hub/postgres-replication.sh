#!/bin/sh
# Run once by the postgres image on the primary's first start (/docker-entrypoint-initdb.d, mounted by
# docker-compose.replica.yml): the role the read replica streams the WAL as, and the pg_hba line that
# lets it connect for replication with its password. On a primary that already has its data, run the
# same two steps by hand (docs/scaling.md#a-read-replica).
set -eu
: "${POSTGRES_REPLICATION_PASSWORD:?set POSTGRES_REPLICATION_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="$POSTGRES_REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SQL
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
