"""A real browser for page tests: Debian's chromium driven by Playwright (no download).

``.ci/setup --test`` installs chromium; Playwright launches that executable
(``TRACEWAY_CHROMIUM`` overrides the path). Screenshots go to ``tests/artifacts/``
(ignored by git) so a person can look at every page a test saw.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def chromium_executable() -> str | None:
    """The chromium to drive: ``$TRACEWAY_CHROMIUM``, else ``chromium`` on PATH."""
    return os.environ.get("TRACEWAY_CHROMIUM") or shutil.which("chromium")


def screenshot_path(name: str) -> Path:
    """Where a test keeps the screenshot called ``name`` (directory created)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless chromium (Playwright ``Browser``) for the session; skips without one."""
    sync_api = pytest.importorskip("playwright.sync_api")
    exe = chromium_executable()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/setup --test installs it)")
        pytest.skip("chromium is not installed (.ci/setup --test installs it)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=exe,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()
