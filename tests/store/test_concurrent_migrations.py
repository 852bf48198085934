"""A fresh install starts the API replicas and the operator at once on an empty PostgreSQL:
every one of them migrates at start-up, and every one must come up."""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from roughy.adapters.store import make_engine, migrate
from tests.store.conftest import PG_ENV, PG_SKIP

pytestmark = pytest.mark.postgres


def test_concurrent_first_starts_all_migrate() -> None:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(PG_SKIP)
    schema = f"roughy_race_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engines = [make_engine(url, schema=schema) for _ in range(4)]
    barrier, errors = threading.Barrier(len(engines)), []

    def start(engine):  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            migrate(engine)
        except Exception as exc:  # collected: every start must succeed
            errors.append(exc)

    try:
        threads = [threading.Thread(target=start, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a start hung (concurrent migrations deadlocked)"
        assert errors == []
        with engines[0].connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        for engine in engines:
            engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
