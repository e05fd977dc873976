"""A private PostgreSQL per test session (or TRACEWAY_TEST_DATABASE_URL), a fresh schema per test."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("psycopg")

from sqlalchemy import Engine, create_engine, text

from central.db.cluster import PrivateCluster
from central.db.engine import migrate


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a database on a private cluster started for this session."""
    env = os.environ.get("TRACEWAY_TEST_DATABASE_URL")
    if env:
        yield env.replace("postgresql://", "postgresql+psycopg://", 1)
        return
    with tempfile.TemporaryDirectory(prefix="traceway-pg-") as tmp:
        os.chmod(tmp, 0o755)
        cluster = PrivateCluster(Path(tmp) / "data")
        cluster.start()
        try:
            yield cluster.url
        finally:
            cluster.stop()


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    """A freshly migrated, empty database of its own (created and dropped per test)."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    eng = create_engine(url)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
