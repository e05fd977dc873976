"""Text escapes for scan data typed by people: ``\\x1d`` in files and CLI args, ``<GS>`` on screen."""

from __future__ import annotations

import re

_NAMES = {
    0x00: "NUL",
    0x02: "STX",
    0x03: "ETX",
    0x04: "EOT",
    0x09: "TAB",
    0x0A: "LF",
    0x0D: "CR",
    0x1B: "ESC",
    0x1C: "FS",
    0x1D: "GS",
    0x1E: "RS",
    0x1F: "US",
    0x7F: "DEL",
}
_BY_NAME = {v: chr(k) for k, v in _NAMES.items()}
_ESC = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|[\\rnte]|<|[0-9]{3})|<([A-Z]{2,3})>")
_SIMPLE = {"\\": "\\", "r": "\r", "n": "\n", "t": "\t", "e": "\x1b", "<": "<"}


class EscapeError(ValueError):
    """An escape sequence that cannot be decoded."""


def unescape(text: str) -> str:
    """Decode ``\\x1d``, ``\\u001d``, ``\\035`` (octal), ``\\r \\n \\t \\\\`` and ``<GS>``-style names.

    ``\\<`` yields a literal ``<``. Unknown ``<XYZ>`` names are left as they are.
    """

    def repl(m: re.Match[str]) -> str:
        esc, name = m.group(1), m.group(2)
        if name is not None:
            return _BY_NAME.get(name, m.group(0))
        if esc[0] == "x":
            return chr(int(esc[1:], 16))
        if esc[0] == "u":
            return chr(int(esc[1:], 16))
        if esc[0].isdigit():
            return chr(int(esc, 8))
        return _SIMPLE[esc]

    if "\\" not in text and "<" not in text:
        return text
    return _ESC.sub(repl, text)


def _visible_table() -> dict[int, str]:
    table = {o: f"<{_NAMES.get(o, f'x{o:02X}')}>" for o in [*range(0x20), 0x7F]}
    # C1 controls (NEL, CSI …) and the Unicode line/paragraph separators
    table.update({o: f"<U+{o:04X}>" for o in [*range(0x80, 0xA0), 0x2028, 0x2029]})
    # bidi controls could make a log line read differently from what it holds
    bidi = [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    table.update({o: f"<U+{o:04X}>" for o in bidi})
    return table


_VISIBLE = _visible_table()
#: Any character of the table: most text has none and is returned as it is (a regex scan
#: in C instead of a dict lookup per character).
_ANY_HIDDEN = re.compile("[" + "".join(re.escape(chr(o)) for o in sorted(_VISIBLE)) + "]")


def make_visible(text: str) -> str:
    """Show control characters as ``<GS>``, ``<CR>``, ``<U+0085>`` … (logs, technician screens).

    C0 and C1 controls and the Unicode line/paragraph separators are made visible, so
    untrusted scan data can never start a new log line or send a terminal escape.
    """
    if _ANY_HIDDEN.search(text) is None:
        return text
    return text.translate(_VISIBLE)
