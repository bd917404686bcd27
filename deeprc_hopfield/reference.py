"""Reference tables of known receptors (`train --reference FILE`): VDJdb exports and plain tables.

A reference is a table of receptors of known specificity, read once from a file the user has (no
database is downloaded at run time). Three layouts are recognised from the header, column names
compared without regard to case (:func:`detect_reference_format`):

* **VDJdb web export** (`SearchTable-*.tsv` from vdjdb.cdr3.net): `CDR3`, `V`, `J`, `Gene` (the
  chain, TRA/TRB), `Species` (`HomoSapiens`, ...), `Epitope`, `Epitope gene`, `Epitope species`.
* **VDJdb release file** (`vdjdb.txt` or `vdjdb.slim.txt` of a GitHub release): `cdr3`, `v.segm`,
  `j.segm`, `gene`, `species`, `antigen.epitope`, `antigen.gene`, `antigen.species`.
* **VDJdb paired file** (`vdjdb_full.txt` of a release, or a submission chunk of the vdjdb-db
  repository): `cdr3.alpha`, `v.alpha`, `j.alpha`, `cdr3.beta`, `v.beta`, `j.beta`, `species`,
  `antigen.epitope`, `antigen.gene`, `antigen.species` (one of the two CDR3 columns may be absent);
  each row gives one receptor per chain with a CDR3 (a row of neither is read as an empty CDR3), so
  its counts below are per chain: a row with both chains counts twice.
* **Plain table** (TSV or CSV): a CDR3 column `junction_aa` (junctions), `cdr3_aa` (IMGT CDR3s),
  `cdr3` or `cdr3aa` (junctions), and optionally `v_call`, `j_call`, `locus` (or `chain`),
  `species`, `epitope`, `antigen`, `antigen_gene`.

What is kept of each row: the CDR3 as a junction (a file of IMGT CDR3s is recognised from its column
and its anchors and given the conserved C and F/W back, `deeprc_hopfield.cdr3`), V and J calls
normalised as every repertoire's are (`deeprc_hopfield.genes`), the chain, the species, and the
epitope with its antigen (VDJdb's `Epitope species`) and antigen gene (`Epitope gene`).

Rows are dropped, each counted under the first reason that applies (:data:`DROP_REASONS`): another
chain than `chain`, another species than `species`, none of the `antigen` names, an empty CDR3, a
CDR3 with a letter that is not one of the 20 amino acids (a stop `*` included). A row whose chain
or species is unknown is kept (and counted). Rows of one receptor, the same CDR3 core and V family
(the public clones' key, `deeprc_hopfield.public_clones`), are merged into one entry: its first
junction, V, J and chain; its distinct species joined with ';'; its distinct (epitope, antigen,
antigen gene) triples joined with ';' column by column, so the i-th item of `epitope`, `antigen` and
`antigen_gene` describe one epitope; `n_entries` the rows merged. A row without a V call stays an
entry of its own (it matches a clone of any V, so merging it into an entry with a V would narrow
it). So ``n_rows_read = sum(drops) + merged_duplicates + kept``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from deeprc_hopfield.cdr3 import IMGT_CDR3, JUNCTION, Cdr3Convention, add_anchors, core_bounds, recognise
from deeprc_hopfield.data import list_file, shipped_species
from deeprc_hopfield.encoding import residue_flags
from deeprc_hopfield.errors import DeepRCError, InputFormatError
from deeprc_hopfield.genes import LOCI, gene_family, normalise_genes
from deeprc_hopfield.readers.common import parsed_and_scanned, read_columns, read_header
from deeprc_hopfield.species import DEFAULT_SPECIES, check_species

log = logging.getLogger(__name__)

VDJDB = "vdjdb"
PLAIN = "plain"
FORMATS = (VDJDB, PLAIN)
#: Reasons a row is dropped, in the order they are tried.
DROP_REASONS = ("other_chain", "other_species", "other_antigen", "empty_cdr3", "invalid_cdr3")
COUNT_KEYS = ("n_rows_read", *DROP_REASONS, "merged_duplicates", "kept", "chain_unknown", "species_unknown")
#: Columns of :attr:`Reference.table`.
TABLE_COLUMNS = ("junction_aa", "v_call", "j_call", "locus", "species", "epitope", "antigen", "antigen_gene",
                 "n_entries")
_JOINED = ("species", "epitope", "antigen", "antigen_gene")
_MISSING = ("", "NA", "N/A", "nan", "NaN", "None", "null")

# Column of each role, by layout (lower-case names; the file's own spelling is kept when read).
_VDJDB_WEB = {"cdr3": "cdr3", "v_call": "v", "j_call": "j", "locus": "gene", "species": "species",
              "epitope": "epitope", "antigen_gene": "epitope gene", "antigen": "epitope species"}
_VDJDB_RELEASE = {"cdr3": "cdr3", "v_call": "v.segm", "j_call": "j.segm", "locus": "gene", "species": "species",
                  "epitope": "antigen.epitope", "antigen_gene": "antigen.gene", "antigen": "antigen.species"}
#: A paired file: the columns of each chain, then those its two chains share.
VDJDB_PAIRED = {"TRA": {"cdr3": "cdr3.alpha", "v_call": "v.alpha", "j_call": "j.alpha"},
                 "TRB": {"cdr3": "cdr3.beta", "v_call": "v.beta", "j_call": "j.beta"}}
_VDJDB_PAIRED_SHARED = {"species": "species", "epitope": "antigen.epitope", "antigen_gene": "antigen.gene",
                        "antigen": "antigen.species"}
_PAIRED_SOURCE = "VDJdb paired file"
#: CDR3 columns of a plain table, first present wins, with the convention each holds.
_PLAIN_CDR3 = {"junction_aa": JUNCTION, "cdr3_aa": IMGT_CDR3, "cdr3": JUNCTION, "cdr3aa": JUNCTION}
_PLAIN_OTHER = {"v_call": ("v_call", "v_gene", "v"), "j_call": ("j_call", "j_gene", "j"),
                "locus": ("locus", "chain"), "species": ("species",),
                "epitope": ("epitope", "antigen_epitope"), "antigen": ("antigen", "antigen_species", "epitope_species"),
                "antigen_gene": ("antigen_gene", "epitope_gene")}
_CHAIN_WORDS = {"ALPHA": "TRA", "BETA": "TRB", "GAMMA": "TRG", "DELTA": "TRD", "HEAVY": "IGH", "KAPPA": "IGK",
                "LAMBDA": "IGL"}
_SPECIES_WORDS = {"human": "homosapiens", "mouse": "musmusculus", "macaque": "macacamulatta",
                  "rhesus": "macacamulatta", "monkey": "macacamulatta"}
_LOCUS_OF_GENE = re.compile(r"^(?:(TR[ABGD]|IG[HKL])|TCR([ABGD]))[VDJC]")


class ReferenceFileError(DeepRCError):
    """A reference table that cannot be used: missing, unreadable, no CDR3 column, a bad chain value,
    an unknown filter, or nothing left after the filters. (Not `ReferenceError`: Python has one.)"""


@dataclass
class Reference:
    """A table of known receptors and where it came from.

    table: one row per distinct receptor (columns :data:`TABLE_COLUMNS`: `junction_aa` junctions;
    `v_call`, `j_call` IMGT genes, `locus` the chain, None where unknown; `species` the distinct
    species joined with ';'; `epitope`, `antigen`, `antigen_gene` the distinct epitopes joined with
    ';', the i-th item of each column describing one epitope; None where the file gives none;
    `n_entries` the file rows merged into it, int64). name, path, sha256: the file. fmt: the layout
    read (:data:`FORMATS`); source: what the header was recognised as. cdr3: what its CDR3 column
    held. counts: rows by fate (:data:`COUNT_KEYS`). filters: the filters asked for (None = none);
    not_applied: those the file could not apply (a species filter on a file without species).
    """

    table: pd.DataFrame
    name: str
    path: str
    sha256: str
    fmt: str
    source: str
    cdr3: Cdr3Convention
    counts: dict[str, int]
    filters: dict[str, object]
    not_applied: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def n_rows_read(self) -> int:
        return self.counts["n_rows_read"]

    def describe(self) -> str:
        """One line for the log, e.g. `reference vdjdb.tsv (VDJdb web export, sha256 1a2b3c4d5e6f):
        812 receptors from 1,000 rows; filters chain TRB, species HomoSapiens; dropped: ...`."""
        c = self.counts
        parts = [f"reference {self.name} ({self.source}, sha256 {self.sha256[:12]}): "
                 f"{c['kept']:,} receptors from {c['n_rows_read']:,} rows"]
        asked = [f"{k} {','.join(v) if isinstance(v, list) else v}" for k, v in self.filters.items() if v]
        parts.append(f"filters {', '.join(asked)}" if asked else "no filters")
        dropped = [f"{c[r]:,} {r.replace('_', ' ')}" for r in DROP_REASONS if c[r]]
        if dropped:
            parts.append("dropped " + ", ".join(dropped))
        if c["merged_duplicates"]:
            parts.append(f"{c['merged_duplicates']:,} duplicate rows merged")
        if self.filters.get("chain") and c["chain_unknown"]:
            parts.append(f"{c['chain_unknown']:,} receptors of unknown chain kept")
        if self.filters.get("species") and "species" not in self.not_applied and c["species_unknown"]:
            parts.append(f"{c['species_unknown']:,} receptors of unknown species kept")
        if "species" in self.not_applied:
            parts.append("species filter not applied (the file has no species column)")
        if self.cdr3.found == IMGT_CDR3:
            parts.append("IMGT CDR3s given their conserved C and F/W")
        return "; ".join(parts)

    def provenance(self) -> dict:
        """What a saved model records of its reference (JSON-serialisable)."""
        return {
            "name": self.name, "path": self.path, "sha256": self.sha256, "format": self.fmt, "source": self.source,
            "cdr3_column": self.cdr3.column, "cdr3": self.cdr3.found,
            "filters": dict(self.filters), "not_applied": list(self.not_applied),
            "counts": {k: int(v) for k, v in self.counts.items()}, "n_receptors": len(self.table),
        }


@dataclass(frozen=True)
class ReferenceOptions:
    """What `train --reference` is told: the file and its filters (see :func:`read_reference`)."""

    path: str | Path
    chain: str | None = None
    species: str | None = None
    antigen: str | Sequence[str] | None = None

    def read(self, store_species: str = DEFAULT_SPECIES) -> Reference:
        """The file read for a store of `store_species` (see :func:`read_reference`), once
        :meth:`check_species` passes."""
        self.check_species(store_species)
        return read_reference(self.path, self.chain, self.species, self.antigen, store_species=store_species)

    def check_species(self, store_species: str) -> None:
        """Refuse, before reading it, a reference of another species than the store's: a species filter naming
        one, or a shipped list of one (its receptors' V genes would be read as the store's species' genes)."""
        if self.species and _species_key(self.species) != _species_key(store_species):
            raise ReferenceFileError(f"--reference-species {self.species} (the workflow: reference: species:), but "
                                     f"the store is of {store_species} (ingest --species): give a reference of "
                                     f"{store_species} receptors", self.path)
        shipped = shipped_species(self.path)
        if shipped is not None and shipped != store_species:
            raise ReferenceFileError(f"the shipped list {self.path} holds {shipped} receptors, but the store is of "
                                     f"{store_species} (ingest --species): give a reference of {store_species} "
                                     "receptors", self.path)


# --- detection ---------------------------------------------------------------------------------
def detect_reference_format(header: list[str], path: str | Path | None = None) -> tuple[str, str, dict[str, str]]:
    """The layout of a reference table from its header: (format, what it was recognised as, the
    file's column of each role: 'cdr3', 'v_call', 'j_call', 'locus', 'species', 'epitope',
    'antigen', 'antigen_gene'; absent roles are left out).

    Raises
    ------
    ReferenceFileError
        When no CDR3 column is found, naming the columns that were.
    """
    by_lower: dict[str, str] = {}
    for name in header:
        by_lower.setdefault(name.strip().lower(), name.strip())
    names = set(by_lower)
    for roles, source in ((_VDJDB_WEB, "VDJdb web export"), (_VDJDB_RELEASE, "VDJdb release file")):
        if {roles["cdr3"], roles["locus"], roles["species"], roles["epitope"]} <= names:
            return VDJDB, source, {role: by_lower[col] for role, col in roles.items() if col in names}
    paired = {**{f"{role}.{chain}": col for chain, roles in VDJDB_PAIRED.items() for role, col in roles.items()},
              **_VDJDB_PAIRED_SHARED}
    if {"cdr3.alpha", "cdr3.beta"} & names and {"species", "antigen.epitope"} <= names:
        return VDJDB, _PAIRED_SOURCE, {role: by_lower[col] for role, col in paired.items() if col in names}
    cdr3 = next((name for name in _PLAIN_CDR3 if name in names), None)
    if cdr3 is None:
        shown = ", ".join(header[:16]) + (" ..." if len(header) > 16 else "")
        raise ReferenceFileError(
            "reference table needs a CDR3 column: VDJdb's 'CDR3' with 'Gene', 'Species' and 'Epitope', VDJdb's "
            "paired 'cdr3.alpha' and 'cdr3.beta' with 'species' and 'antigen.epitope', or "
            f"one of {', '.join(repr(c) for c in _PLAIN_CDR3)}; found: {shown}", path, line=1)
    columns = {"cdr3": by_lower[cdr3]}
    for role, candidates in _PLAIN_OTHER.items():
        found = next((name for name in candidates if name in names), None)
        if found is not None:
            columns[role] = by_lower[found]
    return PLAIN, f"table with '{by_lower[cdr3]}'", columns


# --- reading -----------------------------------------------------------------------------------
def read_reference(
    path: str | Path,
    chain: str | None = None,
    species: str | None = None,
    antigen: str | Sequence[str] | None = None,
    store_species: str | None = None,
) -> Reference:
    """Read a table of known receptors (plain or gzip; tab or comma separated; see the module docstring).

    Parameters
    ----------
    path
        VDJdb export (web `SearchTable-*.tsv`, release `vdjdb.txt`/`vdjdb.slim.txt`) or plain table.
    chain
        Keep only receptors of this chain (one of :data:`LOCI`, any case), judged from VDJdb's `Gene`
        or a plain table's `locus`/`chain` column, else from the V (then J) call; rows whose chain is
        unknown are kept and counted.
    species
        Keep only receptors of this species (VDJdb's `Species`; compared without case, spaces or
        underscores, so `HomoSapiens` = `homo sapiens`; `human`, `mouse`, `macaque` are understood).
        On a file without a species column it cannot apply: all rows are kept, and the log and
        :attr:`Reference.not_applied` say so.
    antigen
        Keep only receptors whose epitope, antigen (VDJdb's `Epitope species`) or antigen gene is one
        of these names (case-insensitive; a string may list several separated by commas). A file with
        none of these columns is refused.
    store_species
        The species of the store the reference is for (`deeprc_hopfield.species.SPECIES`): V/J names are read as
        its genes (None: human's), and without `species` it is the species filter, where the file has a species
        column; a file none of whose receptors is of it is refused.

    Returns
    -------
    Reference
        One row per distinct receptor with the file's provenance and row counts.

    Raises
    ------
    ReferenceFileError
        One line naming the file (and line and column where one is at fault).
    """
    path = list_file(path)
    chain = _check_chain(chain, path)
    antigens = _antigen_names(antigen)
    genes_of = check_species(store_species or DEFAULT_SPECIES)
    if not path.is_file():
        raise ReferenceFileError("reference file not found", path)
    try:
        header, delimiter = read_header(path)
        fmt, source, columns = detect_reference_format(header, path)
        cdr3_columns = tuple(col for role, col in columns.items() if role.startswith("cdr3"))
        frame, sha256 = parsed_and_scanned(  # every row's field count checked, and the file's sha256, beside
            path, delimiter, lambda: read_columns(path, delimiter, list(dict.fromkeys(columns.values())),
                                                  missing=_MISSING, text=cdr3_columns), digest=True)
    except InputFormatError as exc:
        raise ReferenceFileError(exc.message, exc.path, exc.line, exc.column) from None
    lines = np.arange(len(frame)) + 2  # the file line of each row
    if source == _PAIRED_SOURCE:
        frame, columns, lines = _one_chain_per_row(frame, columns)
    n = len(frame)
    by_store = not species and store_species is not None and "species" in columns  # the store's species filters
    species = genes_of if by_store else species
    filters: dict[str, object] = {"chain": chain, "species": species, "antigen": antigens or None}
    not_applied: list[str] = []
    if species and "species" not in columns:
        not_applied.append("species")
        log.warning("%s: no species column, so --reference-species %s cannot apply: every row is kept", path, species)
    if antigens and not {"epitope", "antigen", "antigen_gene"} & set(columns):
        raise ReferenceFileError(
            f"an antigen filter ({', '.join(antigens)}) needs a column epitope, antigen or antigen_gene; "
            f"found: {', '.join(header)}", path, line=1)

    def column(role: str) -> pd.Series:
        if role not in columns:
            return pd.Series(None, index=frame.index, dtype=object)
        return frame[columns[role]]

    cdr3 = column("cdr3").astype(object).where(column("cdr3").notna(), "").astype(str).str.strip().str.upper()
    v_call, j_call = (normalise_genes(column(role), species=genes_of) for role in ("v_call", "j_call"))
    locus = _locus(column("locus"), columns.get("locus"), path)
    locus = locus.fillna(_locus_of_genes(column("v_call"))).fillna(_locus_of_genes(column("j_call")))
    species_key = _species_keys(column("species"))
    text = {role: _text(column(role)) for role in _JOINED}

    keep = np.ones(n, dtype=bool)
    counts: dict[str, int] = {"n_rows_read": n}
    other_chain = locus.notna().to_numpy() & (locus != chain).to_numpy() if chain else np.zeros(n, dtype=bool)
    _drop(keep, other_chain, counts, "other_chain")
    other_species = np.zeros(n, dtype=bool)
    if species and "species" not in not_applied:
        other_species = species_key.notna().to_numpy() & (species_key != _species_key(species)).to_numpy()
    if by_store and (keep & other_species).any() and not (keep & ~other_species).any():
        raise ReferenceFileError(f"none of its receptors is of the store's species, {genes_of} (ingest --species; the "
                                 f"file has {_held(column('species')[keep])}): give a reference of {genes_of} "
                                 "receptors", path)
    _drop(keep, other_species, counts, "other_species")
    other_antigen = np.zeros(n, dtype=bool)
    if antigens:
        wanted = {a.lower() for a in antigens}
        named = np.zeros(n, dtype=bool)
        for role in ("epitope", "antigen", "antigen_gene"):
            named |= text[role].str.lower().isin(wanted).to_numpy()
        other_antigen = ~named
    _drop(keep, other_antigen, counts, "other_antigen")
    lengths = cdr3.str.len().to_numpy()
    _drop(keep, lengths == 0, counts, "empty_cdr3")
    invalid = np.zeros(n, dtype=bool)
    nonempty = np.flatnonzero(lengths > 0)
    has_stop, has_other, _, _ = residue_flags(cdr3.to_numpy()[nonempty])
    invalid[nonempty] = has_stop | has_other
    if (keep & invalid).any():
        first = int(np.flatnonzero(keep & invalid)[0])
        log.warning("%s: %d CDR3s with letters that are not amino acids dropped (first: line %d, '%s')",
                    path, int((keep & invalid).sum()), lines[first], cdr3.iloc[first])
    _drop(keep, invalid, counts, "invalid_cdr3")

    convention = recognise(cdr3.where(~invalid & (lengths > 0)), columns["cdr3"],
                           _PLAIN_CDR3.get(columns["cdr3"].lower(), JUNCTION) if fmt == PLAIN else JUNCTION, path)
    rows = pd.DataFrame({"junction_aa": cdr3, "v_call": v_call.astype(object).where(v_call.notna(), None),
                         "j_call": j_call.astype(object).where(j_call.notna(), None),
                         "locus": locus, **text}).loc[keep].reset_index(drop=True)
    if convention.found == IMGT_CDR3:
        rows["junction_aa"] = add_anchors(rows["junction_aa"], rows["j_call"], rows["locus"])
    if len(rows) == 0:
        seen = {"other_chain": locus, "other_species": column("species"),
                "other_antigen": text["antigen"] if "antigen" in columns else text["epitope"]}
        raise ReferenceFileError(f"no receptor left: {_fates(counts, filters, seen)}", path)
    table = _merge(rows)
    counts["merged_duplicates"] = len(rows) - len(table)
    counts["kept"] = len(table)
    counts["chain_unknown"] = int(table["locus"].isna().sum())
    counts["species_unknown"] = int(table["species"].isna().sum())
    reference = Reference(table=table, name=path.name, path=str(path.resolve()), sha256=sha256, fmt=fmt,
                          source=source, cdr3=convention, counts=counts, filters=filters,
                          not_applied=tuple(not_applied))
    log.debug("%s", reference.describe())
    return reference


# --- helpers -----------------------------------------------------------------------------------
def _one_chain_per_row(frame: pd.DataFrame, columns: dict[str, str]
                       ) -> tuple[pd.DataFrame, dict[str, str], np.ndarray]:
    """A paired file's rows as one row per chain with a CDR3, in file order (a row of neither kept once,
    its CDR3 and chain empty): the frame, its columns by role, and each row's file line."""
    parts = [_chain_part(frame, columns, chain) for chain in VDJDB_PAIRED]
    held = np.column_stack([part["cdr3"].fillna("").astype(str).str.strip().ne("").to_numpy() for part in parts])
    parts[0].loc[~held.any(axis=1), "locus"] = None  # neither chain: one entry, an empty CDR3
    held[:, 0] |= ~held.any(axis=1)
    out = pd.concat([part[held[:, k]] for k, part in enumerate(parts)])
    order = np.argsort(out.index.to_numpy(), kind="stable")
    shared = [role for role in _VDJDB_PAIRED_SHARED if role in columns]
    roles = {role: role for role in ("cdr3", "v_call", "j_call", "locus", *shared)}
    return out.iloc[order].reset_index(drop=True), roles, out.index.to_numpy()[order] + 2


def _chain_part(frame: pd.DataFrame, columns: dict[str, str], chain: str) -> pd.DataFrame:
    """One chain's columns of a paired file (None where the file lacks one), with the shared ones and `locus`."""
    own = {role: frame[columns[f"{role}.{chain}"]] if f"{role}.{chain}" in columns else None
           for role in VDJDB_PAIRED[chain]}
    shared = {role: frame[columns[role]] for role in _VDJDB_PAIRED_SHARED if role in columns}
    return pd.DataFrame({**own, **shared}, index=frame.index).assign(locus=chain).astype({"locus": object})


def _check_chain(chain: str | None, path: Path) -> str | None:
    """The chain asked for in upper case; one that is not a locus is an error."""
    if chain is None or not str(chain).strip():
        return None
    upper = str(chain).strip().upper()
    if upper not in LOCI:
        raise ReferenceFileError(f"unknown chain '{chain}' for the reference; choose one of {', '.join(LOCI)}", path)
    return upper


def _antigen_names(antigen: str | Sequence[str] | None) -> list[str]:
    """Antigen names asked for: a comma-separated string or a sequence of them, blanks left out."""
    if antigen is None:
        return []
    items = antigen.split(",") if isinstance(antigen, str) else [part for a in antigen for part in str(a).split(",")]
    return list(dict.fromkeys(item.strip() for item in items if item.strip()))


def _drop(keep: np.ndarray, reason_mask: np.ndarray, counts: dict[str, int], reason: str) -> None:
    """Mark rows still kept that fail `reason` as dropped, counting them."""
    hit = keep & reason_mask
    counts[reason] = int(hit.sum())
    keep &= ~hit


def _distinct(raw: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes (-1 = missing) and distinct values (as str) of a column."""
    if not isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.astype(object).where(raw.notna(), None).astype("category")
    return raw.cat.codes.to_numpy(), raw.cat.categories.astype(str)


def _mapped(raw: pd.Series, values: list[str | None]) -> pd.Series:
    """A column with each distinct value replaced by `values` (in the order of :func:`_distinct`)."""
    codes, _ = _distinct(raw)
    lookup = np.array([*values, None], dtype=object)
    return pd.Series(lookup[codes], index=raw.index, dtype=object)


def _locus(raw: pd.Series, column: str | None, path: Path) -> pd.Series:
    """The chain column as IMGT loci (TRB, ...; `beta` etc. understood), None where empty.

    A value that names no chain is an error at its first line."""
    codes, values = _distinct(raw)
    words = [v.strip().upper() for v in values]
    loci = [w if w in LOCI else _CHAIN_WORDS.get(w) for w in words]
    bad = [k for k, locus in enumerate(loci) if locus is None]
    if bad:
        row = int(np.flatnonzero(np.isin(codes, bad))[0])
        raise ReferenceFileError(f"'{values[codes[row]]}' is not a chain (expected one of {', '.join(LOCI)})",
                                 path, line=row + 2, column=column)
    return _mapped(raw, loci)


def _locus_of_genes(raw: pd.Series) -> pd.Series:
    """The chain of each raw V or J call (`TRBV5-1*01` -> TRB, `TCRBV05` -> TRB), None where it names none."""
    _, values = _distinct(raw)
    loci = []
    for value in values:
        match = _LOCUS_OF_GENE.match(value.strip().upper())
        loci.append(None if match is None else (match.group(1) or "TR" + match.group(2)))
    return _mapped(raw, loci)


def _species_key(name: str) -> str:
    """A species name compared without case, spaces or punctuation; common names understood."""
    key = re.sub(r"[^a-z]", "", str(name).lower())
    return _SPECIES_WORDS.get(key, key)


def _species_keys(raw: pd.Series) -> pd.Series:
    """:func:`_species_key` of each value of a column, None where missing."""
    _, values = _distinct(raw)
    return _mapped(raw, [_species_key(v) or None for v in values])


def _held(values: pd.Series) -> str:
    """The values of a column with their rows, commonest first (`HomoSapiens 209`), for a message."""
    return ", ".join(f"{value} {n:,}" for value, n in values.value_counts().head(6).items())


def _text(raw: pd.Series) -> pd.Series:
    """A text column stripped, None where missing or blank."""
    _, values = _distinct(raw)
    return _mapped(raw, [v.strip() or None for v in values])


def _merge(rows: pd.DataFrame) -> pd.DataFrame:
    """One entry per (CDR3 core, V family), in first-seen order: the first junction, V, J and chain
    seen; the distinct species joined with ';'; the distinct (epitope, antigen, antigen gene) triples
    joined with ';' column by column, so that the i-th item of each describes one epitope (an
    item is empty where the file gave no value); `n_entries` the rows merged."""
    junction = rows["junction_aa"]
    offset, _ = core_bounds(junction.str.len().to_numpy())
    core = junction.str.slice(1, -1).where(offset == 1, junction)
    family = _mapped(rows["v_call"], [gene_family(v) for v in _distinct(rows["v_call"])[1]])
    group = pd.DataFrame({"core": core, "family": family}).groupby(["core", "family"], dropna=False, sort=False)
    ids = group.ngroup().to_numpy()  # groups numbered in first-seen order
    table = rows[["junction_aa", "v_call", "j_call", "locus"]].groupby(ids, sort=True).first().reset_index(drop=True)
    table["species"] = _joined(ids, rows[["species"]], len(table))["species"]
    triples = _joined(ids, rows[["epitope", "antigen", "antigen_gene"]], len(table))
    for name in triples:
        table[name] = triples[name]
    table["n_entries"] = np.bincount(ids, minlength=len(table)).astype(np.int64)
    for name in TABLE_COLUMNS[:-1]:
        table[name] = table[name].astype(object).where(table[name].notna(), None)
    return table[list(TABLE_COLUMNS)]


def _joined(ids: np.ndarray, values: pd.DataFrame, n_groups: int) -> pd.DataFrame:
    """Per group (`ids`, 0..n_groups-1), the distinct rows of `values` (all-missing ones left out),
    sorted, each column's items joined with ';' in that one order; None where a group has no value.
    Only groups of several distinct rows are joined in Python (pandas' groupby)."""
    parts = values.fillna("").assign(_id=ids)
    parts = parts[(parts[list(values.columns)] != "").any(axis=1)].drop_duplicates()
    parts = parts.sort_values(["_id", *values.columns], kind="stable")
    several = parts["_id"].duplicated(keep=False).to_numpy()
    single = parts[~several].set_index("_id")
    if several.any():
        single = pd.concat([single, parts[several].groupby("_id")[list(values.columns)].agg(";".join)])
    out = single.reindex(range(n_groups)).astype(object)
    return out.where(out.notna() & (out.apply(lambda col: col.str.strip(";")) != ""), None)


def _fates(counts: dict[str, int], filters: dict[str, object], seen: dict[str, pd.Series]) -> str:
    """What became of a file's rows, for the error when none is left; where a filter took the last
    rows, the values the file has of the column it read (`seen`, by reason), most common first."""
    said = {"other_chain": f"of another chain than {filters.get('chain')}",
            "other_species": f"of another species than {filters.get('species')}",
            "other_antigen": f"not of {', '.join(filters.get('antigen') or [])}",
            "empty_cdr3": "with an empty CDR3", "invalid_cdr3": "with letters that are not amino acids in the CDR3"}
    dropped = [f"{counts[r]:,} {said[r]}" for r in DROP_REASONS if counts.get(r)]
    text = f"{counts['n_rows_read']:,} rows read" + (f"; dropped {'; '.join(dropped)}" if dropped else "")
    last = next((r for r in reversed(DROP_REASONS) if counts.get(r)), None)
    if last in seen:
        top = seen[last].value_counts().head(6)
        if len(top):
            text += f" (the file has: {', '.join(f'{k} {v:,}' for k, v in top.items())})"
    return text
