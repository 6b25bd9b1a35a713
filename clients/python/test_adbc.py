"""ADBC's PostgreSQL driver (what Polars' engine="adbc" and pandas use with
it): connect (it reads pg_type), query to Arrow, bind parameters, and ingest
Arrow tables by binary COPY."""

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa

from conftest import DATABASE, HOST, PORT, USER


def connect():
    return adbc.connect(f"postgresql://{USER}@{HOST}:{PORT}/{DATABASE}")


def test_query_to_arrow_with_parameters():
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1::bigint AS x, 'a' AS y")
        table = cur.fetch_arrow_table()
        assert table.to_pylist() == [{"x": 1, "y": "a"}]
        cur.execute("SELECT $1::bigint + 1 AS n", parameters=(41,))
        assert cur.fetchall() == [(42,)]


def test_ingest_creates_and_appends(table_name):
    rows = pa.table({"id": [1, 2, 3], "name": ["a", None, "c"], "score": [1.5, 2.5, None]})
    with connect() as conn, conn.cursor() as cur:
        assert cur.adbc_ingest(table_name, rows, mode="create") == 3
        conn.commit()
        assert cur.adbc_ingest(table_name, rows, mode="append") == 3
        conn.commit()
        cur.execute(f"SELECT id, name, score FROM {table_name} WHERE id = $1", parameters=(2,))
        assert cur.fetchall() == [(2, None, 2.5), (2, None, 2.5)]
        cur.execute(f"SELECT * FROM {table_name} ORDER BY id, name")
        back = cur.fetch_arrow_table()
        assert back.column_names == ["id", "name", "score"]
        assert back.num_rows == 6
