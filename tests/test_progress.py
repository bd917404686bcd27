"""Progress lines of long stages in the log (`deeprc_hopfield.progress`)."""

from __future__ import annotations

import logging

from deeprc_hopfield.progress import LoggedProgress, logged


def test_progress_logs_done_total_and_eta_then_done(caplog):
    log = logging.getLogger("test_progress")
    progress = LoggedProgress(log, "scored", 4, every=0.0)
    with caplog.at_level(logging.INFO, logger="test_progress"):
        for _ in range(4):
            progress.update()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and lines[0].startswith("scored: 1/4 repertoires (25%),") and "ETA" in lines[0]
    assert lines[-1].startswith("scored: 4/4 repertoires (100%),") and lines[-1].endswith("done")


def test_progress_is_quiet_between_intervals_and_works_without_a_total(caplog):
    log = logging.getLogger("test_progress")
    quiet = LoggedProgress(log, "scored", 1000, every=3600.0)
    unknown = LoggedProgress(log, "read", None, unit="files", every=0.0)
    with caplog.at_level(logging.INFO, logger="test_progress"):
        for _ in range(10):
            quiet.update()
        unknown.update(3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [lines[-1]] and lines[-1].startswith("read: 3 files, ")
    assert unknown.line(90.0) == "3 files, 1.5 min"


def test_a_short_stage_without_last_line_logs_nothing_and_a_long_one_its_end(caplog):
    log = logging.getLogger("test_progress")
    short = LoggedProgress(log, "short", 3, every=3600.0, last_line=False)
    long = LoggedProgress(log, "long", 2, every=0.0, last_line=False)
    with caplog.at_level(logging.INFO, logger="test_progress"):
        for _ in range(3):
            short.update()
        long.update()
        long.update()
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[0] for line in lines] == ["long", "long"] and lines[-1].endswith("done")


def test_logged_items_come_in_order_with_their_count(caplog):
    """`logged` hands the items over unchanged and counts them (a list's length, or the total given)."""
    log = logging.getLogger("test_progress")
    with caplog.at_level(logging.INFO, logger="test_progress"):
        assert list(logged(["a", "b", "c"], log, "read", every=0.0)) == ["a", "b", "c"]
        assert list(logged(iter(range(2)), log, "seen", total=2, unit="files", every=0.0)) == [0, 1]
        assert list(logged(iter(range(2)), log, "quiet")) == [0, 1]  # short: nothing logged
    lines = [r.getMessage() for r in caplog.records]
    assert lines[2].startswith("read: 3/3 repertoires (100%)") and lines[2].endswith("done")
    assert lines[-1].startswith("seen: 2/2 files (100%)") and len(lines) == 5
