"""A command stopped by a signal takes its worker processes with it and leaves no output behind: signalled, it
exits at once rather than after its workers' tasks; killed outright, its workers die too rather than sleep on as
orphans. Real processes (`simulate --threads 2`, whose workers each build one repertoire), Linux's /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


def _state_and_parent(pid: int) -> tuple[str, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (name) "
    return fields[0], int(fields[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (_state_and_parent(int(entry)) or ("", 0))[1] == pid:
            found.append(int(entry))
    return found


def _alive(pids: list[int]) -> list[int]:
    """Those of `pids` still running (a zombie has ended)."""
    return [pid for pid in pids if (_state_and_parent(pid) or ("Z", 0))[0] != "Z"]


def _simulate_with_busy_workers(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    """`simulate --threads 2` of repertoires that take each worker seconds, started in a session of its own (a
    terminal's process group), once both workers are at work: the process and its workers' ids."""
    command = [sys.executable, "-m", "deeprc_hopfield", "simulate", "--out", str(tmp_path / "cohort"),
               "--n-repertoires", "6", "--sequences-per-repertoire", "800000", "--witness-rate", "0.01",
               "--threads", "2"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while len(workers := _children(process.pid)) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert len(workers) == 2, "the workers did not start"
    time.sleep(1)  # each is inside its first repertoire
    return process, workers


def _stop_leftovers(pids: list[int]) -> None:
    for pid in _alive(pids):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig, whom", [pytest.param(signal.SIGTERM, "process", id="SIGTERM to the command"),
                                      pytest.param(signal.SIGINT, "group", id="Ctrl-C")])
def test_a_signalled_command_stops_its_workers_at_once(tmp_path: Path, sig: int, whom: str):
    """SIGTERM to the command alone (as Snakemake's cluster executors and `kill` send it) and Ctrl-C (SIGINT to
    the terminal's whole process group): it exits within seconds, not once its workers have built the
    repertoires they hold, and no worker is left."""
    process, workers = _simulate_with_busy_workers(tmp_path)
    try:
        sent = time.time()
        if whom == "group":
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
        took = time.time() - sent
        assert process.returncode == 128 + sig, stderr
        assert "interrupted; nothing was written" in stderr and "Traceback" not in stderr, stderr
        assert took < 5, f"{took:.1f} s to stop"
        assert _alive(workers) == []
        assert os.listdir(tmp_path) == []  # no cohort, no temporary folder
    finally:
        process.kill()
        _stop_leftovers(workers)


def test_a_killed_command_takes_its_workers_with_it(tmp_path: Path):
    """SIGKILL (the out-of-memory killer, a scheduler past its grace period) gives the command no chance to clean
    up; its workers, which would otherwise sleep for good as orphans, die with it."""
    process, workers = _simulate_with_busy_workers(tmp_path)
    try:
        process.kill()
        process.wait(timeout=10)
        deadline = time.time() + 5
        while _alive(workers) and time.time() < deadline:
            time.sleep(0.1)
        assert _alive(workers) == []
    finally:
        _stop_leftovers(workers)
