"""The benchmark's functions in other engines, on the same data and machine.

`quiver-bench` (bench/src/main.rs) times `sum(f(x))` over 10 M rows in Quiver;
this times the same functions where users write them elsewhere:

- DuckDB's Python UDFs (`create_function`): vectorized over Arrow arrays
  (`type="arrow"`, the body in pyarrow.compute) and one call per row
  (`type="native"`);
- PostgreSQL 15 (Debian's, started here in a temporary directory): a PL/pgSQL
  function and an SQL-language function (which PostgreSQL inlines into the
  query, so it is the native expression).

Each engine's native expression is timed beside its functions, so every
figure has its own "vs native". Best of 3 runs; two threads (DuckDB's
`threads`, PostgreSQL's parallel workers) on the project's two cores.

Usage: python bench/peers.py [ROWS]   (./dev bench installs duckdb and pyarrow)
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

RUNS = 3
WORDS = ["quiver", "arrow", "wasm", "datafusion", "ballista", "sandbox"]
PG_BIN = "/usr/lib/postgresql/15/bin"


def best(run):
    """The shortest of RUNS runs of `run()` in ms, and its answer."""
    times, answer = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        answer = run()
        times.append((time.perf_counter() - started) * 1e3)
    return min(times), answer


def report(engine, group, runner):
    """Times each (label, sql) of `group` with `runner(sql)`; prints rows."""
    native = None
    answers = []
    for label, sql in group:
        ms, answer = best(lambda: runner(sql))
        native = native or ms
        answers.append(answer)
        print(f"| {engine} | {label} | {ms:.1f} | {ms / native:.2f}x |", flush=True)
    if any(a != answers[0] for a in answers):
        sys.exit(f"{engine}: answers differ: {answers}")


def duckdb_runs(rows):
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(
        f"""CREATE TABLE t AS SELECT i AS x,
            list_extract({WORDS!r}, (i % {len(WORDS)})::INTEGER + 1) || ' ' || i AS s
            FROM range({rows}) r(i)"""
    )
    con.create_function(
        "mul2_add1_arrow",
        lambda x: pc.add(pc.multiply(x, 2), 1),
        [duckdb.sqltypes.BIGINT],
        duckdb.sqltypes.BIGINT,
        type="arrow",
    )
    con.create_function(
        "mul2_add1_py", lambda x: x * 2 + 1, [duckdb.sqltypes.BIGINT], duckdb.sqltypes.BIGINT
    )
    con.create_function(
        "upper_arrow", lambda s: pc.utf8_upper(s), [duckdb.sqltypes.VARCHAR], duckdb.sqltypes.VARCHAR, type="arrow"
    )
    con.create_function(
        "upper_py", lambda s: s.upper(), [duckdb.sqltypes.VARCHAR], duckdb.sqltypes.VARCHAR
    )

    def run(sql):
        return con.execute(sql).fetchall()

    report("DuckDB", [
        ("native: sum(x * 2 + 1)", "SELECT sum(x * 2 + 1) FROM t"),
        ("Python UDF, Arrow (pyarrow.compute)", "SELECT sum(mul2_add1_arrow(x)) FROM t"),
        ("Python UDF, one call per row", "SELECT sum(mul2_add1_py(x)) FROM t"),
    ], run)
    report("DuckDB", [
        ("native: sum(length(upper(s)))", "SELECT sum(length(upper(s))) FROM t"),
        ("Python UDF, Arrow (pyarrow.compute)", "SELECT sum(length(upper_arrow(s))) FROM t"),
        ("Python UDF, one call per row", "SELECT sum(length(upper_py(s))) FROM t"),
    ], run)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(args):
    """`args` run as the postgres user when this is root (PostgreSQL refuses root)."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def postgres_runs(rows):
    work = tempfile.mkdtemp(prefix="quiver-peers-pg-")
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    data = os.path.join(work, "data")
    subprocess.run(
        as_postgres([f"{PG_BIN}/initdb", "--auth=trust", "--username=postgres",
                     "--encoding=UTF8", "--locale=C", "--no-sync", "-D", data]),
        check=True, capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        as_postgres([f"{PG_BIN}/postgres", "-D", data, "-p", str(port), "-k", work,
                     "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                     "-c", "shared_buffers=2GB", "-c", "max_parallel_workers_per_gather=2",
                     "-c", "jit=off"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                con = psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                                      autocommit=True)
                break
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        words = "ARRAY[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
        con.execute(
            f"""CREATE TABLE t AS SELECT i::bigint AS x,
                ({words})[i % {len(WORDS)} + 1] || ' ' || i AS s
                FROM generate_series(0, {rows - 1}) i"""
        )
        con.execute("VACUUM ANALYZE t")
        con.execute("""CREATE FUNCTION mul2_add1_plpgsql(x bigint) RETURNS bigint
                       LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$ BEGIN RETURN x * 2 + 1; END $$""")
        con.execute("""CREATE FUNCTION mul2_add1_sql(x bigint) RETURNS bigint
                       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT x * 2 + 1 $$""")
        con.execute("""CREATE FUNCTION upper_plpgsql(s text) RETURNS text
                       LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$ BEGIN RETURN upper(s); END $$""")
        # Warm the table into shared buffers.
        con.execute("SELECT count(*) FROM t").fetchall()

        def run(sql):
            return [tuple(int(v) for v in row) for row in con.execute(sql).fetchall()]

        report("PostgreSQL 15", [
            ("native: sum(x * 2 + 1)", "SELECT sum(x * 2 + 1) FROM t"),
            ("SQL-language function (inlined)", "SELECT sum(mul2_add1_sql(x)) FROM t"),
            ("PL/pgSQL function", "SELECT sum(mul2_add1_plpgsql(x)) FROM t"),
        ], run)
        report("PostgreSQL 15", [
            ("native: sum(length(upper(s)))", "SELECT sum(length(upper(s))) FROM t"),
            ("PL/pgSQL function", "SELECT sum(length(upper_plpgsql(s))) FROM t"),
        ], run)
        con.close()
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    print(f"rows: {rows}, best of {RUNS} runs, 2 threads\n")
    print("| engine | query | time (ms) | vs its native |")
    print("|---|---|---:|---:|")
    duckdb_runs(rows)
    postgres_runs(rows)


if __name__ == "__main__":
    main()
