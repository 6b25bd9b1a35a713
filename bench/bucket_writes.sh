#!/usr/bin/env bash
# The cost of Wasm functions writing to a key-value bucket: one statement
# counting ROWS hits (`hit`, examples/rust/keyvalue, through
# wasi:keyvalue's increment) over 10 keys, three times. Each call's writes
# are made durable by one sync as the call returns.
#
#   bench/bucket_writes.sh HOST:PORT [ROWS]
#
# The server's function directory must hold quiver_example_keyvalue.wasm
# (`./dev guests`). Creates (and drops) the bucket hits — the example's
# `hit` opens that name; the script stops if the server has one already —
# and the function bench_hit; psql must reach the server as the current user.
set -euo pipefail
target=${1:?usage: bench/bucket_writes.sh HOST:PORT [ROWS]}
rows=${2:-2000}
host=${target%:*}
port=${target##*:}
psql -h "$host" -p "$port" -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE BUCKET hits;
CREATE FUNCTION bench_hit(text) RETURNS bigint LANGUAGE wasm
  SET quiver.wasm.keyvalue = 'hits:read-write' AS 'quiver_example_keyvalue.wasm', 'hit';
SELECT bench_hit('warm-up');
\timing on
\echo '$rows hits in one statement, three times'
SELECT count(bench_hit(CAST(x % 10 AS text))) FROM generate_series(1, $rows) t(x);
SELECT count(bench_hit(CAST(x % 10 AS text))) FROM generate_series(1, $rows) t(x);
SELECT count(bench_hit(CAST(x % 10 AS text))) FROM generate_series(1, $rows) t(x);
\timing off
SELECT sum(CAST(CAST(value AS text) AS bigint)) AS hits FROM quiver.bucket('hits');
DROP FUNCTION bench_hit(text);
DROP BUCKET hits;
SQL
