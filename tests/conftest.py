"""Shared fixtures: small cohorts written as real files in a temporary folder."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from deeprc_hopfield.encoding import AMINO_ACIDS
from deeprc_hopfield.pgen import CACHE_VARIABLE

@pytest.fixture(autouse=True, scope="session")
def _pgen_cache_in_a_temporary_folder(tmp_path_factory) -> None:
    """`train` and `baselines` keep pgen values on disk by default: in this run's temporary folder, not
    the user's cache."""
    os.environ[CACHE_VARIABLE] = str(tmp_path_factory.mktemp("pgen-cache"))


def deeprc_cli(*args: object) -> subprocess.CompletedProcess:
    """`deeprc-hopfield ARGS` through the command line's own `main` in this process, its exit status and what it
    wrote to stdout and stderr as a subprocess would give them (Python warnings printed to its stderr, not to
    pytest's summary): the import of torch and the package (2-3 s a call) is paid once a test session. What `main`
    sets for its process (logging, signal handlers, torch's threads, the interrupt state) is put back after, and the
    pgen values a process keeps in memory start empty, as in a new process (they decide what goes to the disk
    cache). Tests of signals and of the installed entry point run a real process."""
    import torch

    from deeprc_hopfield import cli, interrupts, pgen, saved_model

    root, package = logging.getLogger(), logging.getLogger("deeprc_hopfield")
    saved = (root.handlers[:], root.level, package.level, torch.get_num_threads(), sys.unraisablehook,
             {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)})
    out, err = io.StringIO(), io.StringIO()
    _fresh_process_state(interrupts, pgen, saved_model)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: err.write(
                warnings.formatwarning(message, category, filename, lineno, line))
            try:
                code = cli.main([str(arg) for arg in args])
            except SystemExit as exc:  # argparse's --help and usage errors
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        package.setLevel(saved[2])
        torch.set_num_threads(saved[3])
        sys.unraisablehook = saved[4]
        for sig, handler in saved[5].items():
            signal.signal(sig, handler)
        _fresh_process_state(interrupts, pgen, saved_model)
    return subprocess.CompletedProcess(["deeprc-hopfield", *map(str, args)], code, out.getvalue(), err.getvalue())


def _fresh_process_state(interrupts, pgen, saved_model) -> None:  # noqa: ANN001 (modules)
    """What a new process starts without: a signal received, a checkpoint to name, pgen values in memory."""
    interrupts._received = None
    interrupts.keep(None)
    pgen._shared_model.cache_clear()


V_GENES = ["TRBV5-1*01", "TRBV7-2*01", "TRBV20-1*01", "TRBV28*01"]
J_GENES = ["TRBJ1-1*01", "TRBJ2-7*01", "TRBJ2-1*01"]


def random_junctions(rng: np.random.Generator, n: int) -> list[str]:
    """CDR3-like strings: C + random middle (6-14 residues) + F."""
    letters = np.array(list(AMINO_ACIDS))
    lengths = rng.integers(6, 15, size=n)
    return ["C" + "".join(rng.choice(letters, size=k)) + "F" for k in lengths]


def write_airr(path: Path, rng: np.random.Generator, n: int) -> None:
    """An AIRR TSV with `n` productive rows."""
    rows = ["sequence_id\tjunction_aa\tv_call\tj_call\tduplicate_count\tproductive"]
    for i, junction in enumerate(random_junctions(rng, n)):
        rows.append(f"s{i}\t{junction}\t{rng.choice(V_GENES)}\t{rng.choice(J_GENES)}\t{rng.integers(1, 50)}\tT")
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def cohort(tmp_path: Path) -> tuple[Path, Path]:
    """Six AIRR repertoires of 30-80 rows, half labelled True; returns (metadata, folder)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "repertoires"
    folder.mkdir()
    lines = ["subject_id,filename,label"]
    for i in range(6):
        write_airr(folder / f"rep{i}.tsv", rng, int(rng.integers(30, 80)))
        lines.append(f"P{i},rep{i}.tsv,{'True' if i % 2 else 'False'}")
    metadata = tmp_path / "metadata.csv"
    metadata.write_text("\n".join(lines) + "\n")
    return metadata, folder


def simulated_store(root: Path, settings, folds: int = 4) -> dict:
    """Simulate `settings` (a `SimulationSettings`) under root/cohort, ingest it into root/store.h5 and
    write a split with each class dealt round-robin into `folds` folds; returns the paths and tables."""
    import pandas as pd

    from deeprc_hopfield.ingest import ingest
    from deeprc_hopfield.simulate import simulate

    simulate(settings, root / "cohort", threads=2)
    store = ingest(root / "cohort" / "metadata.csv", root / "cohort" / "repertoires", root / "store.h5",
                   progress=False)
    meta = pd.read_csv(root / "cohort" / "metadata.csv")
    fold = np.zeros(len(meta), dtype=int)
    for label in (0, 1):
        members = np.flatnonzero(meta["label"].to_numpy() == label)
        fold[members] = np.arange(len(members)) % folds
    split = root / "split.csv"
    pd.DataFrame({"subject_id": meta["subject_id"].astype(str), "fold": fold}).to_csv(split, index=False)
    return {"root": root, "store": store, "split": split, "folds": fold, "meta": meta,
            "repertoires": root / "cohort" / "repertoires", "metadata": root / "cohort" / "metadata.csv"}


def junction_repertoire(name: str, junctions: list[str], v_index: list[int]):
    """A store `Repertoire` of these junctions (one template each) with V indices and no J call."""
    from deeprc_hopfield.encoding import encode
    from deeprc_hopfield.store import Repertoire

    codes, lengths = encode(junctions)
    n = len(junctions)
    return Repertoire(name, codes, lengths.astype(np.int64), np.ones(n), np.asarray(v_index, dtype=np.int16),
                      np.full(n, -1, dtype=np.int16))


#: Public clones of the mouse cohort's positives: mouse TRB junctions with mouse V genes (TRBV13-2 is no human gene).
MOUSE_CLONES = [("CASGDAGGRNTLYF", "TRBV13-2*01"), ("CASSQDWGGYEQYF", "TRBV5*01"), ("CASSLRGNQDTQYF", "TRBV13-1*01")]


@pytest.fixture
def mouse_cohort(tmp_path: Path) -> tuple[Path, Path]:
    """Sixteen AIRR repertoires of 100 mouse TRB sequences drawn from OLGA's mouse model (mouse gene names: TRBV13-2,
    TRBV12-1, ...), the eight positives each carrying :data:`MOUSE_CLONES`; returns (metadata, folder)."""
    from deeprc_hopfield.simulate.background import background_model

    model, rng = background_model("TRB", "mouse"), np.random.default_rng(7)
    folder = tmp_path / "mouse"
    folder.mkdir()
    lines = ["subject_id,filename,label"]
    for i in range(16):
        drawn = model.generate(100, rng)
        rows = list(zip(drawn.junction_aa, drawn.v_call, drawn.j_call)) + (
            [(junction, v, "TRBJ2-7*01") for junction, v in MOUSE_CLONES] if i % 2 else [])
        table = ["junction_aa\tv_call\tj_call\tduplicate_count"] + [f"{j}\t{v}\t{jj}\t{1 + k % 5}"
                                                                    for k, (j, v, jj) in enumerate(rows)]
        (folder / f"m{i}.tsv").write_text("\n".join(table) + "\n")
        lines.append(f"M{i},m{i}.tsv,{i % 2}")
    metadata = tmp_path / "mouse_metadata.csv"
    metadata.write_text("\n".join(lines) + "\n")
    return metadata, folder
