"""PostgreSQL: tables (schema.py), migrations (Alembic) and connections (engine.py)."""
