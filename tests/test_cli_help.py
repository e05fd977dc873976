"""Every sub-command and every option of the ``traceway`` command line explains itself."""

from __future__ import annotations

import argparse

from gateway.cli.exit_codes import EXIT_CODES, ExitCode
from gateway.cli.main import build_parser


def _walk(parser: argparse.ArgumentParser, path: str, missing: list[str]) -> int:
    """Check ``parser`` and its sub-commands; return how many parsers were walked."""
    walked = 1
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions if a.help}
            for name, sub in action.choices.items():
                if name not in helped:
                    missing.append(f"{path} {name} (sub-command)")
                walked += _walk(sub, f"{path} {name}", missing)
        elif not action.help:  # argparse.SUPPRESS marks a deliberately hidden test hook
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return walked


def test_every_option_has_help() -> None:
    missing: list[str] = []
    walked = _walk(build_parser(), "traceway", missing)
    assert walked > 10, "the walk reached the sub-commands"
    assert missing == [], "without help text:\n" + "\n".join(missing)


def test_help_shows_the_exit_codes() -> None:
    text = build_parser().format_help()
    for code, meaning in EXIT_CODES.items():
        assert f"{int(code):<4} {meaning}" in text
    assert set(EXIT_CODES) == set(ExitCode)
    assert (ExitCode.CONFIG, ExitCode.DATABASE) == (2, 3)  # systemd/traceway.service relies on it
