"""TPC-H from an object store: the same Parquet files read as external tables
from the local file system and through the S3 API; then loaded into managed
tables (`CREATE TABLE ... AS`) of a local data directory and of one in the
S3 server (`--data-dir s3://...`), and queried there.

The S3 server is s3s-fs (crates.io), a Rust implementation of the S3 REST
API that keeps objects as files on disk, behind bench/s3-server's listener
(which `./dev bench` builds; it sets TCP_NODELAY, which s3s-fs's own binary
does not: each response then waited ~40 ms for the client's delayed ACK). So
both runs read the same bytes from the same disk and the difference is what
the object-store path costs — HTTP requests, signing, ranged GETs instead of
`pread` — not a network's latency. A real S3 bucket in another building adds
round trips on top; moto (the tests' server) is too slow to measure with.

The files are uploaded through the S3 API (pyarrow's S3 client), not placed
in s3s-fs's directory: s3s-fs keeps the ETag an upload computes, and for a
file it did not receive it computes the MD5 of the whole object on every GET,
HEAD and listing — 231 MB hashed for each ranged read of lineitem, which made
the first figures 37-190x slower than local files.

Quiver runs embedded (`quiver serve`), one server per run; each of the 22
queries (bench/tpch/qNN.sql) runs once to warm up, then the best of 3 counts.
The answers of all runs must be the same. The managed runs also report how
long loading the eight tables took (once, not best of 3).

Usage: python bench/object_store.py QUIVER_BINARY S3_SERVER_BINARY PARQUET_DIR
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from tpch import QUERIES, TABLES, connect, free_port, geomean, same, timed  # noqa: E402

KEY = "quiver-bench"


def wait_for(port, deadline=60):
    until = time.time() + deadline
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > until:
                raise
            time.sleep(0.1)


def run(binary, location, allowed, env, data_url=None):
    """Times the queries on a server whose tables are at `location`, as
    external tables; with `data_url`, loaded first into managed tables of a
    data directory there (a local one if it is "local"). Returns the
    queries' times and answers, and the load's seconds."""
    data = tempfile.mkdtemp(prefix="quiver-objstore-")
    port = free_port()
    dirs = ["--data-dir", data]
    if data_url not in (None, "local"):
        dirs = ["--data-dir", data_url, "--catalog-dir", data]
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", *dirs, "--external-dir", allowed],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    try:
        con = connect(port, "postgres")
        source = "source_" if data_url else ""
        for table in TABLES:
            con.execute(
                f"CREATE EXTERNAL TABLE {source}{table} STORED AS PARQUET "
                f"LOCATION '{location}/{table}.parquet'"
            )
        load = None
        if data_url:
            started = time.time()
            for table in TABLES:
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM source_{table}")
            load = time.time() - started
            print(f"  loaded in {load:.1f} s", file=sys.stderr, flush=True)
        results = {}
        for query in QUERIES:
            sql = query.read_text()
            results[query.stem] = timed(lambda: con.execute(sql).fetchall())
            print(f"  {query.stem}: {results[query.stem][0]:8.1f} ms", file=sys.stderr, flush=True)
        return results, load
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)


def upload(port, bucket, parquet):
    """Puts the Parquet files into the bucket through the S3 API."""
    from pyarrow import fs

    s3 = fs.S3FileSystem(access_key=KEY, secret_key=KEY, region="us-east-1",
                         scheme="http", endpoint_override=f"127.0.0.1:{port}",
                         allow_bucket_creation=True)
    s3.create_dir(bucket)
    started = time.time()
    fs.copy_files(str(parquet), bucket, destination_filesystem=s3)
    print(f"uploaded {parquet} in {time.time() - started:.1f} s", file=sys.stderr)


def main():
    binary, s3_server, parquet = sys.argv[1], sys.argv[2], Path(sys.argv[3]).resolve()
    bucket = "tpch"
    root = tempfile.mkdtemp(prefix="quiver-s3s-", dir=parquet.parent)
    port = free_port()
    s3 = subprocess.Popen(
        [s3_server, f"127.0.0.1:{port}", root, KEY, KEY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port)
        upload(port, bucket, parquet)
        env = dict(os.environ, AWS_ENDPOINT=f"http://127.0.0.1:{port}", AWS_ALLOW_HTTP="true",
                   AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=KEY, AWS_REGION="us-east-1")
        print("external tables, local files:", file=sys.stderr)
        local, _ = run(binary, str(parquet), str(parquet), env)
        print("external tables, s3s-fs over loopback:", file=sys.stderr)
        remote, _ = run(binary, f"s3://{bucket}", f"s3://{bucket}", env)
        print("managed tables, local data directory:", file=sys.stderr)
        managed_local, load_local = run(binary, str(parquet), str(parquet), env, "local")
        print("managed tables, data directory in s3s-fs:", file=sys.stderr)
        managed_remote, load_remote = run(
            binary, str(parquet), str(parquet), env, f"s3://{bucket}/quiver-data")
    finally:
        s3.terminate()
        s3.wait()
        shutil.rmtree(root, ignore_errors=True)
    report("Parquet external tables", local, remote)
    report("managed tables (--data-dir)", managed_local, managed_remote)
    print(f"loading the managed tables (CREATE TABLE AS): local {load_local:.1f} s, "
          f"S3 API {load_remote:.1f} s")
    for name in local:
        assert same(local[name][1], managed_remote[name][1]), f"{name}: the answers differ"


def report(title, local, remote):
    print(f"\nTPC-H SF1 from {title}, best of 3 (ms)")
    print(f"{'query':6} {'local':>9} {'S3 API':>9} {'ratio':>6}")
    for name in local:
        (l_ms, l_rows), (r_ms, r_rows) = local[name], remote[name]
        assert same(l_rows, r_rows), f"{name}: the answers differ"
        print(f"{name:6} {l_ms:9.1f} {r_ms:9.1f} {r_ms / l_ms:6.2f}")
    l_geo = geomean([t for t, _ in local.values()])
    r_geo = geomean([t for t, _ in remote.values()])
    print(f"{'geomean':6} {l_geo:9.1f} {r_geo:9.1f} {r_geo / l_geo:6.2f}")


if __name__ == "__main__":
    main()
