"""psycopg 3: both protocols, prepared statements, binary, pipelines, COPY,
type lookup, error classes, transactions."""

import datetime
import decimal

import psycopg
import pytest
from psycopg import errors
from psycopg.types import TypeInfo

from conftest import dsn


@pytest.fixture
def conn():
    with psycopg.connect(dsn(), autocommit=True) as conn:
        yield conn


def test_server_identifies_as_postgresql(conn):
    version = conn.execute("SELECT version()").fetchone()[0]
    assert version.startswith("PostgreSQL ")
    assert conn.info.server_version >= 140000
    assert conn.execute("SELECT current_setting('server_version_num')").fetchone()[0]


def test_simple_and_extended_protocol(conn):
    # ClientCursor binds parameters client-side and sends simple queries.
    with psycopg.ClientCursor(conn) as cur:
        cur.execute("SELECT %s::bigint + 1, %s::text", (41, "x"))
        assert cur.fetchone() == (42, "x")
    # The default cursor sends Parse/Bind/Execute with parameters.
    row = conn.execute("SELECT %s::bigint * 2, %s::text || 'b'", (21, "a")).fetchone()
    assert row == (42, "ab")


def test_server_side_prepared_statements(conn, table_name):
    conn.execute(f"CREATE TABLE {table_name} (id BIGINT, name TEXT)")
    for i in range(6):
        conn.execute(f"INSERT INTO {table_name} VALUES (%s, %s)", (i, f"n{i}"), prepare=True)
    with conn.cursor() as cur:
        for i in range(3):
            cur.execute(f"SELECT name FROM {table_name} WHERE id = %s", (i,), prepare=True)
            assert cur.fetchone() == (f"n{i}",)


def test_parameters_among_table_function_arguments(conn):
    # psycopg sends values as parameters, a table function's arguments too.
    rows = conn.execute(
        "SELECT x FROM generate_series(1, %s) AS g(x) WHERE x > %s ORDER BY x", (5, 2)
    ).fetchall()
    assert rows == [(3,), (4,), (5,)]
    # A str goes untyped: the function's argument makes it a number.
    assert conn.execute("SELECT count(*) FROM generate_series(1, %s)", ("4",)).fetchone() == (4,)
    with conn.cursor() as cur:
        for n in (2, 3):
            cur.execute("SELECT count(*) FROM generate_series(%s, 10)", (n,), prepare=True)
            assert cur.fetchone() == (11 - n,)


def test_binary_parameters_and_results(conn):
    with conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT %b::bigint, %b::double precision, %b::text, %b::boolean, %b::date, %b::numeric",
            (7, 2.5, "héllo", True, datetime.date(2024, 2, 29), decimal.Decimal("12.34")),
        )
        assert cur.fetchone() == (
            7,
            2.5,
            "héllo",
            True,
            datetime.date(2024, 2, 29),
            decimal.Decimal("12.34"),
        )


def test_result_types_are_those_of_the_rows(conn, table_name):
    # Described types are the types the rows are sent in: an integer literal
    # is int4, and a UNION of int4 and int8 columns is int8 (it used to be
    # described as int4 while int8 values were sent, garbling binary results).
    conn.execute(f"CREATE TABLE {table_name} (a INT, b BIGINT)")
    conn.execute(f"INSERT INTO {table_name} VALUES (1, 5000000000)")
    union = f"SELECT a FROM {table_name} UNION ALL SELECT b FROM {table_name}"
    for binary in (False, True):
        with conn.cursor(binary=binary) as cur:
            cur.execute(union)
            assert cur.description[0].type_code == 20
            assert sorted(cur.fetchall()) == [(1,), (5000000000,)]
            cur.execute("SELECT 1, 5000000000, %s::int + 1", (41,))
            assert [c.type_code for c in cur.description] == [23, 20, 23]
            assert cur.fetchone() == (1, 5000000000, 42)


def test_array_parameters(conn, table_name):
    conn.execute(f"CREATE TABLE {table_name} (id BIGINT, name TEXT)")
    conn.execute(f"INSERT INTO {table_name} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    query = f"SELECT name FROM {table_name} WHERE id = ANY(%s) ORDER BY id"
    for binary in (False, True):
        with conn.cursor(binary=binary) as cur:
            assert cur.execute(query, ([1, 3],)).fetchall() == [("a",), ("c",)]
            cur.execute(
                "SELECT %s::text[], flatten(%s::bigint[][])", (["x", None, 'q"u,o'], [[1, 2], [3, 4]])
            )
            assert cur.fetchone() == (["x", None, 'q"u,o'], [1, 2, 3, 4])
            cur.execute("SELECT cardinality(%s::int[])", ([],))
            assert cur.fetchone() == (0,)


def test_executemany_pipeline(conn, table_name):
    conn.execute(f"CREATE TABLE {table_name} (id BIGINT, name TEXT)")
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {table_name} VALUES (%s, %s)",
            [(i, f"row {i}") for i in range(50)],
        )
    with conn.pipeline():
        for i in range(50, 60):
            conn.execute(f"INSERT INTO {table_name} VALUES (%s, %s)", (i, f"row {i}"))
    assert conn.execute(f"SELECT count(*), sum(id) FROM {table_name}").fetchone() == (60, 1770)


def test_copy_in_and_out(conn, table_name):
    conn.execute(f"CREATE TABLE {table_name} (id BIGINT, name TEXT, score DOUBLE PRECISION)")
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table_name} (id, name, score) FROM STDIN") as copy:
            for i in range(100):
                copy.write_row((i, f"name {i}", i / 4))
            copy.write_row((100, None, None))
        assert conn.execute(f"SELECT count(*), count(name) FROM {table_name}").fetchone() == (101, 100)
        rows = []
        with cur.copy(f"COPY (SELECT id, name FROM {table_name} WHERE id < 3 ORDER BY id) TO STDOUT") as copy:
            for row in copy.rows():
                rows.append(row)
        assert rows == [("0", "name 0"), ("1", "name 1"), ("2", "name 2")]


def test_binary_copy(conn, table_name):
    conn.execute(f"CREATE TABLE {table_name} (id BIGINT, name TEXT, day DATE)")
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table_name} FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "date"])
            copy.write_row((1, "a", datetime.date(2024, 1, 2)))
            copy.write_row((2, None, None))
        with cur.copy(f"COPY {table_name} TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "date"])
            assert sorted(copy.rows()) == [(1, "a", datetime.date(2024, 1, 2)), (2, None, None)]
        # Not the binary format: refused with 22P04, and nothing is appended.
        with pytest.raises(errors.BadCopyFileFormat, match="signature"):
            with cur.copy(f"COPY {table_name} FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(b"1\ta\t2024-01-02\n" * 4)
        # A row cut short is refused too.
        with pytest.raises(errors.BadCopyFileFormat, match="unexpected EOF"):
            with cur.copy(f"COPY {table_name} FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(b"PGCOPY\n\xff\r\n\0" + bytes(8) + b"\0\x03\0\0\0\x08\0")
    assert conn.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (2,)


def test_type_info_fetch(conn):
    info = TypeInfo.fetch(conn, "int8")
    assert info is not None and info.oid == 20
    text = TypeInfo.fetch(conn, "text")
    assert text is not None and text.array_oid == 1009


def test_error_classes(conn):
    with pytest.raises(errors.UndefinedTable):
        conn.execute("SELECT * FROM no_such_table")
    with pytest.raises(errors.SyntaxError):
        conn.execute("SELEC 1")
    with pytest.raises(errors.UndefinedColumn):
        conn.execute("SELECT no_such_column FROM (SELECT 1 AS a) s")
    with pytest.raises(errors.DivisionByZero):
        conn.execute("SELECT 1 / 0")
    with pytest.raises(errors.UndefinedFunction):
        conn.execute("SELECT no_such_function(1)")
    with pytest.raises(errors.NumericValueOutOfRange):
        conn.execute("SELECT %s::bigint * 2", (2**62,))
    # The connection is fine afterwards.
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_transactions(table_name):
    with psycopg.connect(dsn()) as conn:
        conn.execute(f"CREATE TABLE {table_name} (id BIGINT)")
        conn.commit()
        conn.execute(f"INSERT INTO {table_name} VALUES (1)")
        conn.rollback()
        assert conn.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (0,)
        conn.rollback()
        with pytest.raises(errors.InFailedSqlTransaction):
            with conn.transaction():
                conn.execute(f"INSERT INTO {table_name} VALUES (2)")
                with pytest.raises(errors.UndefinedTable):
                    conn.execute("SELECT * FROM missing")
                conn.execute("SELECT 1")
        assert conn.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (0,)
        with conn.transaction():
            conn.execute(f"INSERT INTO {table_name} VALUES (3)")
        assert conn.execute(f"SELECT count(*) FROM {table_name}").fetchone() == (1,)
        conn.commit()
