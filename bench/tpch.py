"""TPC-H through the wire: Quiver against DataFusion alone, DuckDB and PostgreSQL 15.

The data comes from tpchgen-cli (PyPI), Parquet files at scale factor SF (1 by
default); the 22 queries are bench/tpch/qNN.sql, with the specification's
validation parameters. Quiver (`quiver serve`, embedded: catalog, scheduler
and executor in one process) reads the files as external tables and answers
through the PostgreSQL protocol (psycopg); DataFusion alone (its Python
package, the same DataFusion version) reads the same files with Quiver's
number of partitions, and its answers are what Quiver's must match. DuckDB
reads the same files; PostgreSQL 15 (Debian's, started here) gets them loaded
with COPY, with primary keys, and a time limit per query.

Best of 3 runs per query (after one run that warms caches), except PostgreSQL:
one run after a warm-up, each stopped after PG_TIMEOUT seconds.

Usage: python bench/tpch.py QUIVER_BINARY [SF] [WORK_DIR]   (./dev bench runs it)
"""

import datetime
import decimal
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datafusion
import duckdb
import psycopg
import pyarrow.parquet as pq

RUNS = 3
PG_BIN = "/usr/lib/postgresql/15/bin"
PG_TIMEOUT = 60
QUERIES = sorted((Path(__file__).parent / "tpch").glob("q*.sql"))
TABLES = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]
KEYS = {
    "nation": "n_nationkey",
    "region": "r_regionkey",
    "part": "p_partkey",
    "supplier": "s_suppkey",
    "partsupp": "ps_partkey, ps_suppkey",
    "customer": "c_custkey",
    "orders": "o_orderkey",
    "lineitem": "l_orderkey, l_linenumber",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port, user, deadline=120):
    """A psycopg connection to a server that is starting."""
    until = time.time() + deadline
    while True:
        try:
            return psycopg.connect(
                f"host=127.0.0.1 port={port} user={user} dbname=postgres", autocommit=True
            )
        except psycopg.OperationalError:
            if time.time() > until:
                raise
            time.sleep(0.2)


def timed(run, runs=RUNS):
    """`run()` once to warm up, then the best of `runs` runs (ms) and the answer."""
    answer = run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = run()
        times.append((time.perf_counter() - started) * 1e3)
    return min(times), answer


def normal(value):
    """A value as comparable across engines: numbers as floats."""
    if isinstance(value, (decimal.Decimal, float, int)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime.datetime):
        return value.date() if value.time() == datetime.time() else value
    return value


def same(a, b):
    """Whether two answers (lists of tuples) agree, numbers to 1e-9 relative."""
    if len(a) != len(b):
        return False
    for row_a, row_b in zip(a, b):
        if len(row_a) != len(row_b):
            return False
        for x, y in zip(map(normal, row_a), map(normal, row_b)):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-6):
                    return False
            elif x != y:
                return False
    return True


def geomean(times):
    times = [t for t in times if t is not None]
    return math.exp(sum(map(math.log, times)) / len(times)) if times else None


def generate(sf, work):
    """The tables as Parquet (for Quiver, DataFusion, DuckDB) and CSV (for
    PostgreSQL's COPY): the directories of each."""
    made = []
    for form in ("parquet", "csv"):
        out = work / f"sf{sf}" / form
        if not (out / f"lineitem.{form}").exists():
            print(f"generating TPC-H SF{sf} ({form}) with tpchgen-cli ...", file=sys.stderr,
                  flush=True)
            subprocess.run(
                [Path(sys.executable).parent / "tpchgen-cli", form, "-s", str(sf),
                 f"--output-dir={out}"],
                check=True,
            )
        made.append(out)
    return made


def quiver_server(binary, parquet):
    """A `quiver serve` with the files as external tables: (process, connection, dir)."""
    data = tempfile.mkdtemp(prefix="quiver-tpch-")
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
         "--external-dir", str(parquet)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    con = connect(port, "postgres")
    for table in TABLES:
        con.execute(
            f"CREATE EXTERNAL TABLE {table} STORED AS PARQUET LOCATION '{parquet}/{table}.parquet'"
        )
    return server, con, data


def postgres_server(parquet, csv):
    """A PostgreSQL 15 holding the tables: (process, connection, dir)."""
    work = tempfile.mkdtemp(prefix="quiver-tpch-pg-")
    root = os.geteuid() == 0
    as_pg = (lambda args: ["runuser", "-u", "postgres", "--", *args]) if root else (lambda a: a)
    if root:
        shutil.chown(work, "postgres", "postgres")
    data = os.path.join(work, "data")
    subprocess.run(as_pg([f"{PG_BIN}/initdb", "--auth=trust", "--username=postgres",
                          "--encoding=UTF8", "--locale=C", "--no-sync", "-D", data]),
                   check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        as_pg([f"{PG_BIN}/postgres", "-D", data, "-p", str(port), "-k", work,
               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
               "-c", "shared_buffers=4GB", "-c", "work_mem=256MB",
               "-c", "max_parallel_workers_per_gather=2", "-c", "jit=off"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    con = connect(port, "postgres")
    kinds = {"int64": "bigint", "int32": "integer", "date32[day]": "date",
             "string": "text", "string_view": "text"}
    for table in TABLES:
        schema = pq.read_schema(parquet / f"{table}.parquet")
        columns = ", ".join(
            f"{f.name} {kinds.get(str(f.type), str(f.type).replace('decimal128', 'numeric'))}"
            for f in schema
        )
        con.execute(f"CREATE TABLE {table} ({columns})")
        con.execute(f"COPY {table} FROM '{csv}/{table}.csv' WITH (FORMAT csv, HEADER true)")
        con.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({KEYS[table]})")
        con.execute(f"ANALYZE {table}")
    con.execute(f"SET statement_timeout = '{PG_TIMEOUT}s'")
    return server, con, work


def main():
    binary = sys.argv[1]
    sf = sys.argv[2] if len(sys.argv) > 2 else "1"
    work = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.gettempdir()) / "quiver-tpch"
    parquet, csv = generate(sf, work)

    quiver, qcon, qdata = quiver_server(binary, parquet)
    partitions = int(qcon.execute("SHOW datafusion.execution.target_partitions").fetchone()[-1])
    config = datafusion.SessionConfig().with_target_partitions(partitions)
    df = datafusion.SessionContext(config)
    for table in TABLES:
        df.register_parquet(table, str(parquet / f"{table}.parquet"))
    duck = duckdb.connect()
    duck.execute("SET threads = 2")
    for table in TABLES:
        duck.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{parquet}/{table}.parquet')")
    print("loading PostgreSQL 15 ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    pg, pcon, pwork = postgres_server(parquet, csv)
    load = time.perf_counter() - started

    print(f"TPC-H SF{sf}, {partitions} partitions, best of {RUNS} runs after a warm-up "
          f"(PostgreSQL: one run, stopped after {PG_TIMEOUT} s; loaded in {load:.0f} s)\n")
    print("| query | Quiver (ms) | DataFusion (ms) | Quiver / DataFusion | same answer | "
          "DuckDB (ms) | PostgreSQL 15 (ms) |")
    print("|---|---:|---:|---:|:---:|---:|---:|")
    rows = []
    try:
        for path in QUERIES:
            sql = path.read_text()
            name = path.stem.upper()
            try:
                q_ms, q_answer = timed(lambda: qcon.execute(sql).fetchall())
            except psycopg.Error as error:
                q_ms, q_answer = None, f"error: {error}".splitlines()[0]
            d_ms, d_answer = timed(
                lambda: [tuple(r.values()) for r in df.sql(sql).to_arrow_table().to_pylist()]
            )
            k_ms, _ = timed(lambda: duck.execute(sql).fetchall())
            try:
                p_ms, _ = timed(lambda: pcon.execute(sql).fetchall(), runs=1)
            except psycopg.errors.QueryCanceled:
                p_ms = None
            agrees = q_ms is not None and same(q_answer, d_answer)
            rows.append((q_ms, d_ms, k_ms, p_ms, agrees))
            show = lambda ms: "—" if ms is None else f"{ms:,.0f}"
            ratio = "—" if q_ms is None else f"{q_ms / d_ms:.2f}x"
            mark = "yes" if agrees else (q_answer if q_ms is None else "NO")
            p_show = f"> {PG_TIMEOUT * 1000:,}" if p_ms is None else show(p_ms)
            print(f"| {name} | {show(q_ms)} | {show(d_ms)} | {ratio} | {mark} | {show(k_ms)} "
                  f"| {p_show} |", flush=True)
    finally:
        quiver.terminate()
        pg.terminate()
        quiver.wait()
        pg.wait()
        shutil.rmtree(qdata, ignore_errors=True)
        shutil.rmtree(pwork, ignore_errors=True)
    answered = [r for r in rows if r[0] is not None]
    q_geo = geomean([r[0] for r in answered])
    d_geo = geomean([r[1] for r in answered])
    k_geo = geomean([r[2] for r in answered])
    print(f"| geometric mean ({len(answered)} queries Quiver answered) | {q_geo:,.0f} | "
          f"{d_geo:,.0f} | {q_geo / d_geo:.2f}x | {sum(r[4] for r in rows)} of {len(rows)} "
          f"| {k_geo:,.0f} | |")
    if not all(r[4] for r in rows):
        sys.exit("Quiver's answers differ from DataFusion's")


if __name__ == "__main__":
    main()
