"""Sessionizing clicks: a Wasm transform against SQL's window functions and PySpark.

ROWS clicks (10 M by default) of ROWS / 100 users over 30 days, as Parquet
files; a click starts a new session of its user after more than 30 minutes
without one. Computed three ways, each reduced to the number of rows and the
sum of the session numbers (which must agree):

1. Quiver (`quiver serve`, embedded), the example transform
   `sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, 1800)`
   (examples/rust/transforms): Ballista shuffles the clicks by user, sorts
   each partition, and streams it through the component.
2. Quiver, the same logic in SQL: `lag(ts)` and a running `sum` over windows
   partitioned by user, ordered by time.
3. PySpark (local[2]: two cores, as Quiver has here): `groupBy("user_id")
   .applyInArrow(...)`, each user's clicks as an Arrow table, sessionized with
   numpy.

Best of RUNS runs each, after one that warms caches.

Usage: python bench/sessionize.py QUIVER_BINARY GUEST_DIR [ROWS] [WORK_DIR]
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

RUNS = 3
GAP = 1800
FILES = 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port, deadline=120):
    end = time.time() + deadline
    while True:
        try:
            return psycopg.connect(host="127.0.0.1", port=port, user="postgres", autocommit=True)
        except psycopg.OperationalError:
            if time.time() > end:
                raise
            time.sleep(0.2)


def clicks(rows, out):
    """ROWS clicks in FILES Parquet files under `out`: (user_id, ts, page)."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    users = max(1, rows // 100)
    start = np.datetime64("2026-11-01T00:00:00", "us")
    per_file = -(-rows // FILES)
    for f in range(FILES):
        n = min(per_file, rows - f * per_file)
        seconds = rng.integers(0, 30 * 24 * 3600, n)
        table = pa.table({
            "user_id": rng.integers(0, users, n, dtype=np.int64),
            "ts": pa.array(start + seconds.astype("timedelta64[s]"), pa.timestamp("us")),
            "page": rng.integers(0, 1000, n, dtype=np.int32),
        })
        pq.write_table(table, out / f"part-{f}.parquet")


def best(run):
    """Best of RUNS timed runs of `run` after one warm-up: (seconds, answer)."""
    answer = run()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        again = run()
        times.append(time.perf_counter() - started)
        assert again == answer, (again, answer)
    return min(times), answer


TRANSFORM = f"SELECT count(*), sum(session) FROM sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, {GAP})"
WINDOWS = f"""
WITH w AS (SELECT user_id, ts, lag(ts) OVER (PARTITION BY user_id ORDER BY ts) AS prev FROM clicks)
SELECT count(*), sum(s) FROM (
  SELECT sum(CASE WHEN prev IS NOT NULL AND ts - prev > INTERVAL '{GAP} seconds' THEN 1 ELSE 0 END)
    OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) + 1 AS s FROM w) x
"""


def quiver(binary, guests, data_dir):
    data = tempfile.mkdtemp(prefix="quiver-sessionize-")
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
         "--external-dir", str(data_dir), "--function-dir", str(guests)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        con = connect(port)
        con.execute(f"CREATE EXTERNAL TABLE clicks STORED AS PARQUET LOCATION '{data_dir}/clicks'")
        con.execute("CREATE FUNCTION sessionize(TABLE, bigint) RETURNS TABLE LANGUAGE wasm "
                    "AS 'quiver_example_transforms.wasm', 'sessionize'")
        query = lambda sql: tuple(int(v) for v in con.execute(sql).fetchone())  # noqa: E731
        return best(lambda: query(TRANSFORM)), best(lambda: query(WINDOWS))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)


def sessionize_arrow(table):
    """One user's clicks, sessionized: numpy over the Arrow table."""
    ts = table.column("ts").to_numpy().astype("int64")
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    starts = np.concatenate([[0], (np.diff(ts) > GAP * 1_000_000).astype(np.int64)])
    session = np.cumsum(starts) + 1
    return pa.table({
        "user_id": table.column("user_id").take(pa.array(order)),
        "ts": table.column("ts").take(pa.array(order)),
        "session": pa.array(session, pa.int64()),
    })


def spark(data_dir):
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    # Spark's Python workers run this interpreter (numpy, pyarrow).
    os.environ["PYSPARK_PYTHON"] = sys.executable

    session = (SparkSession.builder.master("local[2]").appName("sessionize")
               .config("spark.driver.memory", "6g")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    try:
        frame = session.read.parquet(str(data_dir / "clicks"))

        def run():
            out = frame.groupBy("user_id").applyInArrow(
                sessionize_arrow, "user_id long, ts timestamp_ntz, session long")
            row = out.agg(F.count("*"), F.sum("session")).collect()[0]
            return (int(row[0]), int(row[1]))

        return best(run)
    finally:
        session.stop()


def main():
    binary, guests = sys.argv[1], Path(sys.argv[2]).resolve()
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000_000
    work = Path(sys.argv[4]) if len(sys.argv) > 4 else Path(tempfile.mkdtemp(prefix="sessionize-"))
    data_dir = work.resolve()
    started = time.perf_counter()
    clicks(rows, data_dir / "clicks")
    print(f"{rows:,} clicks of {max(1, rows // 100):,} users in {FILES} Parquet files "
          f"({time.perf_counter() - started:.1f} s to write)\n")
    (transform, answer), (windows, windows_answer) = quiver(binary, guests, data_dir)
    spark_time, spark_answer = spark(data_dir)
    assert answer == windows_answer == spark_answer, (answer, windows_answer, spark_answer)
    print(f"rows {answer[0]:,}, sum of session numbers {answer[1]:,} (all three agree)\n")
    print("| engine | query | best of 3 | rows/s |")
    print("|---|---|---:|---:|")
    for engine, what, seconds in [
        ("Quiver", "Wasm transform `sessionize` (Rust)", transform),
        ("Quiver", "SQL: `lag` + running `sum` windows", windows),
        ("PySpark 4.0 local[2]", "`applyInArrow` (numpy per user)", spark_time),
    ]:
        print(f"| {engine} | {what} | {seconds:.2f} s | {rows / seconds / 1e6:.2f} M |")


if __name__ == "__main__":
    main()
