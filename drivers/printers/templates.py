"""Label templates: ZPL files with numbered fields (``^FN``) plus a TOML declaration.

A template ``NAME`` is ``NAME.toml`` (fields and what each ``^FN`` slot shows) and one
ZPL file per variant, ``NAME_<dpi>_<size>.zpl`` (e.g. ``lot_203_4x6.zpl``). Built-ins
live in ``drivers/printers/labels/``; a site directory (``config/labels/``) may add
templates or override built-ins. Filling is pure: it validates and escapes every
value and raises :class:`~gs1.encode.EncodeError` for data that cannot be
printed correctly.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from drivers.printers.zpl import (
    DM_ESCAPE,
    code128_fits,
    datamatrix_fits,
    datamatrix_side,
    gs1_128,
    gs1_datamatrix,
    text_field,
)
from gs1.dates import parse_yymmdd
from gs1.encode import Element, EncodeError, check_label, hri, normalise
from gs1.rules import DATE_AIS

SlotKind = Literal["text", "hri", "gs1-128", "datamatrix"]
SIZES: dict[str, tuple[float, float]] = {"4x6": (4.0, 6.0), "4x2": (4.0, 2.0)}
DPIS = (203, 300, 600)
BUILTIN_DIR = Path(__file__).parent / "labels"

_FN = re.compile(r'\^FN(\d+)(?:"[A-Za-z0-9 ]{0,255}")?')
_VARIANT = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)_(?P<dpi>\d+)_(?P<size>\d+x\d+)\.zpl$")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class TemplateError(ValueError):
    """A template file that is malformed or inconsistent with its declaration."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A named field a template accepts."""

    name: str
    ai: str | None = None  # GS1 AI when the value is GS1 data
    required: bool = True
    max_length: int = 60


@dataclass(frozen=True, slots=True)
class Slot:
    """What one ``^FN`` shows: text with ``{field}`` placeholders, an HRI line or a symbol."""

    fn: int
    kind: SlotKind
    fields: tuple[str, ...] = ()
    text: str = ""
    x: int = 0  # ^FO x of the field (for the fit check)
    module: int = 2  # ^BY module width in effect (^BX module size for a DataMatrix)
    y: int = 0  # ^FO y of the field
    block: bool = False  # the field is a text block (^FB): wraps, reads "\\" as an escape


@dataclass(frozen=True, slots=True)
class Template:
    """One template variant (name, dpi, size) ready to fill."""

    name: str
    dpi: int
    size: str
    description: str
    fields: tuple[FieldSpec, ...]
    slots: tuple[Slot, ...]
    zpl: str  # the file as written, ^XA … ^XZ
    source: str = ""

    @property
    def width_dots(self) -> int:
        """Label width in dots."""
        return dots(SIZES[self.size][0], self.dpi)

    @property
    def length_dots(self) -> int:
        """Label length in dots."""
        return dots(SIZES[self.size][1], self.dpi)

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of the fields this template accepts."""
        return tuple(f.name for f in self.fields)

    @property
    def digest(self) -> str:
        """Short hash of the ZPL; a changed template gets downloaded again."""
        return hashlib.sha256(self.zpl.encode()).hexdigest()[:12]

    @property
    def stored_name(self) -> str:
        """Printer object name for the stored format (``^DF``/``^XF``)."""
        base = re.sub(r"[^A-Z0-9]", "", self.name.upper())[:8] or "LABEL"
        return f"R:TW{base}.ZPL"


def dots(inches: float, dpi: int) -> int:
    """Inches to printer dots (203 dpi: 4 in = 812 dots)."""
    return round(inches * dpi)


# ---------------------------------------------------------------- loading


def _field_block(zpl: str, pos: int) -> tuple[int, int]:
    """Span of the field definition around offset ``pos``: from its ^FO/^FT to its ^FS."""
    prev_fs = zpl.rfind("^FS", 0, pos)
    start_search = 0 if prev_fs < 0 else prev_fs + 3
    starts = [zpl.rfind(c, start_search, pos) for c in ("^FO", "^FT")]
    start = max(starts)
    if start < 0:
        raise TemplateError(f"^FN at offset {pos} has no ^FO/^FT before it")
    end = zpl.find("^FS", pos)
    if end < 0:
        raise TemplateError(f"^FN at offset {pos} has no ^FS after it")
    return start, end + 3


def _last_param(zpl: str, cmd: str, end: int, index: int, default: int) -> int:
    i = zpl.rfind(cmd, 0, end)
    if i < 0:
        return default
    params = re.match(r"[^\^~]*", zpl[i + len(cmd) :])
    parts = params.group(0).split(",") if params else []
    try:
        return int(parts[index])
    except (IndexError, ValueError):
        return default


def _parse_declaration(
    name: str, decl: Mapping[str, object], where: str
) -> tuple[str, tuple[FieldSpec, ...], dict[int, Slot]]:
    raw_fields = decl.get("fields", {})
    raw_slots = decl.get("slots", {})
    if not isinstance(raw_fields, dict) or not isinstance(raw_slots, dict):
        raise TemplateError(f"{where}: [fields] and [slots] must be tables")
    fields: list[FieldSpec] = []
    for fname, spec in raw_fields.items():
        if not isinstance(spec, dict):
            raise TemplateError(f"{where}: fields.{fname} must be a table")
        unknown = set(spec) - {"ai", "required", "max_length"}
        if unknown:
            raise TemplateError(f"{where}: fields.{fname}: unknown keys {sorted(unknown)}")
        fields.append(
            FieldSpec(
                name=fname,
                ai=str(spec["ai"]) if "ai" in spec else None,
                required=bool(spec.get("required", True)),
                max_length=int(spec.get("max_length", 60)),
            )
        )
    known = {f.name for f in fields}
    slots: dict[int, Slot] = {}
    for key, spec in raw_slots.items():
        if not isinstance(spec, dict) or not str(key).isdigit():
            raise TemplateError(f"{where}: slots.{key} must be a table with a numeric key")
        kind = spec.get("kind")
        if kind not in ("text", "hri", "gs1-128", "datamatrix"):
            raise TemplateError(
                f"{where}: slots.{key}.kind: {kind!r} is not text|hri|gs1-128|datamatrix"
            )
        text = str(spec.get("text", ""))
        sfields = tuple(str(f) for f in spec.get("fields", _PLACEHOLDER.findall(text)))
        for f in sfields:
            if f not in known:
                raise TemplateError(f"{where}: slots.{key} uses undeclared field {f!r}")
        if kind != "text":
            for f in sfields:
                if next(x for x in fields if x.name == f).ai is None:
                    raise TemplateError(f"{where}: slots.{key}: field {f!r} has no ai")
        slots[int(key)] = Slot(fn=int(key), kind=kind, fields=sfields, text=text)
    return str(decl.get("description", name)), tuple(fields), slots


def load_variant(decl_path: Path, zpl_path: Path) -> Template:
    """Load and check one template variant; raises TemplateError naming the file."""
    m = _VARIANT.match(zpl_path.name)
    if not m:
        raise TemplateError(f"{zpl_path}: file name must be NAME_DPI_SIZE.zpl")
    name, dpi, size = m.group("name"), int(m.group("dpi")), m.group("size")
    if dpi not in DPIS or size not in SIZES:
        raise TemplateError(f"{zpl_path}: dpi must be one of {DPIS}, size one of {sorted(SIZES)}")
    try:
        decl = tomllib.loads(decl_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TemplateError(f"{decl_path}: {exc}") from exc
    description, fields, slots = _parse_declaration(name, decl, str(decl_path))
    zpl = zpl_path.read_text(encoding="utf-8")
    where = str(zpl_path)
    body = zpl.strip()
    if not (body.startswith("^XA") and body.endswith("^XZ")) or body.count("^XA") != 1:
        raise TemplateError(f"{where}: must hold exactly one format, ^XA … ^XZ")
    if "^CI28" not in body:
        raise TemplateError(f"{where}: must select UTF-8 with ^CI28")
    w, ll = dots(SIZES[size][0], dpi), dots(SIZES[size][1], dpi)
    if f"^PW{w}" not in body or f"^LL{ll}" not in body:
        raise TemplateError(f"{where}: must declare ^PW{w} and ^LL{ll} for {size} at {dpi} dpi")
    if len(re.findall(r"\^FN\d+", body)) != len(_FN.findall(body)) or re.search(
        r'\^FN\d+"(?![A-Za-z0-9 ]{0,255}")', body
    ):
        raise TemplateError(f"{where}: ^FN prompts may hold only letters, digits and spaces")
    seen: dict[int, Slot] = {}
    for fm in _FN.finditer(body):
        fn = int(fm.group(1))
        if fn not in slots:
            raise TemplateError(f"{where}: ^FN{fn} is not declared in {decl_path.name}")
        if fn in seen:
            raise TemplateError(f"{where}: ^FN{fn} used twice")
        start, end = _field_block(body, fm.start())
        block = body[start:end]
        slot = slots[fn]
        if slot.kind == "gs1-128" and "^BC" not in block:
            raise TemplateError(f"{where}: ^FN{fn} is gs1-128 but its field has no ^BC")
        if slot.kind == "datamatrix":
            if "^BX" not in block:
                raise TemplateError(f"{where}: ^FN{fn} is datamatrix but its field has no ^BX")
            bx = re.search(r"\^BX([^\^~]*)", block)
            bx_params = bx.group(1).split(",") if bx else []
            if len(bx_params) < 7 or bx_params[6] != DM_ESCAPE:
                raise TemplateError(
                    f"{where}: ^FN{fn}: ^BX must set the escape character {DM_ESCAPE!r}"
                )
            if "^FH" + DM_ESCAPE in block:
                raise TemplateError(f"{where}: ^FN{fn}: ^FH must not use the ^BX escape character")
        if slot.kind in ("text", "hri") and ("^BC" in block or "^BX" in block):
            raise TemplateError(f"{where}: ^FN{fn} is {slot.kind} but its field is a barcode")
        x = _last_param(block, "^FO", len(block), 0, 0)
        y = _last_param(block, "^FO", len(block), 1, 0)
        if slot.kind == "datamatrix":
            module = _last_param(block, "^BX", len(block), 1, 0)
            if module < 1:
                raise TemplateError(f"{where}: ^FN{fn}: ^BX must give the module size (dots)")
        else:
            module = _last_param(body, "^BY", fm.start(), 0, 2)
        seen[fn] = Slot(
            slot.fn,
            slot.kind,
            slot.fields,
            slot.text,
            x=x,
            module=module,
            y=y,
            block="^FB" in block,
        )
    in_symbols = {f for s in seen.values() if s.kind in ("gs1-128", "datamatrix") for f in s.fields}
    lost = sorted(f.name for f in fields if f.ai and f.name not in in_symbols)
    if lost:
        raise TemplateError(f"{where}: GS1 field(s) {lost} appear in no barcode of this variant")
    return Template(
        name, dpi, size, description, fields, tuple(seen[k] for k in sorted(seen)), body, where
    )


def load_dir(directory: Path) -> dict[tuple[str, int, str], Template]:
    """All template variants in one directory, keyed by (name, dpi, size)."""
    out: dict[tuple[str, int, str], Template] = {}
    if not directory.is_dir():
        return out
    for zpl_path in sorted(directory.glob("*.zpl")):
        m = _VARIANT.match(zpl_path.name)
        if not m:
            raise TemplateError(f"{zpl_path}: file name must be NAME_DPI_SIZE.zpl")
        decl_path = directory / f"{m.group('name')}.toml"
        if not decl_path.exists():
            raise TemplateError(f"{zpl_path}: no declaration {decl_path.name} next to it")
        t = load_variant(decl_path, zpl_path)
        out[(t.name, t.dpi, t.size)] = t
    return out


@dataclass(frozen=True)
class TemplateSet:
    """Templates from the built-in directory overlaid by site directories."""

    templates: Mapping[tuple[str, int, str], Template]

    def get(self, name: str, dpi: int, size: str) -> Template:
        """The variant for a printer's dpi and stock size; raises TemplateError if missing."""
        try:
            return self.templates[(name, dpi, size)]
        except KeyError:
            have = sorted({f"{n} {d}dpi {s}" for n, d, s in self.templates if n == name})
            if not have:
                names = ", ".join(self.names()) or "none"
                raise TemplateError(f"unknown template {name!r} (known: {names})") from None
            raise TemplateError(
                f"template {name!r} has no variant for {dpi} dpi {size} (have: {', '.join(have)})"
            ) from None

    def names(self) -> list[str]:
        """Template names, sorted."""
        return sorted({n for n, _, _ in self.templates})


def load_templates(extra_dirs: Iterable[Path] = ()) -> TemplateSet:
    """Built-in templates, then each extra directory (later ones override earlier ones)."""
    merged: dict[tuple[str, int, str], Template] = {}
    for d in (BUILTIN_DIR, *extra_dirs):
        merged.update(load_dir(Path(d)))
    return TemplateSet(merged)


# ---------------------------------------------------------------- filling


def _check_values(t: Template, values: Mapping[str, str]) -> dict[str, str]:
    known = {f.name: f for f in t.fields}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise EncodeError(
            f"template {t.name!r}: unknown field(s) {', '.join(unknown)} "
            f"(fields: {', '.join(t.field_names)})"
        )
    out: dict[str, str] = {}
    for f in t.fields:
        v = values.get(f.name, "")
        if v == "":
            if f.required:
                raise EncodeError(f"template {t.name!r}: field {f.name!r} is required")
            continue
        out[f.name] = normalise(f.ai, v, f.name) if f.ai else v
        if f.ai is None and len(v) > f.max_length:
            raise EncodeError(f"{f.name}: {len(v)} characters, at most {f.max_length} fit")
    return out


_SEGMENT_GAP = re.compile(r"( {2,})")


def display_value(ai: str | None, value: str, today: date | None = None) -> str:
    """A field value as the label's text shows it: GS1 dates as ``2027-01-31``.

    A date with day ``00`` (any day of the month) shows as ``2027-01``.
    """
    if ai not in DATE_AIS or len(value) != 6 or not value.isdigit():
        return value
    d = parse_yymmdd(value, today or date.today(), day_zero=DATE_AIS[ai])
    if d is None:
        return value
    return f"{d:%Y-%m}" if value[4:] == "00" else d.isoformat()


def render_text(text: str, shown: Mapping[str, str]) -> str:
    """Fill ``{field}`` placeholders; a caption whose fields are all absent is left out.

    Captions are the parts of ``text`` separated by two or more spaces (``"EXP {expiry}
    QTY {quantity}"`` has two); a part without placeholders always stays.
    """
    parts = _SEGMENT_GAP.split(text)
    kept: list[str] = []
    for i in range(0, len(parts), 2):
        seg = parts[i]
        names = _PLACEHOLDER.findall(seg)
        if names and not any(shown.get(n) for n in names):
            continue
        if kept:
            kept.append(parts[i - 1])
        kept.append(_PLACEHOLDER.sub(lambda m: shown.get(m.group(1), ""), seg))
    return "".join(kept).strip()


def _symbol_error(t: Template, s: Slot, elements: list[Element], data: str) -> str | None:
    """Why a symbol does not fit on the label (None: it fits)."""
    if s.kind == "gs1-128":
        code = gs1_128(elements)
        if code128_fits(code, x=s.x, module=s.module, label_width=t.width_dots):
            return None
        return (
            f"GS1-128 for {hri(elements)} is {code.modules} modules at {s.module} dots, "
            f"wider than the label ({t.width_dots} dots)"
        )
    side = datamatrix_side(data)
    if side is not None and datamatrix_fits(
        side,
        x=s.x,
        y=s.y,
        module=s.module,
        label_width=t.width_dots,
        label_length=t.length_dots,
    ):
        return None
    size = f"{side}x{side} modules" if side else "more than a 144x144 symbol holds"
    return (
        f"DataMatrix for {hri(elements)} needs {size}; at {s.module} dots per module from "
        f"({s.x},{s.y}) it does not fit on the {t.width_dots}x{t.length_dots} dot label"
    )


def slot_data(t: Template, values: Mapping[str, str]) -> dict[int, str | None]:
    """Field data command (``^FH\\^FD…`` / ``^FD…``) per ``^FN`` slot; None leaves a slot empty.

    Raises EncodeError for data that cannot be encoded or whose symbol would not fit
    on the label.
    """
    vals = _check_values(t, values)
    by_name = {f.name: f for f in t.fields}
    # The label's GS1 data as a whole must read back cleanly with the reader's rules.
    check_label([Element(str(f.ai), vals[f.name]) for f in t.fields if f.ai and f.name in vals])
    shown = {k: display_value(by_name[k].ai, v) for k, v in vals.items()}
    out: dict[int, str | None] = {}
    for s in t.slots:
        if s.kind == "text":
            if s.fields and not any(f in vals for f in s.fields):
                out[s.fn] = None
                continue
            out[s.fn] = text_field(render_text(s.text, shown), block=s.block)
            continue
        elements = [Element(str(by_name[f].ai), vals[f]) for f in s.fields if f in vals]
        if not elements:
            out[s.fn] = None
        elif s.kind == "hri":
            # In a wrapping block, break between elements, never inside one.
            caption = " ".join(hri([e]) for e in elements) if s.block else hri(elements)
            out[s.fn] = text_field(caption, block=s.block)
        else:
            data = gs1_datamatrix(elements) if s.kind == "datamatrix" else gs1_128(elements).data
            why = _symbol_error(t, s, elements, data)
            if why is not None:
                raise EncodeError(
                    f"template {t.name!r} {t.dpi}dpi {t.size}: {why}; "
                    f"shorten the data or use a larger label"
                )
            out[s.fn] = "^FD" + data
    return out


def fill(t: Template, values: Mapping[str, str]) -> str:
    """A complete ZPL label: the template with every ``^FN`` slot replaced by escaped data."""
    data = slot_data(t, values)
    zpl = t.zpl
    # Replace from the end so earlier offsets stay valid.
    for fm in reversed(list(_FN.finditer(zpl))):
        d = data[int(fm.group(1))]
        if d is None:
            start, end = _field_block(zpl, fm.start())
            zpl = zpl[:start] + zpl[end:]
        else:
            zpl = zpl[: fm.start()] + d + zpl[fm.end() :]
    return zpl


def download_format(t: Template) -> str:
    """``^DF`` command storing the template on the printer (in RAM: gone after a power cycle)."""
    inner = t.zpl.strip()[3:-3]
    return f"^XA^DF{t.stored_name}^FS{inner}^XZ"


def recall_format(t: Template, values: Mapping[str, str]) -> str:
    """``^XF`` label sending only the variable data for a stored template."""
    parts = [f"^XA^XF{t.stored_name}^FS^CI28"]
    for fn, d in slot_data(t, values).items():
        if d is not None:
            parts.append(f"^FN{fn}{d}^FS")
    parts.append("^XZ")
    return "".join(parts)
