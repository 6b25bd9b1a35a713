"""psycopg2, pg8000 and asyncpg: connect, parameters, COPY, error classes,
and asyncpg's binary protocol with its type introspection."""

import asyncio
import datetime
import io

import asyncpg
import pg8000.native
import psycopg2
import psycopg2.errors
import pytest

from conftest import DATABASE, HOST, PORT, USER, dsn


def test_psycopg2(table_name):
    conn = psycopg2.connect(dsn())
    try:
        cur = conn.cursor()
        cur.execute("SELECT version()")
        assert cur.fetchone()[0].startswith("PostgreSQL ")
        cur.execute(f"CREATE TABLE {table_name} (id BIGINT, name TEXT)")
        cur.executemany(
            f"INSERT INTO {table_name} VALUES (%s, %s)", [(i, f"n{i}") for i in range(10)]
        )
        conn.commit()
        cur.execute(f"SELECT name FROM {table_name} WHERE id = %s", (3,))
        assert cur.fetchone() == ("n3",)
        cur.copy_expert(f"COPY {table_name} FROM STDIN WITH (FORMAT csv)", io.StringIO("10,ten\n11,eleven\n"))
        conn.commit()
        out = io.StringIO()
        cur.copy_expert(f"COPY (SELECT count(*) FROM {table_name}) TO STDOUT", out)
        assert out.getvalue() == "12\n"
        with pytest.raises(psycopg2.errors.UndefinedTable):
            cur.execute("SELECT * FROM no_such_table")
        with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
            cur.execute("SELECT 1")
        conn.rollback()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    finally:
        conn.close()


def test_pg8000(table_name):
    conn = pg8000.native.Connection(USER, host=HOST, port=PORT, database=DATABASE)
    try:
        assert conn.run("SELECT version()")[0][0].startswith("PostgreSQL ")
        conn.run(f"CREATE TABLE {table_name} (id BIGINT, name TEXT)")
        for i in range(5):
            conn.run(f"INSERT INTO {table_name} VALUES (:id, :name)", id=i, name=f"n{i}")
        assert conn.run(f"SELECT name FROM {table_name} WHERE id = :id", id=2) == [["n2"]]
        assert conn.run("SELECT :a::bigint + :b::bigint", a=40, b=2) == [[42]]
        with pytest.raises(pg8000.native.DatabaseError) as raised:
            conn.run("SELECT * FROM no_such_table")
        assert raised.value.args[0]["C"] == "42P01"
        stream = io.StringIO()
        conn.run(f"COPY (SELECT id FROM {table_name} ORDER BY id) TO STDOUT", stream=stream)
        assert stream.getvalue() == "0\n1\n2\n3\n4\n"
    finally:
        conn.close()


def test_asyncpg(table_name):
    async def run():
        conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, database=DATABASE)
        try:
            assert (await conn.fetchval("SELECT version()")).startswith("PostgreSQL ")
            await conn.execute(f"CREATE TABLE {table_name} (id BIGINT, name TEXT, score DOUBLE PRECISION)")
            await conn.executemany(
                f"INSERT INTO {table_name} VALUES ($1, $2, $3)",
                [(i, f"n{i}", i * 1.5) for i in range(20)],
            )
            rows = await conn.fetch(f"SELECT id, name, score FROM {table_name} WHERE id < $1 ORDER BY id", 3)
            assert [tuple(r) for r in rows] == [(0, "n0", 0.0), (1, "n1", 1.5), (2, "n2", 3.0)]
            assert await conn.fetchval(f"SELECT count(*) FROM {table_name}") == 20
            # A table function's argument: asyncpg asks its type, and sends an int.
            assert await conn.fetchval("SELECT count(*) FROM generate_series(1, $1)", 7) == 7
            statement = await conn.prepare(f"SELECT name FROM {table_name} WHERE id = $1")
            assert await statement.fetchval(5) == "n5"
            with pytest.raises(asyncpg.exceptions.UndefinedTableError):
                await conn.fetch("SELECT * FROM no_such_table")
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table_name} VALUES (200, 'in tx', 0)")
            try:
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {table_name} VALUES (300, 'rolled back', 0)")
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            assert await conn.fetchval(f"SELECT count(*) FROM {table_name}") == 21
        finally:
            await conn.close()

    asyncio.run(run())


def test_asyncpg_arrays_and_binary_copy(table_name):
    async def run():
        conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, database=DATABASE)
        try:
            await conn.execute(
                f"CREATE TABLE {table_name} (id BIGINT, name TEXT, score DOUBLE PRECISION,"
                " day DATE, ok BOOLEAN)"
            )
            # Array types go through asyncpg's type introspection query,
            # which takes and returns oid[].
            assert await conn.fetchval("SELECT ARRAY[1, 2, 3]::bigint[]") == [1, 2, 3]
            assert await conn.fetchval("SELECT $1::text[]", ["a", None, "b"]) == ["a", None, "b"]
            assert await conn.fetchval("SELECT cardinality($1::int[])", [4, 5]) == 2
            # COPY in PostgreSQL's binary format, both ways.
            records = [
                (1, "copied", 2.5, datetime.date(2024, 2, 29), True),
                (2, None, None, None, None),
            ]
            await conn.copy_records_to_table(table_name, records=records)
            await conn.copy_records_to_table(table_name, records=[(3, "three")], columns=["id", "name"])
            rows = await conn.fetch(f"SELECT * FROM {table_name} ORDER BY id")
            assert [tuple(r) for r in rows] == records + [(3, "three", None, None, None)]
            out = io.BytesIO()
            await conn.copy_from_table(table_name, output=out, format="binary")
            assert out.getvalue().startswith(b"PGCOPY\n\xff\r\n\0")
            assert out.getvalue().endswith(b"\xff\xff")
        finally:
            await conn.close()

    asyncio.run(run())
