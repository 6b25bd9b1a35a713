"""Fixtures for the Python client suite.

The suite runs against a Quiver server someone else started (the Rust test
`tests/e2e/clients.rs` starts a fresh `quiver serve` and runs pytest with
QUIVER_HOST and QUIVER_PORT set); functions are read from the server's
--function-dir, which holds the example components.
"""

import os
import uuid

import pytest

HOST = os.environ.get("QUIVER_HOST", "127.0.0.1")
PORT = int(os.environ.get("QUIVER_PORT", "5433"))
USER = "quiver"
DATABASE = "quiver"
EXAMPLES = "quiver_example_functions.wasm"


def dsn() -> str:
    return f"host={HOST} port={PORT} user={USER} dbname={DATABASE}"


def url(driver: str) -> str:
    return f"postgresql+{driver}://{USER}@{HOST}:{PORT}/{DATABASE}"


@pytest.fixture
def table_name() -> str:
    """A fresh table name, so tests never see each other's tables."""
    return f"t_{uuid.uuid4().hex[:12]}"
