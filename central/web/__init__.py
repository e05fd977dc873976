"""The web UI: login, search, unit pages, the recall desk, expiring stock, the fleet."""
