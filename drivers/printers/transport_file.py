"""File/spool transport for demos: appends each job to a file; no status replies."""

from __future__ import annotations

from pathlib import Path

from drivers.printers.transport import TransportError


class FileTransport:
    """Appends ZPL to a file (or a spool device). One-way: the printer cannot be asked anything."""

    bidirectional = False

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self._open = False

    @property
    def is_open(self) -> bool:
        """True after open()."""
        return self._open

    def open(self) -> None:
        """Check the file can be written."""
        try:
            with self.path.open("ab"):
                pass
        except OSError as exc:
            raise TransportError(f"{self.name}: {exc.strerror}") from exc
        self._open = True

    def close(self) -> None:
        """Nothing to release."""
        self._open = False

    def write(self, data: bytes) -> None:
        """Append and flush to disk."""
        try:
            with self.path.open("ab") as f:
                f.write(data)
                f.flush()
        except OSError as exc:
            raise TransportError(f"{self.name}: {exc.strerror}") from exc

    def read(self, timeout: float) -> bytes:
        """A file never answers."""
        return b""
