"""The migrations build exactly the schema the code is written against, on both engines."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from roughy.adapters.store import SqlStore, migrate
from roughy.adapters.store.migrate import alembic_config
from roughy.adapters.store.tables import metadata

# Every test here reads the SQL schema itself.
pytestmark = pytest.mark.sql_only("migrations are the SQL store's")


def diff(store: SqlStore) -> list[object]:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, metadata))


def test_migrations_create_exactly_the_models_schema(store: SqlStore) -> None:
    assert diff(store) == []


def test_the_database_is_at_the_newest_revision_and_migrating_again_changes_nothing(store: SqlStore) -> None:
    head = ScriptDirectory.from_config(alembic_config(store.engine)).get_current_head()
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
    migrate(store.engine)  # a restart runs migrations again
    assert diff(store) == []


def test_the_uniqueness_rules_are_partial_unique_indexes(store: SqlStore) -> None:
    """One live render per signature and one charge per asset are the database's job."""
    insp = inspect(store.engine)
    renders = {i["name"]: i for i in insp.get_indexes("renders")}
    ledger = {i["name"]: i for i in insp.get_indexes("ledger_entries")}
    live = renders["uq_renders_live_signature"]
    charge = ledger["uq_ledger_one_charge_per_asset"]
    assert live["unique"] and live["column_names"] == ["signature"]
    assert charge["unique"] and charge["column_names"] == ["asset_id"]
    dialect = store.engine.dialect.name
    assert "failed" in str(live["dialect_options"][f"{dialect}_where"])
    assert "charge" in str(charge["dialect_options"][f"{dialect}_where"])
