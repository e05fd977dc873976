"""Offline preview of a ZPL label as PNG (zplkit, an optional extra: ``traceway[preview]``)."""

from __future__ import annotations

import re
from typing import Any

from drivers.printers.templates import SIZES, dots


class PreviewError(RuntimeError):
    """The label cannot be rendered offline (zplkit missing or the ZPL is not renderable)."""


def _zplkit() -> Any:
    try:
        import zplkit
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise PreviewError("label preview needs zplkit: pip install 'traceway[preview]'") from exc
    return zplkit


def render_labels(zpl: str, *, dpi: int, size: str) -> tuple[list[bytes], list[str]]:
    """Render every label (``^XA … ^XZ``) of ``zpl`` to PNG bytes; returns (pngs, warnings)."""
    zplkit = _zplkit()
    w, h = dots(SIZES[size][0], dpi), dots(SIZES[size][1], dpi)
    try:
        doc = zplkit.render(zpl, zplkit.Options(dpi=dpi, width=w, height=h))
    except ValueError as exc:
        raise PreviewError(f"cannot render: {exc}") from exc
    if not doc.labels:
        raise PreviewError("the ZPL holds no label")
    return [bytes(label.png()) for label in doc.labels], [str(x) for x in doc.warnings]


def render_png(zpl: str, *, dpi: int, size: str) -> tuple[bytes, list[str]]:
    """Render the first label of ``zpl`` to PNG bytes; returns (png, renderer warnings)."""
    pngs, warnings = render_labels(zpl, dpi=dpi, size=size)
    return pngs[0], warnings


_GLYPH = re.compile(r"unsupported embedded font glyph '(.)'")


def missing_glyph(error: PreviewError) -> str | None:
    """The character the offline renderer has no glyph for (the printer itself may have it)."""
    m = _GLYPH.search(str(error))
    return m.group(1) if m else None
