"""The PostgreSQL adapter: many API and worker processes on one database (asyncpg)."""

from hookd.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
