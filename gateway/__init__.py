"""traceway: edge gateway for warehouse traceability."""

__version__ = "0.1.0"
