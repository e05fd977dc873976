"""ZPL building blocks: safe text field data and GS1 barcode encodation.

Pure functions, no I/O. Text goes through ``^FH\\`` hex escapes so field data can
never become a command; GS1 data is validated (see :mod:`gs1.encode`)
and encoded with FNC1 in the right places for ``^BC`` (GS1-128) and ``^BX``
(GS1 DataMatrix with ``_`` as the escape character).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gs1.encode import Element, EncodeError

#: The escape character given to ``^BX`` (7th parameter). Never used with ``^FH``.
DM_ESCAPE = "_"
#: The ``^FH`` indicator used for text fields.
FH_INDICATOR = "\\"

_SAFE_TEXT = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"^", "~", "\\"}


def escape_text(value: str) -> str:
    """Hex-escape text for a ``^FH\\`` field: ``^ ~ \\``, controls and non-ASCII become ``\\hh``.

    Non-ASCII characters are escaped as their UTF-8 bytes (the label uses ``^CI28``),
    so the resulting ZPL is plain printable ASCII.
    """
    out: list[str] = []
    for ch in value:
        if ch in _SAFE_TEXT:
            out.append(ch)
        else:
            out.extend(f"\\{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def text_field(value: str, *, block: bool = False) -> str:
    """``^FH\\^FD…^FS`` body (without ``^FS``) for a text field.

    In a field block (``^FB``) the printer reads ``\\`` as its own escape (``\\&`` is a
    line break, ``\\\\`` a backslash), so a backslash in the data is sent doubled there.
    """
    data = escape_text(value)
    if block:
        data = data.replace("\\5C", "\\5C\\5C")
    return f"^FH{FH_INDICATOR}^FD{data}"


@dataclass(frozen=True, slots=True)
class Code128:
    """Zebra ``^BC`` field data and the symbol size in modules (quiet zones excluded)."""

    data: str
    codewords: int  # data codewords, without start, check and stop

    @property
    def modules(self) -> int:
        """Width of the symbol in modules: start + data + check (11 each) + stop (13)."""
        return (self.codewords + 2) * 11 + 13


_FNC1 = None  # token for FNC1 in the token list


def _tokens(elements: Sequence[Element]) -> list[str | None]:
    toks: list[str | None] = [_FNC1]
    for i, e in enumerate(elements):
        toks.extend(e.ai + e.value)
        if not e.fixed and i < len(elements) - 1:
            toks.append(_FNC1)
    return toks


def _digit_run(toks: Sequence[str | None], i: int) -> int:
    n = 0
    while i + n < len(toks):
        t = toks[i + n]
        if t is None or not ("0" <= t <= "9"):
            break
        n += 1
    return n


def _b_char(ch: str) -> str:
    # In ^BC subset B, '>' starts an invocation code; a literal '>' is '>0'.
    return ">0" if ch == ">" else ch


def gs1_128(elements: Sequence[Element]) -> Code128:
    """``^BC`` field data for a GS1-128 symbol: ``>;``/``>:`` start, ``>8`` FNC1, ``>6``/``>5`` shifts."""
    if not elements:
        raise EncodeError("GS1-128: no elements")
    toks = _tokens(elements)
    out: list[str] = []
    mode = "C" if _digit_run(toks, 1) >= 2 else "B"
    out.append(">;" if mode == "C" else ">:")
    cw = 0
    i = 0
    while i < len(toks):
        t = toks[i]
        if t is None:
            out.append(">8")
            cw += 1
            i += 1
            continue
        run = _digit_run(toks, i)
        if mode == "C":
            if run >= 2:
                out.append(t + str(toks[i + 1]))
                cw += 1
                i += 2
                continue
            out.append(">6")
            cw += 1
            mode = "B"
            continue
        # mode B
        if run >= 4:
            if run % 2 == 1:
                out.append(t)
                cw += 1
                i += 1
            out.append(">5")
            cw += 1
            mode = "C"
            continue
        out.append(_b_char(t))
        cw += 1
        i += 1
    return Code128("".join(out), cw)


def gs1_datamatrix(elements: Sequence[Element]) -> str:
    """``^BX`` field data (escape char ``_``): ``_1`` first and as separator, ``__`` for ``_``."""
    if not elements:
        raise EncodeError("GS1 DataMatrix: no elements")
    out = ["_1"]
    for i, e in enumerate(elements):
        out.append((e.ai + e.value).replace(DM_ESCAPE, DM_ESCAPE * 2))
        if not e.fixed and i < len(elements) - 1:
            out.append("_1")
    return "".join(out)


def code128_fits(code: Code128, *, x: int, module: int, label_width: int) -> bool:
    """True when the symbol plus 10-module quiet zones lies inside the label."""
    return x >= 10 * module and x + (code.modules + 10) * module <= label_width


#: ECC 200 square symbols: (modules per side, data codewords), smallest first.
DM_SQUARE_SIZES: tuple[tuple[int, int], ...] = (
    (10, 3), (12, 5), (14, 8), (16, 12), (18, 18), (20, 22), (22, 30), (24, 36),
    (26, 44), (32, 62), (36, 86), (40, 114), (44, 144), (48, 174), (52, 204),
    (64, 280), (72, 368), (80, 456), (88, 576), (96, 696), (104, 816), (120, 1050),
    (132, 1304), (144, 1558),
)  # fmt: skip


def datamatrix_codewords(field_data: str) -> int:
    """Data codewords of ``^BX`` field data in ASCII encodation (an upper bound: a printer
    that switches to C40/Text needs no more). ``_1`` is FNC1, ``__`` a literal ``_``."""
    cw = 0
    i = 0
    n = len(field_data)
    while i < n:
        ch = field_data[i]
        if ch == DM_ESCAPE and i + 1 < n:
            cw += 1  # FNC1 or an escaped "_"
            i += 2
            continue
        if (
            ch.isascii()
            and ch.isdigit()
            and i + 1 < n
            and field_data[i + 1].isascii()
            and (field_data[i + 1].isdigit())
        ):
            cw += 1  # a digit pair
            i += 2
            continue
        cw += 1 if ord(ch) < 128 else 2 * len(ch.encode("utf-8"))
        i += 1
    return cw


def datamatrix_side(field_data: str) -> int | None:
    """Modules per side of the smallest square ECC 200 symbol holding the data (None: none)."""
    cw = datamatrix_codewords(field_data)
    return next((side for side, cap in DM_SQUARE_SIZES if cap >= cw), None)


def datamatrix_fits(
    side: int, *, x: int, y: int, module: int, label_width: int, label_length: int
) -> bool:
    """True when the symbol plus a one-module quiet zone lies inside the label."""
    extent = (side + 1) * module
    return x >= module and y >= module and x + extent <= label_width and y + extent <= label_length
