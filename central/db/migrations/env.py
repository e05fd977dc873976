"""Alembic environment for the central database (URL from the caller's config)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from central.db.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
connectable = config.attributes.get("connection")


def _run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=metadata)  # type: ignore[arg-type]
    with context.begin_transaction():
        context.run_migrations()


if connectable is not None:
    _run(connectable)
else:
    engine = create_engine(str(url))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
