"""Run Alembic migrations programmatically (start-up, tests, the Helm hook Job).

On PostgreSQL several processes may start at once on an empty database (the API replicas and
the operator of a fresh install): the first to take a session-level advisory lock migrates,
the others wait for it and then find the schema at head. Without it two of them raced in
Alembic (`duplicate key ... alembic_version`) and one failed its start.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, select, text

MIGRATIONS = Path(__file__).parent / "migrations"
#: The advisory lock's key: any constant the database's other users do not take.
MIGRATION_LOCK = 0x726F756768790001  # "roughy" + 1
#: How long a start waits for another's migration before it gives up (and is restarted).
LOCK_WAIT = "10min"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    if engine.dialect.name != "postgresql":  # SQLite: one process owns the data directory
        command.upgrade(alembic_config(engine), revision)
        return
    # AUTOCOMMIT: the lock's session holds no transaction open while it waits or while the
    # migration runs (a server's idle_in_transaction_session_timeout would end it, and the lock).
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
        lock.execute(text(f"SET lock_timeout = '{LOCK_WAIT}'"))
        lock.execute(select(func.pg_advisory_lock(MIGRATION_LOCK)))
        try:
            command.upgrade(alembic_config(engine), revision)
        finally:
            lock.execute(select(func.pg_advisory_unlock(MIGRATION_LOCK)))
