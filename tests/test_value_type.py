"""``@value_type``: frozen to mypy, cheap at run time, equal and hashed by its fields."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path

from drivers.scanners.types import RawScan
from gs1.interpret import interpret
from gs1.value import value_type

ROOT = Path(__file__).resolve().parent.parent


@value_type
class _Point:
    x: int
    y: int = 0


def test_equal_and_hashed_by_fields_like_a_frozen_dataclass() -> None:
    a, b = _Point(1, 2), _Point(1, 2)
    assert a == b and hash(a) == hash(b) and {a: "p"}[b] == "p"
    assert a != _Point(1, 3)
    assert dataclasses.replace(a, y=5) == _Point(1, 5)
    assert not hasattr(a, "__dict__")  # slots


def test_values_survive_pickle_and_replace() -> None:
    scan = RawScan("]C1010950600013435210ABC", "tunnel", 1.0, 2.0)
    assert pickle.loads(pickle.dumps(scan)) == scan
    it = interpret("]C1010950600013435210ABC")
    assert pickle.loads(pickle.dumps(it)) == it and hash(it) == hash(dataclasses.replace(it))


def test_mypy_refuses_to_assign_a_field(tmp_path: Path) -> None:
    """The immutability is the type checker's: code that assigns a field does not pass."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from gs1.value import value_type\n\n\n@value_type\nclass V:\n    a: int\n\n\n"
        "v = V(1)\nv.a = 2\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert r.returncode == 1 and 'Property "a" defined in "V" is read-only' in r.stdout, r.stdout
