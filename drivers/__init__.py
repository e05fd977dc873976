"""traceway drivers."""
