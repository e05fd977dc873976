"""Ingest: MQTT → PostgreSQL with a shared subscription, PUBACK only after the commit.

route.py     pure: subscriptions, validation of each message (accepted / rejected)
store.py     one batch into PostgreSQL (idempotent writes, quarantine)
worker.py    the paho client and the writer (group commit, ack, backoff, SIGTERM)
tls.py       TLS and credentials for the broker connection
commands.py  ``traceway-central ingest``
"""
