"""Alembic migrations of the gateway database (run automatically at start)."""
