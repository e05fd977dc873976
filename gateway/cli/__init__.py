"""The ``traceway`` command line: one module per sub-command, :mod:`gateway.cli.main` dispatches."""

from gateway.cli.main import main

__all__ = ["main"]
