"""Alembic migrations up and down, as a project runs them."""

import textwrap

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from conftest import url


@pytest.fixture(params=["psycopg2", "psycopg"])
def engine(request):
    engine = sa.create_engine(url(request.param))
    yield engine
    engine.dispose()


def migrations(directory, table):
    """An Alembic environment in `directory` with three revisions: a table
    with a generated key and an index, the table renamed, then a column
    added with a server default."""
    versions = directory / "versions"
    versions.mkdir(parents=True)
    (directory / "env.py").write_text(
        textwrap.dedent(
            """
            from alembic import context

            connection = context.config.attributes["connection"]
            context.configure(connection=connection, target_metadata=None)
            with context.begin_transaction():
                context.run_migrations()
            """
        )
    )
    (directory / "script.py.mako").write_text("")
    (versions / "a1_create.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from alembic import op

            revision = "a1"
            down_revision = None

            def upgrade():
                op.create_table(
                    "{table}",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.Text, nullable=False),
                )
                op.create_index("ix_{table}_name", "{table}", ["name"])
                op.bulk_insert(
                    sa.table("{table}", sa.column("name", sa.Text)),
                    [{{"name": "first"}}, {{"name": "second"}}],
                )

            def downgrade():
                op.drop_index("ix_{table}_name", table_name="{table}")
                op.drop_table("{table}")
            """
        )
    )
    (versions / "b2_rename.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from alembic import op

            revision = "b2"
            down_revision = "a1"

            def upgrade():
                op.rename_table("{table}", "{table}_v2")

            def downgrade():
                op.rename_table("{table}_v2", "{table}")
            """
        )
    )
    (versions / "c3_column.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from alembic import op

            revision = "c3"
            down_revision = "b2"

            def upgrade():
                op.add_column("{table}_v2", sa.Column("email", sa.Text, nullable=True))
                op.alter_column("{table}_v2", "email", server_default="none")

            def downgrade():
                op.drop_column("{table}_v2", "email")
            """
        )
    )
    # alter_column as autogenerate writes it: rename, NOT NULL, retype,
    # and a column the rows there are take a default for.
    (versions / "d4_alter.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from alembic import op

            revision = "d4"
            down_revision = "c3"

            def upgrade():
                op.alter_column("{table}_v2", "name", new_column_name="title", existing_type=sa.Text)
                op.alter_column("{table}_v2", "title", nullable=False, existing_type=sa.Text)
                op.alter_column("{table}_v2", "id", type_=sa.BigInteger, existing_type=sa.Integer)
                op.add_column(
                    "{table}_v2",
                    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
                )

            def downgrade():
                op.drop_column("{table}_v2", "active")
                op.alter_column("{table}_v2", "id", type_=sa.Integer, existing_type=sa.BigInteger)
                op.alter_column("{table}_v2", "title", nullable=True, existing_type=sa.Text)
                op.alter_column("{table}_v2", "title", new_column_name="name", existing_type=sa.Text)
            """
        )
    )


def test_upgrade_and_downgrade(engine, table_name, tmp_path):
    migrations(tmp_path, table_name)
    config = Config()
    config.set_main_option("script_location", str(tmp_path))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()
    inspector = sa.inspect(engine)
    assert inspector.has_table(f"{table_name}_v2")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT id, title, email, active FROM {table_name}_v2 ORDER BY id")
        ).all()
        assert [tuple(r) for r in rows] == [(1, "first", None, True), (2, "second", None, True)]
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "d4"
        # The key goes on counting.
        new_id = conn.execute(
            sa.text(f"INSERT INTO {table_name}_v2 (title) VALUES ('third') RETURNING id")
        ).scalar_one()
        assert new_id == 3
        email = conn.execute(
            sa.text(f"SELECT email FROM {table_name}_v2 WHERE id = 3")
        ).scalar_one()
        assert email == "none"
        conn.commit()
    columns = {
        c["name"]: (str(c["type"]), c["nullable"])
        for c in sa.inspect(engine).get_columns(f"{table_name}_v2")
    }
    assert columns == {
        "id": ("BIGINT", False),
        "title": ("TEXT", False),
        "email": ("TEXT", True),
        "active": ("BOOLEAN", False),
    }
    # One step down: the columns as they were, the rows kept.
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "c3")
        conn.commit()
    columns = [c["name"] for c in sa.inspect(engine).get_columns(f"{table_name}_v2")]
    assert columns == ["id", "name", "email"]
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, name FROM {table_name}_v2 ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "first"), (2, "second"), (3, "third")]
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
        conn.commit()
    inspector = sa.inspect(engine)
    assert not inspector.has_table(table_name)
    assert not inspector.has_table(f"{table_name}_v2")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 0
        conn.execute(sa.text("DROP TABLE alembic_version"))
        conn.commit()
