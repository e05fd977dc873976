"""traceway drivers/scanners."""
