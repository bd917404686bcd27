"""Shared fixtures: small cohorts written as real files in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeprc_hopfield.encoding import AMINO_ACIDS

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
