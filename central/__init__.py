"""traceway central: every gateway's events in PostgreSQL, trace and recall, recalls back.

Layout (by domain, each with its models, service and views):

    config.py          TOML config validated by pydantic (errors name file and key)
    db/                SQLAlchemy Core tables, Alembic migrations, connection helpers
    custody/           projection of events into current state and lineage (pure + SQL)
    ingest/            MQTT → PostgreSQL (shared subscription, ack after commit)
    trace/             trace, recall, stock, expiring, gateways (one query plan each)
    masterdata/        products, lots, serials, despatch advices; holds and recalls
    api/               REST JSON API (tokens, roles, audit)
    cli.py             ``traceway-central``

``central`` imports ``gs1`` and ``mqtt_topics``, never ``gateway``.
"""

__version__ = "0.1.0"
