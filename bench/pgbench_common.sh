# Sourced by the pgbench-driven benchmarks (small_statements.sh, soak.sh):
# the tools, the role, a scratch directory $WORK removed on exit, and the
# tables and scripts both read and write.

PGBENCH=${PGBENCH:-$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)}
PSQL=${PSQL:-psql}
: "${PGUSER:=postgres}"
export PGUSER
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# kv_tables HOST PORT PREFIX: PREFIX_kv (10,000 keys, each with its md5)
# and an empty PREFIX_log, both replaced.
kv_tables() {
  "$PSQL" -X -q -h "$1" -p "$2" <<SQL
DROP TABLE IF EXISTS $3_kv;
DROP TABLE IF EXISTS $3_log;
CREATE TABLE $3_kv AS SELECT x AS k, md5(x::text) AS v FROM generate_series(1, 10000) g(x);
CREATE TABLE $3_log (k bigint, v text);
SQL
}

# kv_scripts PREFIX INSERT_KEYS: $WORK/lookup.sql (one key of PREFIX_kv)
# and $WORK/insert.sql (one row into PREFIX_log, its key drawn from
# 10001 to INSERT_KEYS).
kv_scripts() {
  cat > "$WORK/lookup.sql" <<SQL
\\set k random(1, 10000)
SELECT v FROM $1_kv WHERE k = :k;
SQL
  cat > "$WORK/insert.sql" <<SQL
\\set k random(10001, $2)
INSERT INTO $1_log VALUES (:k, 'x');
SQL
}
