"""The gateway's SQLite state: lot/serial cache, outbox, print jobs."""
