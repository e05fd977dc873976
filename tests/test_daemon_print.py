"""The daemon's print commands: jobs queued and reprinted through the single writer."""

from __future__ import annotations

import sqlite3

from tests.test_daemon import Rig, rig, wait  # noqa: F401  (rig is a fixture)


def job_states(r: Rig) -> dict[int, str]:
    con = sqlite3.connect(r.gw.cfg.storage.path)
    try:
        return {int(i): str(s) for i, s in con.execute("SELECT id, state FROM print_jobs")}
    finally:
        con.close()


def test_reprint_goes_through_the_writer_and_refuses_a_job_bad_data(rig: Rig) -> None:  # noqa: F811
    good = {"gtin": "09506000134352", "lot": "L1", "expiry": "2030-01-31"}
    first = rig.command("print", {"template": "lot", "fields": good})
    assert first["ok"] is True, first
    bad = rig.command("print", {"template": "lot", "fields": {**good, "expiry": "2031-02-30"}})
    assert bad["ok"] is True, bad  # queued; the worker finds out the data cannot print
    assert wait(lambda: sorted(job_states(rig).values()) == ["confirmed", "failed"], 15)
    failed = next(i for i, s in job_states(rig).items() if s == "failed")
    ok = next(i for i, s in job_states(rig).items() if s == "confirmed")
    refused = rig.command("reprint", {"job_id": str(failed)})
    assert refused["ok"] is False and "failed on its data" in str(refused), refused
    again = rig.command("reprint", {"job_id": str(ok)})
    assert again["ok"] is True, again
    assert wait(lambda: len(rig.zebra.state.printed) >= 2, 15)
    assert len(job_states(rig)) == 3
    unknown = rig.command("reprint", {"job_id": "999"})
    assert unknown["ok"] is False and "no print job 999" in str(unknown)
