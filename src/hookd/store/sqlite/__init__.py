"""The SQLite adapter: hookd's embedded default (WAL, one writer thread, group commit)."""

from hookd.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
