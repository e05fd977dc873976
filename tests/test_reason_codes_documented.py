"""Every reason code the decision rules can give is in README's table (and the other way)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.rules import decide

ROOT = Path(__file__).resolve().parents[1]


def _rules_codes() -> set[str]:
    doc = decide.__doc__ or ""
    return set(re.findall(r"^([a-z_]+)\s{2,}(?:reject|warn|policy)", doc, re.M))


def _readme_codes() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Reason codes") : text.index("## Chain of custody")]
    codes: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            codes.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return codes


def test_every_rule_code_is_documented() -> None:
    rules = _rules_codes()
    assert len(rules) > 25
    missing = sorted(rules - _readme_codes())
    assert not missing, f"reason codes missing from README's table: {missing}"


def test_codes_the_rules_return_are_in_the_rules_table() -> None:
    source = "".join(
        (ROOT / "gateway" / "rules" / f).read_text()
        for f in ("decide.py", "custody.py", "pallets.py")
    )
    used = set(re.findall(r'(?:Reason|Problem)\(\s*(?:"(?:reject|warn)",\s*)?"([a-z_]+)"', source))
    used |= set(re.findall(r'_apply_policy\(\s*out,\s*[a-z_.]+,\s*"([a-z_]+)"', source))
    used |= set(re.findall(r'\(\s*"(?:reject|warn)",\s*"([a-z_]+)"', source))  # pallets.py
    used |= set(re.findall(r'\(\(\s*"([a-z_]+)",\s*f?"', source))  # pallets.py reasons
    used |= set(re.findall(r'code(?:, msg)? = "([a-z_]+)"', source))
    used -= {"reject", "warn", "accept"}
    assert used, "found no reason codes in the rules"
    missing = sorted(used - _rules_codes())
    assert not missing, f"codes used but not in decide.py's table: {missing}"
