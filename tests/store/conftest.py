"""A migrated SqlStore on SQLite (a file) and on PostgreSQL (a fresh schema per test).

The PostgreSQL tier reads ROUGHY_TEST_DATABASE_URL and skips, saying so, when it is unset.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from roughy.adapters.store import SqlStore, make_engine, migrate
from roughy.testing import MemoryStore

PG_ENV = "ROUGHY_TEST_DATABASE_URL"
PG_SKIP = f"{PG_ENV} is not set; the PostgreSQL tier runs in CI (.ci/run sets it)"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """What every runtime does at start-up (engine, migrations to head, store), on both engines;
    and the in-memory fake (roughy.testing.MemoryStore), held to the same contract. A test that
    looks at the SQL itself is marked `sql_only` and skips on the fake."""
    if request.param == "memory":
        marker = request.node.get_closest_marker("sql_only")
        if marker is not None:
            pytest.skip(f"SQL stores only ({marker.args[0]}); it runs as this test's sqlite and postgres cases")
        yield MemoryStore()  # type: ignore[misc]
        return
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'roughy.db'}")
        migrate(engine)
        yield SqlStore(engine)
        engine.dispose()
        return

    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(PG_SKIP)
    with postgres_store(url) as pg:
        yield pg


@contextlib.contextmanager
def postgres_store(url: str, prefix: str = "roughy_test") -> Iterator[SqlStore]:
    """A migrated store in a fresh schema of the PostgreSQL at `url`, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, schema=schema)
    try:
        migrate(engine)
        yield SqlStore(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sql_only(reason): the test reads the SQL store's tables")
