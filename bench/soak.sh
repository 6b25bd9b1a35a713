#!/usr/bin/env bash
# Soak: many clients running a mixed load for minutes, against any servers
# speaking the PostgreSQL protocol. Prints, per minute, statements per
# second and p50/p99 latency (ms) of each kind of statement, and the
# server's resident memory (RSS) over the run and after $IDLE_SECONDS (default 60) idle.
#
#   bench/soak.sh HOST:PORT:PID [HOST:PORT:PID ...]
#
# PID is the server's process (for PostgreSQL, the postmaster: its backends
# are added up). $CLIENTS (default 64) clients for $MINUTES minutes (default
# 10); RSS every $SAMPLE_SECONDS (default 10). The mix, by pgbench weights,
# prepared statements (`-M prepared`):
#   lookup    4  SELECT v FROM soak_kv WHERE k = :k
#   aggregate 2  count and max over 100 keys
#   insert    2  one-row INSERT INTO soak_log
#   function  2  add1(k) of one row: a Wasm function on Quiver, a SQL
#                function on PostgreSQL
set -euo pipefail

. "$(dirname "$0")/pgbench_common.sh"
CLIENTS=${CLIENTS:-64}
MINUTES=${MINUTES:-10}
SAMPLE=${SAMPLE_SECONDS:-10}
IDLE=${IDLE_SECONDS:-60}
kv_scripts soak 100000000
cat > "$WORK/aggregate.sql" <<'SQL'
\set k random(1, 9900)
SELECT count(*), max(v) FROM soak_kv WHERE k BETWEEN :k AND :k + 100;
SQL
cat > "$WORK/function.sql" <<'SQL'
\set k random(1, 10000)
SELECT add1(k) FROM soak_kv WHERE k = :k;
SQL
SCRIPTS=(lookup aggregate insert function)
WEIGHTS=(4 2 2 2)

# Resident memory of PID and its children, in MB.
rss_mb() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo $((total / 1024))
}

for server in "$@"; do
  IFS=: read -r host port pid <<<"$server"
  kv_tables "$host" "$port" soak
  "$PSQL" -X -q -h "$host" -p "$port" -c "DROP FUNCTION IF EXISTS add1(bigint)" >/dev/null 2>&1 || true
  "$PSQL" -X -q -h "$host" -p "$port" -c "CREATE FUNCTION add1(bigint) RETURNS bigint LANGUAGE wasm AS '(module (func (export \"add1\") (param i64) (result i64) local.get 0 i64.const 1 i64.add))'" 2>/dev/null ||
    "$PSQL" -X -q -h "$host" -p "$port" -c "CREATE FUNCTION add1(bigint) RETURNS bigint LANGUAGE sql AS 'SELECT \$1 + 1'"

  log="$WORK/$port"
  mkdir -p "$log"
  rss="$log.rss"
  echo "0 $(rss_mb "$pid")" >"$rss"
  args=()
  for i in "${!SCRIPTS[@]}"; do
    args+=(-f "$WORK/${SCRIPTS[$i]}.sql@${WEIGHTS[$i]}")
  done
  start=$(date +%s)
  (cd "$log" && "$PGBENCH" -n -h "$host" -p "$port" "${args[@]}" -c "$CLIENTS" -j 2 \
    -T $((MINUTES * 60)) -M prepared --log >/dev/null 2>"$log.err") &
  bench=$!
  while kill -0 "$bench" 2>/dev/null; do
    sleep "$SAMPLE"
    echo "$(($(date +%s) - start)) $(rss_mb "$pid")" >>"$rss"
  done
  wait "$bench" || echo "$server: pgbench failed: $(tail -1 "$log.err")"
  sleep "$IDLE"
  echo "idle $(rss_mb "$pid")" >>"$rss"

  echo "== $server: $CLIENTS clients, $MINUTES minutes"
  # Per-transaction logs: client, transaction, latency (us), script, epoch
  # s. One line per minute: statements/s, then p50/p99 of each script.
  echo "minute stmt/s $(printf '%s(p50/p99 ms) ' "${SCRIPTS[@]}")"
  cat "$log"/pgbench_log.* |
    awk -v start="$start" -v minutes="$MINUTES" '
      int(($5 - start) / 60) < minutes { printf "%d %d %.3f\n", ($5 - start) / 60, $4, $3 / 1000.0 }' |
    sort -k1,1n -k2,2n -k3,3g |
    awk -v scripts="${#SCRIPTS[@]}" '
      function flush_script() { if (c > 0) cell[s] = sprintf("%.1f/%.1f", v[int(c * 0.5) + 1], v[int(c * 0.99) + 1]); c = 0 }
      function flush_minute(  i, line) {
        flush_script()
        if (m == "") return
        line = sprintf("%-6d %7.1f", m + 1, total / 60)
        for (i = 0; i < scripts; i++) line = line " " (i in cell ? cell[i] : "-")
        print line; total = 0; split("", cell)
      }
      BEGIN { m = "" }
      $1 != m { flush_minute(); m = $1; s = $2 }
      $2 != s { flush_script(); s = $2 }
      { v[++c] = $3; total++ }
      END { flush_minute() }'
  echo "RSS (MB) by second of the run, and idle after it:"
  tr '\n' ' ' <"$rss"
  echo
  grep -v '^progress' "$log.err" | grep -c . | xargs -I{} echo "pgbench error lines: {}"
done
