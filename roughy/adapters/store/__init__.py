"""The SQL store and its migrations."""

from roughy.adapters.store.migrate import migrate
from roughy.adapters.store.sql import SqlStore, make_engine

__all__ = ["SqlStore", "make_engine", "migrate", "open_store"]


def open_store(url: str) -> SqlStore:
    """Engine, migrations to head, store: what every runtime does at start-up."""
    engine = make_engine(url)
    migrate(engine)
    return SqlStore(engine)
