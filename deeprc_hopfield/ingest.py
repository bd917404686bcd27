"""Ingest a cohort: metadata + repertoire files -> quality control -> one `RepertoireStore`.

Files are read, checked and encoded in a process pool; the main process writes them to the store
in metadata order as they arrive, so memory stays bounded by a few repertoires whatever the cohort
size. A file that cannot be used (a bad value, nothing left after QC) stops the writing, but every other file is
still read, so that one error names every file's problems (:func:`deeprc_hopfield.errors.files_error`). Any error
leaves no store (and no QC table) behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from deeprc_hopfield.cdr3 import IMGT_CDR3, Cdr3Convention
from deeprc_hopfield.errors import DeepRCError, QCError, StoreError, files_error, named_list
from deeprc_hopfield.genes import is_known_gene
from deeprc_hopfield.interrupts import raise_if_interrupted, worker_pool
from deeprc_hopfield.io import atomic_file, check_output
from deeprc_hopfield.metadata import describe_label, read_metadata
from deeprc_hopfield.qc import QC_COLUMNS, QCSettings, check_repertoire, row_loci
from deeprc_hopfield.readers import read_repertoire_file, tenx
from deeprc_hopfield.species import DEFAULT_SPECIES, SPECIES, check_species
from deeprc_hopfield.store import StoreWriter, is_store_file

log = logging.getLogger(__name__)


@dataclass
class ParsedRepertoire:
    """One repertoire after reading, QC and encoding: what a worker hands to the store writer."""

    source: str
    fmt: str
    sha256: str
    codes: np.ndarray
    lengths: np.ndarray
    counts: np.ndarray
    v_call: pd.Categorical
    j_call: pd.Categorical
    qc: dict[str, int]
    cdr3: Cdr3Convention  # what the file's CDR3 column held (junctions, or IMGT CDR3s given their anchors)
    unresolved_genes: dict[str, int] = field(default_factory=dict)  # V/J names kept as missing, rows of each


def parse_repertoire(path: Path, fmt: str, qc: QCSettings, species: str = DEFAULT_SPECIES) -> ParsedRepertoire:
    """Read, quality-control and encode one repertoire file (runs in a worker process), its V/J names as genes of
    `species`.

    The file's sha256 comes from the reader's pass that checks its field counts, beside the parse.
    """
    read = read_repertoire_file(path, fmt, digest=True, species=species)
    table, detected = read.table, read.fmt
    defaulted = qc.chain is None and detected == tenx.NAME
    if defaulted:
        qc = replace(qc, chain=tenx.DEFAULT_CHAIN)
    checked = check_repertoire(table, qc, read.junctions)
    clean, counts = checked.table, checked.counts
    if len(clean) == 0:
        dropped = ", ".join(f"{k}={v}" for k, v in counts.items() if v and k not in ("input_rows", "kept"))
        raise QCError(f"no sequence left after quality control ({counts['input_rows']} rows; "
                      f"dropped: {dropped or 'none'}){_chain_hint(table, qc.chain, counts, defaulted)}", path)
    if read.cdr3.found == IMGT_CDR3:
        log.info("%s: %s; clones are matched on the CDR3 core", path, read.cdr3.describe())
    for what, missing in (("clone counts", clean["duplicate_count"].isna()), ("V genes", checked.v_call.isna()),
                          ("J genes", checked.j_call.isna())):
        if missing.all():
            log.info("%s: no %s in the file (recorded as missing)", path, what)
    if 0 < counts["count_missing"] < counts["kept"]:
        log.info("%s: %d of %d sequences kept have no clone count (NA or empty in the file): recorded as missing "
                 "(count_missing in the QC table)", path, counts["count_missing"], counts["kept"])
    return ParsedRepertoire(
        source=str(path), fmt=detected, sha256=read.sha256, codes=checked.codes,
        lengths=checked.lengths.astype(np.uint8), counts=clean["duplicate_count"].to_numpy(np.float64),
        v_call=checked.v_call, j_call=checked.j_call, qc=counts,
        cdr3=read.cdr3, unresolved_genes=read.unresolved_genes,
    )


def _chain_hint(table: pd.DataFrame, chain: str | None, counts: dict[str, int], defaulted: bool) -> str:
    """Where rows of another chain than --chain (or 10x's default) were dropped and the file holds none of it: the
    chains it holds."""
    held = row_loci(table).dropna().astype(str).value_counts()
    if not counts.get("other_chain") or any(chain in locus.split("/") for locus in held.index):
        return ""
    which = ", ".join(f"{locus} {n}" for locus, n in held.items())
    if defaulted:
        return f"; the file holds {which}, no {chain} (10x files are read as {chain} unless --chain says otherwise): " \
               "give --chain"
    return f"; the file holds {which}, no {chain} (--chain {chain}): is it of this cohort? Leave it out of the " \
           "metadata table, or give the chain it holds"


def parsed_or_refused(path: Path, fmt: str, qc: QCSettings, species: str = DEFAULT_SPECIES
                      ) -> ParsedRepertoire | DeepRCError:
    """:func:`parse_repertoire`, a user's mistake in the file returned rather than raised (from a worker process
    too), so that the other files are still read and one error names them all."""
    try:
        return parse_repertoire(path, fmt, qc, species)
    except DeepRCError as exc:
        return exc


def note_refused(error: DeepRCError, failed: list[DeepRCError], left: int) -> None:
    """Keep a file's error for the one error at the end; at the first, where `left` files are still to be read, say
    that they are read all the same but that nothing will be written (a long run then stops with every problem, not
    the first)."""
    if not failed and left:
        log.warning("%s; the %d files left are still read, to report every problem at once (nothing will be written)",
                    str(error).splitlines()[0], left)
    failed.append(error)


def _parsed_in_order(files: list[Path], fmt: str, qc: QCSettings, species: str, threads: int
                     ) -> Iterator[ParsedRepertoire | DeepRCError]:
    """Parse files with `threads` processes, yielding in input order with a bounded look-ahead; a file that cannot be
    used gives its error (:func:`parsed_or_refused`)."""
    if threads <= 1:
        for path in files:
            yield parsed_or_refused(path, fmt, qc, species)
        return
    with worker_pool(threads) as pool:
        pending: list[Future] = []
        upcoming = iter(files)
        try:
            for path in upcoming:
                pending.append(pool.submit(parsed_or_refused, path, fmt, qc, species))
                if len(pending) >= 2 * threads:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for future in pending:
                future.cancel()


#: Share of the sequences a second chain must hold before ingest warns that the store pools several.
SEVERAL_LOCI_SHARE = 0.01


def _loci_of(v_call: pd.Categorical) -> Counter[str]:
    """Sequences of each locus (the V gene's first three letters: TRB, IGH, ...) among those with a V call."""
    codes = np.asarray(v_call.codes)
    counts = np.bincount(codes[codes >= 0], minlength=len(v_call.categories))
    loci: Counter[str] = Counter()
    for name, n in zip(v_call.categories, counts):
        loci[str(name)[:3]] += int(n)
    return loci


def _warn_several_loci(loci: Counter[str], chain: str | None, per_subject: dict[str, Counter[str]]) -> None:
    """Warn when the store pools the sequences of several chains (a mixed file, or a file of another chain, without
    --chain): one model would attend them together, and OLGA's pgen is of the commonest chain only. The repertoires
    mostly of another chain than the store's commonest are named (a file of another chain in the folder)."""
    total = sum(loci.values())
    if chain is not None or not total:
        return
    kept = {locus: n for locus, n in loci.items() if n >= SEVERAL_LOCI_SHARE * total}
    commonest = max(loci, key=loci.get)
    others = [f"{subject} ({locus} {n / sum(held.values()):.0%})" for subject, held in per_subject.items()
              for locus, n in held.most_common(1) if locus != commonest and n > sum(held.values()) / 2]
    if len(kept) < 2 and not others:  # one chain, or a trace of another spread over the cohort
        return
    shown = loci if others else kept  # with a repertoire of another chain, every locus, however rare
    shares = ", ".join(f"{locus} {n / total:.1%}" for locus, n in loci.most_common() if locus in shown)
    named = f"; repertoires mostly of another chain than {commonest}: {named_list(others)}" if others else ""
    log.warning("the store holds sequences of several chains (by their V genes: %s)%s; a model pools them, and "
                "chance-public clones are judged by the commonest chain's generation model: give --chain (e.g. "
                "--chain %s) to keep one", shares, named, commonest)


def _warn_unresolved_genes(unresolved: Counter[str], rows: int, species: str) -> None:
    """Warn of V/J names that are no IMGT gene of `species` (another species' genes, typos): kept as missing calls;
    where most of them are genes of another species the package reads, say which `--species` reads them."""
    if not unresolved:
        return
    lost = sum(unresolved.values())
    examples = ", ".join(f"{name} ({n:,})" for name, n in unresolved.most_common(5))
    log.warning("%d distinct V/J names in %s of %s rows (%.1f%%) are no %s IMGT gene and were kept as missing "
                "calls: %s%s; %s", len(unresolved), f"{lost:,}", f"{rows:,}", 100 * lost / max(rows, 1), species,
                examples, " ..." if len(unresolved) > 5 else "", _species_hint(unresolved, species))


#: Share of the unresolved rows that must name genes of another species before it is named as theirs.
OTHER_SPECIES_SHARE = 0.5


def species_of_unresolved(unresolved: Counter[str], species: str) -> tuple[str, int] | None:
    """The other species (:data:`SPECIES`) whose genes most rows of names unresolved as `species` genes name, with
    those rows; None where there is none (typos, a species the package does not read)."""
    lost = sum(unresolved.values())
    for other in (name for name in SPECIES if name != species):
        resolved = sum(n for name, n in unresolved.items() if is_known_gene(name, other))
        if resolved > OTHER_SPECIES_SHARE * lost:
            return other, resolved
    return None


def _species_hint(unresolved: Counter[str], species: str) -> str:
    """What the warning of unresolved names advises: the `--species` whose genes most of their rows are, if any."""
    found = species_of_unresolved(unresolved, species)
    if found is not None:
        other, rows = found
        return f"{rows:,} of these rows name {other} genes: is the cohort {other}? use --species {other} (the " \
               f"workflow: species: {other})"
    return (f"names are read as {species} genes (--species: {', '.join(SPECIES)}), so another species' calls are "
            f"lost or, where a name is also a {species} gene, read as that gene")


def _check_output(out: Path, inputs: list[Path], force: bool) -> None:
    """Refuse, before any work, an output that is a folder, would overwrite an input file, or is taken
    (only an earlier store, and its QC table, are replaced, and only with `force`)."""
    if out.is_dir():
        raise StoreError("--out is a folder; give the store's file name, e.g. cohort.h5", out)
    targets = {out.resolve(), qc_table_path(out).resolve()}
    for path in inputs:
        if path.resolve() in targets:
            raise StoreError(f"--out would overwrite the input file {path}", out)
    check_output(out, "ingest", force, folder=False, recognise=is_store_file)
    check_output(qc_table_path(out), "ingest", force, folder=False, recognise=_is_qc_table)


def _is_qc_table(path: Path) -> bool:
    """Whether `path` is a QC table that `ingest` wrote, by its header."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.readline().rstrip("\n").split("\t")[:2] == ["subject_id", QC_COLUMNS[0]]


def warn_identical_files(subject_ids: list[str], provenance: list[dict]) -> None:
    """Two subjects of byte-identical files (`provenance`: per subject, its file's `source` and `sha256`) are most
    likely one repertoire listed twice, which would sit in training and in a held-out fold at once (ingest), or be
    scored twice as two patients (predict)."""
    digests = pd.Series([row["sha256"] for row in provenance])
    repeated = digests[digests.duplicated(keep=False)]
    for _, rows in repeated.groupby(repeated, sort=False):
        named = ", ".join(f"{subject_ids[k]} ({Path(provenance[k]['source']).name})" for k in rows.index)
        log.warning("subjects %s have byte-identical repertoire files: the same repertoire listed twice?", named)


@contextlib.contextmanager
def _warnings_kept() -> Iterator[list[str]]:
    """The messages this module warns of inside the block, as they are logged: what a store records of its
    cohort's problems (pooled chains, genes of another species, a file listed twice)."""
    kept: list[str] = []

    class Keeper(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record.getMessage())

    keeper = Keeper(logging.WARNING)
    log.addHandler(keeper)
    try:
        yield kept
    finally:
        log.removeHandler(keeper)


def qc_table_path(store_path: Path) -> Path:
    """Where the QC table of a store goes: beside it, `<store stem>.qc.tsv`."""
    return store_path.with_name(store_path.stem + ".qc.tsv")


def ingest(
    metadata: str | Path,
    repertoires: str | Path,
    out: str | Path,
    label_columns: list[str] | None = None,
    fmt: str = "auto",
    qc: QCSettings = QCSettings(),
    threads: int = 1,
    progress: bool = True,
    positive_class: str | None = None,
    force: bool = False,
    species: str = DEFAULT_SPECIES,
    drop_unlabelled: bool = False,
) -> Path:
    """Build a store from a metadata table and a folder of repertoire files, their V/J names read as genes of
    `species` (:data:`deeprc_hopfield.species.SPECIES`), which the store records.

    Returns the store's path. Writes `<store stem>.qc.tsv` beside it (dropped rows by reason, and
    `cdr3`: whether the file gave junctions or IMGT CDR3s, which then got their anchors). An existing
    `out` is replaced only when it is an earlier store and `force`; anything else there is refused. With
    `drop_unlabelled`, subjects with a missing label value are left out (the store's parameters name them). Files
    that cannot be used are refused together, after every file is read (:func:`deeprc_hopfield.errors.files_error`).
    """
    out = Path(out)
    species = check_species(species)
    meta = read_metadata(metadata, repertoires, label_columns, positive_class, drop_unlabelled)
    _check_output(out, [Path(metadata), *meta.files], force)
    for label in meta.labels.values():
        log.info("label '%s': %s", label.name, describe_label(label))
    threads = max(1, min(threads, len(meta.files), os.cpu_count() or 1))
    parameters = {"format": fmt, "label_columns": list(meta.labels), **asdict(qc),
                  "metadata": str(metadata), "repertoires": str(repertoires)}
    if meta.unlabelled:  # who the store lacks, and why (a store without them keeps its earlier parameters)
        parameters["unlabelled_left_out"] = meta.unlabelled
    qc_rows, provenance = [], []
    unresolved: Counter[str] = Counter()
    loci: Counter[str] = Counter()
    per_subject: dict[str, Counter[str]] = {}  # each repertoire's sequences by locus (a few loci each)
    qc_path = qc_table_path(out)
    with StoreWriter(out, parameters, species) as writer, atomic_file(qc_path) as qc_tmp:  # the QC table lands last
        bar = tqdm(total=len(meta.files), unit="rep", desc="ingest", disable=not progress, leave=False)
        failed: list[DeepRCError] = []
        for k, (subject, parsed) in enumerate(zip(meta.subject_ids,
                                                  _parsed_in_order(meta.files, fmt, qc, species, threads))):
            bar.update()
            raise_if_interrupted()
            if isinstance(parsed, DeepRCError):
                note_refused(parsed, failed, len(meta.files) - k - 1)
            if failed:  # no store will be written: the other files are read for their problems alone
                continue
            writer.append(parsed.codes, parsed.lengths, parsed.counts, parsed.v_call, parsed.j_call)
            qc_rows.append(parsed.qc)
            unresolved.update(parsed.unresolved_genes)
            per_subject[subject] = _loci_of(parsed.v_call)
            loci.update(per_subject[subject])
            provenance.append({"source": parsed.source, "sha256": parsed.sha256, "format": parsed.fmt,
                               "cdr3_column": parsed.cdr3.column, "cdr3": parsed.cdr3.found,
                               "cdr3_anchored": f"{parsed.cdr3.anchored:.4f}"})
            log.info("%s: %s, format %s, %s, %d rows, %d sequences kept", subject, parsed.source, parsed.fmt,
                     "junctions" if parsed.cdr3.found != IMGT_CDR3 else "IMGT CDR3s (anchors added)",
                     parsed.qc["input_rows"], parsed.qc["kept"])
        bar.close()
        if failed:
            raise files_error(failed, len(meta.files))
        qc_frame = pd.DataFrame(qc_rows, columns=list(QC_COLUMNS))
        qc_frame.insert(0, "subject_id", meta.subject_ids)
        qc_frame["cdr3"] = [row["cdr3"] for row in provenance]  # what each file gave: junction or imgt_cdr3
        qc_frame.to_csv(qc_tmp, sep="\t", index=False)
        total = qc_frame[list(QC_COLUMNS)].sum()
        with _warnings_kept() as warned:  # logged now, and kept in the store for the report and `inspect`
            warn_identical_files(meta.subject_ids, provenance)
            _warn_unresolved_genes(unresolved, int(total["input_rows"]), species)
            _warn_several_loci(loci, qc.chain, per_subject)
        writer.commit(meta.subject_ids, meta.table["filename"].tolist(), meta.table, meta.labels,
                      qc_frame[list(QC_COLUMNS)], pd.DataFrame(provenance), warnings=warned)
    log.info("wrote %s: %d %s repertoires, %d sequences (%d input rows; %d dropped, %d merged duplicates); QC "
             "table %s", out, len(meta.files), species, total["kept"], total["input_rows"],
             total["input_rows"] - total["kept"] - total["merged_duplicates"], total["merged_duplicates"], qc_path)
    return out
