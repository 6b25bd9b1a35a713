"""SQLAlchemy 2 with the psycopg2 and psycopg dialects, and pandas on top."""

import pandas as pd
import pytest
import sqlalchemy as sa
import sqlalchemy.orm

from conftest import url


@pytest.fixture(params=["psycopg2", "psycopg"])
def engine(request):
    engine = sa.create_engine(url(request.param))
    yield engine
    engine.dispose()


def test_connect_and_text_queries(engine, table_name):
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table_name} (id BIGINT, name TEXT)"))
        conn.execute(
            sa.text(f"INSERT INTO {table_name} VALUES (:id, :name)"),
            [{"id": i, "name": f"n{i}"} for i in range(5)],
        )
    with engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT name FROM {table_name} WHERE id >= :low ORDER BY id"), {"low": 3})
        assert result.scalars().all() == ["n3", "n4"]


def test_inspect_and_reflect(engine, table_name):
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table_name} (id BIGINT NOT NULL, name TEXT, score DOUBLE PRECISION)"))
    inspector = sa.inspect(engine)
    assert table_name in inspector.get_table_names()
    columns = {c["name"]: c for c in inspector.get_columns(table_name)}
    assert list(columns) == ["id", "name", "score"]
    assert isinstance(columns["id"]["type"], sa.BigInteger)
    assert columns["id"]["nullable"] is False
    assert isinstance(columns["name"]["type"], sa.Text)
    metadata = sa.MetaData()
    metadata.reflect(engine, only=[table_name])
    table = metadata.tables[table_name]
    assert [c.name for c in table.columns] == ["id", "name", "score"]
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "name": "a", "score": 1.5}])
        assert conn.execute(sa.select(table.c.name).where(table.c.id == 1)).scalar_one() == "a"


def test_savepoints_are_accepted(engine, table_name):
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table_name} (id BIGINT)"))
    with engine.begin() as conn:
        with conn.begin_nested():
            conn.execute(sa.text(f"INSERT INTO {table_name} VALUES (1)"))
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {table_name}")).scalar_one() == 1


def test_pandas_round_trip(engine, table_name):
    # to_sql asks the inspector whether the table exists.
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "name": ["ada", "grace", None],
            "score": [9.5, 7.25, None],
            "seen": pd.to_datetime(["2024-01-02 03:04:05", "2024-02-03 04:05:06", None]),
        }
    )
    frame.to_sql(table_name, engine, index=False)
    back = pd.read_sql(f"SELECT * FROM {table_name} ORDER BY id", engine)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    # Replacing drops and recreates the table.
    frame.head(1).to_sql(table_name, engine, index=False, if_exists="replace")
    assert pd.read_sql(sa.text(f"SELECT count(*) AS n FROM {table_name}"), engine)["n"][0] == 1
    frame.to_sql(table_name, engine, index=False, if_exists="append")
    assert pd.read_sql_table(table_name, engine).shape == (4, 4)


def test_pandas_to_sql_with_its_defaults(engine, table_name):
    # With the index written, to_sql also creates an index on it, which
    # Quiver records as metadata.
    frame = pd.DataFrame({"name": ["ada", "grace"], "score": [9.5, 7.25]})
    frame.to_sql(table_name, engine)
    back = pd.read_sql(f"SELECT * FROM {table_name} ORDER BY index", engine, index_col="index")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_names=False)


def test_ddl_rolls_back_with_the_transaction(engine, table_name):
    # As Alembic runs a migration: DDL and rows in one transaction, which
    # a failure undoes whole, so that the retry starts from nothing.
    metadata = sa.MetaData()
    table = sa.Table(
        table_name,
        metadata,
        sa.Column("id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.Text, index=True),
    )
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(table.insert(), [{"id": 1, "name": "a"}])
            raise RuntimeError("the migration fails")
    assert not sa.inspect(engine).has_table(table_name)
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(table.insert(), [{"id": 1, "name": "a"}])
    with engine.connect() as conn:
        assert conn.execute(sa.select(table.c.name)).scalars().all() == ["a"]
    # A view, made and dropped in the same way.
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE VIEW {table_name}_v AS SELECT name FROM {table_name}"))
    assert f"{table_name}_v" in sa.inspect(engine).get_view_names()
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT name FROM {table_name}_v")).scalars().all() == ["a"]


def test_pandas_read_sql(engine, table_name):
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table_name} (id BIGINT, name TEXT, score DOUBLE PRECISION)"))
        conn.execute(sa.text(f"INSERT INTO {table_name} VALUES (1, 'ada', 9.5), (2, 'grace', NULL)"))
    frame = pd.read_sql(sa.text(f"SELECT * FROM {table_name} WHERE id >= :low ORDER BY id"), engine, params={"low": 1})
    assert list(frame.columns) == ["id", "name", "score"]
    assert frame["name"].tolist() == ["ada", "grace"]
    assert frame["score"].isna().tolist() == [False, True]


def test_orm_session_inserts_updates_and_deletes(engine, table_name):
    # Keys the application gives (Quiver has no generated keys yet). The
    # unit of work checks each UPDATE's and DELETE's row count.
    class Base(sa.orm.DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = table_name
        id = sa.orm.mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
        name = sa.orm.mapped_column(sa.Text)
        qty = sa.orm.mapped_column(sa.Integer)

    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table_name} (id BIGINT NOT NULL, name TEXT, qty INT)"))
    with sa.orm.Session(engine) as session:
        session.add_all([Item(id=1, name="bolt", qty=10), Item(id=2, name="nut", qty=5)])
        session.commit()
        nut = session.get(Item, 2)
        nut.qty = 50
        session.commit()
        session.delete(session.get(Item, 1))
        session.commit()
    with sa.orm.Session(engine) as session:
        rows = session.execute(sa.select(Item.id, Item.name, Item.qty).order_by(Item.id)).all()
        assert [tuple(r) for r in rows] == [(2, "nut", 50)]
        # Bulk statements, and RETURNING of what they changed.
        changed = session.execute(
            sa.update(Item).where(Item.qty > 10).values(qty=Item.qty + 1).returning(Item.id, Item.qty)
        ).all()
        assert [tuple(r) for r in changed] == [(2, 51)]
        inserted = session.execute(
            sa.insert(Item).values(id=3, name="washer", qty=1).returning(Item.name)
        ).scalar_one()
        assert inserted == "washer"
        deleted = session.execute(sa.delete(Item).where(Item.id == 2).returning(Item.name)).scalars().all()
        assert deleted == ["nut"]
        session.commit()
    with engine.connect() as conn:
        names = conn.execute(sa.text(f"SELECT name FROM {table_name}")).scalars().all()
        assert names == ["washer"]
        # An empty table afterwards, as dbt's seeds leave it.
        conn.execute(sa.text(f"TRUNCATE {table_name}"))
        conn.commit()
        assert conn.execute(sa.text(f"SELECT count(*) FROM {table_name}")).scalar_one() == 0


def test_orm_generated_keys(engine, table_name):
    # What SQLAlchemy's create_all makes of an integer primary key
    # (SERIAL) and of an Identity column, and the ORM filling in the keys
    # the database generated (INSERT ... RETURNING).
    class Base(sa.orm.DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = f"{table_name}_author"
        id = sa.orm.mapped_column(sa.Integer, primary_key=True)
        name = sa.orm.mapped_column(sa.Text, nullable=False)
        joined = sa.orm.mapped_column(sa.Text, server_default="unknown")

    class Book(Base):
        __tablename__ = f"{table_name}_book"
        id = sa.orm.mapped_column(sa.BigInteger, sa.Identity(start=100, increment=10), primary_key=True)
        title = sa.orm.mapped_column(sa.Text)

    Base.metadata.create_all(engine)
    try:
        with sa.orm.Session(engine) as session:
            ada, grace = Author(name="ada"), Author(name="grace")
            books = [Book(title="notes"), Book(title="compilers")]
            session.add_all([ada, grace, *books])
            session.commit()
            assert (ada.id, grace.id) == (1, 2)
            assert [b.id for b in books] == [100, 110]
            assert session.get(Author, 2).joined == "unknown"
        inspector = sa.inspect(engine)
        columns = {c["name"]: c for c in inspector.get_columns(Author.__tablename__)}
        assert columns["id"]["nullable"] is False
        with engine.connect() as conn:
            sequence = conn.execute(
                sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": Author.__tablename__}
            ).scalar_one()
            assert sequence == f"public.{Author.__tablename__}_id_seq"
            # A NULL for a NOT NULL column is PostgreSQL's not_null_violation.
            with pytest.raises(sa.exc.IntegrityError):
                conn.execute(sa.insert(Author.__table__).values(name=None))
    finally:
        Base.metadata.drop_all(engine)
    assert not sa.inspect(engine).has_table(Author.__tablename__)


def test_keys_reflected_kept_and_upserted(engine, table_name):
    # Primary and unique keys as SQLAlchemy reflects them, a duplicate key
    # as PostgreSQL's unique_violation, and the PostgreSQL dialect's upserts
    # (INSERT ... ON CONFLICT, with bound parameters).
    from sqlalchemy.dialects.postgresql import insert

    metadata = sa.MetaData()
    items = sa.Table(
        table_name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.Text, unique=True),
        sa.Column("qty", sa.Integer, nullable=False, server_default="0"),
    )
    metadata.create_all(engine)
    try:
        inspector = sa.inspect(engine)
        key = inspector.get_pk_constraint(table_name)
        assert (key["name"], key["constrained_columns"]) == (f"{table_name}_pkey", ["id"])
        unique = inspector.get_unique_constraints(table_name)
        assert [(u["name"], u["column_names"]) for u in unique] == [
            (f"{table_name}_code_key", ["code"])
        ]
        with engine.begin() as conn:
            conn.execute(sa.insert(items), [{"id": 1, "code": "a"}, {"id": 2, "code": "b"}])
        with pytest.raises(sa.exc.IntegrityError):
            with engine.begin() as conn:
                conn.execute(sa.insert(items).values(id=1, code="c"))
        with engine.begin() as conn:
            upsert = insert(items).values(id=1, code="a", qty=5)
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=["id"], set_={"qty": items.c.qty + upsert.excluded.qty}
                )
            )
            conn.execute(insert(items).values(id=2, code="z").on_conflict_do_nothing())
            conn.execute(insert(items).values(id=3, code="c").on_conflict_do_nothing())
            rows = conn.execute(sa.select(items).order_by(items.c.id)).all()
        assert [tuple(r) for r in rows] == [(1, "a", 5), (2, "b", 0), (3, "c", 0)]
    finally:
        metadata.drop_all(engine)


def test_orm_relationships_keep_their_foreign_keys(engine, table_name):
    # An ORM model with a relationship, as applications declare them:
    # create_all makes the foreign key, the session writes parents before
    # children, the key is reflected, and a parent still referenced cannot
    # be deleted (PostgreSQL's foreign_key_violation, an IntegrityError).
    class Base(sa.orm.DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = f"{table_name}_authors"
        id = sa.orm.mapped_column(sa.Integer, primary_key=True)
        name = sa.orm.mapped_column(sa.Text)
        books = sa.orm.relationship("Book", back_populates="author")

    class Book(Base):
        __tablename__ = f"{table_name}_books"
        id = sa.orm.mapped_column(sa.Integer, primary_key=True)
        title = sa.orm.mapped_column(sa.Text)
        author_id = sa.orm.mapped_column(sa.ForeignKey(f"{table_name}_authors.id"))
        author = sa.orm.relationship(Author, back_populates="books")

    Base.metadata.create_all(engine)
    try:
        keys = sa.inspect(engine).get_foreign_keys(f"{table_name}_books")
        assert [
            (k["name"], k["constrained_columns"], k["referred_table"], k["referred_columns"])
            for k in keys
        ] == [
            (f"{table_name}_books_author_id_fkey", ["author_id"], f"{table_name}_authors", ["id"])
        ]
        with sa.orm.Session(engine) as session:
            ann = Author(name="ann", books=[Book(title="a"), Book(title="b")])
            session.add(ann)
            session.commit()
            titles = session.scalars(
                sa.select(Book.title).join(Book.author).where(Author.name == "ann").order_by(Book.title)
            ).all()
            assert titles == ["a", "b"]
        with sa.orm.Session(engine) as session:
            session.add(Book(title="orphan", author_id=999))
            with pytest.raises(sa.exc.IntegrityError):
                session.commit()
        with sa.orm.Session(engine) as session:
            # Without cascade, the ORM sets the books' author_id to NULL
            # first: the delete then keeps the key.
            session.delete(session.scalars(sa.select(Author)).one())
            session.commit()
            assert session.scalars(sa.select(Book.author_id)).all() == [None, None]
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table_name}_authors VALUES (2, 'bob')"))
            conn.execute(sa.text(f"UPDATE {table_name}_books SET author_id = 2"))
        with pytest.raises(sa.exc.IntegrityError):
            with engine.begin() as conn:
                conn.execute(sa.text(f"DELETE FROM {table_name}_authors"))
    finally:
        Base.metadata.drop_all(engine)
    assert not sa.inspect(engine).has_table(f"{table_name}_authors")
