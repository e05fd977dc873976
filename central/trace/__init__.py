"""Answers: trace, recall, stock, expiring, gateways (one query plan each)."""
