"""Projection of events into current state (where is every unit now) and lineage."""
