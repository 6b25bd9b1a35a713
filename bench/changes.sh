#!/usr/bin/env bash
# The cost of changing rows in place (UPDATE, DELETE): each rewrites the
# whole table, so time grows with the table, not with the rows changed.
# Compares a Quiver server with PostgreSQL on the same machine.
#
#   bench/changes.sh HOST:PORT [ROWS]
#
# Creates (and drops) bench_changes; psql must reach the server as the
# current user (PGUSER etc. apply). Prints psql's \timing for each step.
set -euo pipefail
target=${1:?usage: bench/changes.sh HOST:PORT [ROWS]}
rows=${2:-1000000}
host=${target%:*}
port=${target##*:}
psql -h "$host" -p "$port" -X -q -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS bench_changes;
CREATE TABLE bench_changes (id BIGINT, grp BIGINT, name TEXT, score DOUBLE PRECISION);
\timing on
\echo 'fill ($rows rows)'
INSERT INTO bench_changes SELECT g, g % 100, md5(g::text), g * 0.5 FROM generate_series(1, $rows) g;
\echo 'DELETE one row'
DELETE FROM bench_changes WHERE id = 42;
\echo 'UPDATE one row'
UPDATE bench_changes SET score = -1 WHERE id = 43;
\echo 'UPDATE 1% of the rows'
UPDATE bench_changes SET score = score + 1 WHERE grp = 7;
\echo 'DELETE 10% of the rows'
DELETE FROM bench_changes WHERE grp < 10;
\echo 'DELETE ... WHERE id IN (SELECT ...) (1,000 keys)'
DELETE FROM bench_changes WHERE id IN (SELECT g * 7 FROM generate_series(1, 1000) g);
\echo 'TRUNCATE'
TRUNCATE bench_changes;
\timing off
DROP TABLE bench_changes;
SQL
