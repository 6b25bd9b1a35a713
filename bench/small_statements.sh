#!/usr/bin/env bash
# Small statements under concurrency: a point lookup and a small insert,
# driven by pgbench (PostgreSQL 15's) at 1, 8 and 64 clients, against any
# servers speaking the PostgreSQL protocol — Quiver and PostgreSQL side by
# side. Prints p50 and p99 latency (ms) and statements per second.
#
#   bench/small_statements.sh HOST:PORT [HOST:PORT ...]
#
# Each server gets a table `bench_kv` (10,000 rows, replaced) in the
# database the user connects to by default ($PGUSER, default postgres;
# $PGDATABASE). Runs for $SECONDS_PER_RUN seconds (default 20) per script
# and client count, with pgbench's protocol $MODE (default extended);
# $SCRIPTS (default "lookup insert") and $CLIENT_COUNTS (default "1 8 64")
# narrow the runs.
set -euo pipefail

. "$(dirname "$0")/pgbench_common.sh"
DURATION=${SECONDS_PER_RUN:-20}
# pgbench's protocol: extended (Parse, Bind, Describe, Execute for every
# statement) or prepared (Parse once per connection, as drivers do).
MODE=${MODE:-extended}
kv_scripts bench 1000000

for server in "$@"; do
  host=${server%:*}
  port=${server##*:}
  kv_tables "$host" "$port" bench
  for script in ${SCRIPTS:-lookup insert}; do
    for clients in ${CLIENT_COUNTS:-1 8 64}; do
      log="$WORK/$port-$script-$clients"
      mkdir -p "$log"
      (cd "$log" && "$PGBENCH" -n -h "$host" -p "$port" -f "$WORK/$script.sql" \
        -c "$clients" -j 2 -T "$DURATION" -M "$MODE" --log >/dev/null 2>"$log.err") ||
        { echo "$server $script $clients clients: pgbench failed: $(tail -1 "$log.err")"; continue; }
      # Per-transaction logs: column 3 is the latency in microseconds.
      cat "$log"/pgbench_log.* | awk '{ print $3 / 1000.0 }' | sort -n |
        awk -v s="$server" -v n="$script" -v c="$clients" -v d="$DURATION" '
          { lat[NR] = $1 }
          END {
            printf "%-22s %-7s %3d clients: p50 %8.2f ms  p99 %8.2f ms  %8.1f stmt/s\n",
              s, n, c, lat[int(NR * 0.50) + 1], lat[int(NR * 0.99) + 1], NR / d
          }'
    done
  done
done
