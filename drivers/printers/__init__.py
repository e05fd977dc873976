"""traceway drivers/printers."""
