"""Inference on whole repertoires (never sub-sampled): probabilities per repertoire and the
sequences each repertoire's attention points at. Repertoires come from a store or straight from
repertoire files (read, quality-controlled and encoded as `ingest` does)."""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np
import pandas as pd
import torch
from scipy.special import expit

from deeprc_hopfield.calibration import calibrated_logit
from deeprc_hopfield.donors import SKETCH_FILE, TrainingSketches, clone_sketch
from deeprc_hopfield.encoding import decode
from deeprc_hopfield.errors import DeepRCError, InputFormatError, did_you_mean, files_error, named_list
from deeprc_hopfield.interrupts import raise_if_interrupted
from deeprc_hopfield.io import first_line
from deeprc_hopfield.metadata import MISSING_VALUES
from deeprc_hopfield.model import DEFAULT_CHUNK, SequenceBags
from deeprc_hopfield.progress import LoggedProgress
from deeprc_hopfield.qc import QCSettings, describe_counts
from deeprc_hopfield.saved_model import SavedModel
from deeprc_hopfield.species import DEFAULT_SPECIES
from deeprc_hopfield.store import Repertoire, RepertoireStore, count_column, sequence_digest, sequence_keys

if TYPE_CHECKING:
    from deeprc_hopfield.ingest import ParsedRepertoire

log = logging.getLogger(__name__)


@dataclass
class Subject:
    """One repertoire to classify: its arrays (genes as indices of the model's tables), names and true labels."""

    subject_id: str
    repertoire: Repertoire
    v_names: np.ndarray  # gene names of the sequences, for output tables
    j_names: np.ndarray
    truth: dict[str, object]
    sha256: str | None = None  # of its repertoire file (a store's provenance), to know a training file renamed
    source: str | None = None  # its file, for messages
    unknown_v_share: float = float("nan")  # of its V-called sequences, those whose V gene the model does not know
    warnings: tuple[str, ...] = ()  # what the predictions' warnings column says of it (empty: nothing to say)


def _gene_lookup(source_genes: list[str], model_genes: list[str]) -> np.ndarray:
    """Maps a source's gene indices to the model's (unknown genes -> -1); index -1 maps to -1."""
    position = {g: i for i, g in enumerate(model_genes)}
    return np.array([position.get(g, -1) for g in source_genes] + [-1], dtype=np.int64)


def subjects_from_store(path: str | Path, saved: SavedModel, only: set[str] | None = None,
                        reads_v: bool | None = None) -> Iterator[Subject]:
    """The repertoires of a store (those in `only`, if given), with the model's gene indices and the
    true labels the store has; `reads_v`: whether the models that will score them read V genes (default: whether
    `saved` does; an ensemble's folds may differ: :func:`reads_v_genes` of any)."""
    with RepertoireStore(path) as store:
        check_store_species(store, saved)
        _warn_other_qc(store, saved)
        v_map, j_map = _gene_lookup(store.v_genes, saved.v_genes), _gene_lookup(store.j_genes, saved.j_genes)
        reads_v = reads_v_genes(saved) if reads_v is None else reads_v
        v_names = np.array(store.v_genes + [None], dtype=object)
        j_names = np.array(store.j_genes + [None], dtype=object)
        labels = {name: store.label(name) for name in saved.labels if name in store.label_names}
        provenance = store.provenance()  # read once for both
        digests, sources = store_digests(store, provenance), store_sources(store, provenance)
        for i in range(len(store)):
            if only is not None and store.subject_ids[i] not in only:
                continue
            rep = store.repertoire(i)
            truth = {name: (label.classes[label.values[i]] if label.kind != "numeric" else float(label.values[i]))
                     for name, label in labels.items()}
            v_index = v_map[rep.v_index]
            share, note = _unknown_genes(store.subject_ids[i], rep.v_index >= 0, v_index, v_names[rep.v_index],
                                         saved.v_genes, sources.get(store.subject_ids[i]), reads_v)
            yield Subject(store.subject_ids[i],
                          Repertoire(rep.subject_id, rep.codes, rep.lengths, rep.counts, v_index, j_map[rep.j_index]),
                          v_names[rep.v_index], j_names[rep.j_index], truth, digests.get(store.subject_ids[i]),
                          sources.get(store.subject_ids[i]), share, (note,) if note else ())


def store_digests(store: RepertoireStore, provenance: pd.DataFrame | None = None) -> dict[str, str]:
    """The sha256 of each subject's repertoire file as ingest read it (from the store's provenance, read here unless
    given; none for a store that did not record them)."""
    provenance = store.provenance() if provenance is None else provenance
    return dict(zip(store.subject_ids, provenance["sha256"])) if "sha256" in provenance else {}


def store_sources(store: RepertoireStore, provenance: pd.DataFrame | None = None) -> dict[str, str]:
    """The repertoire file each subject of a store was ingested from (its provenance, read here unless given), for
    messages."""
    provenance = store.provenance() if provenance is None else provenance
    return dict(zip(store.subject_ids, provenance["source"])) if "source" in provenance else {}


#: A file's subject id without --metadata: its name less a gzip extension, then less one of these (case aside).
TABLE_EXTENSIONS = (".tsv", ".csv", ".txt", ".tab", ".tabular", ".airr")
#: ... then less the part MiXCR's `analyze` names its clone tables with after the sample's prefix: MiXCR 4's
#: `<prefix>.clones_TRB.tsv` (one file a chain: TRA, TRB, TRAD, IGH, ...; `<prefix>.clones.tsv` unsplit) and MiXCR
#: 3's `<prefix>.clonotypes.TRB.txt` (`.clonotypes.ALL.txt` for every chain).
_MIXCR_CHAIN = r"(TRAD|TR[ABDG]|IG[HKL]|ALL)"
MIXCR_SUFFIX = re.compile(rf"(?i)(?<=.)\.(clones(_{_MIXCR_CHAIN})?|clonotypes\.{_MIXCR_CHAIN})$")


def file_subject_id(path: Path) -> str:
    """The subject id of a repertoire file named in no metadata: `Pat.day0.tsv.gz` -> `Pat.day0`,
    `rep1.airr.tsv` -> `rep1`, MiXCR's `PT03.clones_TRB.tsv` and `PT03.clonotypes.TRB.txt` -> `PT03`."""
    return MIXCR_SUFFIX.sub("", _table_name(path))


def _table_name(path: Path) -> str:
    """A file's name less a gzip extension, then less its :data:`TABLE_EXTENSIONS`."""
    name = path.name
    if name.lower().endswith((".gz", ".gzip")):
        name = name[:name.rindex(".")]
    stem, dot, extension = name.rpartition(".")
    while dot and stem and f".{extension.lower()}" in TABLE_EXTENSIONS:
        name = stem
        stem, dot, extension = name.rpartition(".")
    return name


@dataclass
class FileEntry:
    """One repertoire file to score: its subject, its path, and its true labels (from the metadata; None where
    the metadata leaves one missing)."""

    subject_id: str
    path: Path
    truth: dict[str, object]


def file_entries(folder: str | Path, metadata: str | Path | None, labels: Iterable[str] = ()) -> list[FileEntry]:
    """The repertoire files of `folder` to score: those the `metadata` names (with its subject ids and the true
    values of `labels` it has), else every file in the folder but this package's own outputs, named by
    :func:`file_subject_id` (`folder` may be one file: that patient alone). Two files of one subject id are
    refused."""
    from deeprc_hopfield.metadata import read_metadata

    folder = Path(folder)
    if metadata is not None and folder.is_file():
        raise DeepRCError("--metadata names files in a folder: give --repertoires the folder, not one file", folder)
    if metadata is not None:
        meta = read_metadata(metadata, folder, [])  # true labels may be missing: a new patient's is often unknown
        _note_other_label_columns(metadata, list(meta.table.columns), list(labels))
        truth = {name: meta.class_names(name).astype(object).where(lambda v: v.notna(), None).tolist()
                 for name in labels if name in meta.table}
        return [FileEntry(sid, path, {name: values[k] for name, values in truth.items()})
                for k, (sid, path) in enumerate(zip(meta.subject_ids, meta.files))]
    if folder.is_file():  # one patient's file: scored alone, named as in a folder
        return [FileEntry(file_subject_id(folder), folder, {})]
    if not folder.is_dir():
        raise DeepRCError("repertoire folder (or file) not found", folder)
    entries = [FileEntry(file_subject_id(p), p, {}) for p in _repertoire_files(folder)]
    first: dict[str, Path] = {}
    for entry in entries:
        if entry.subject_id in first:
            mixcr = (" (MiXCR writes a clone table for each chain: keep those of the model's chain in the folder)"
                     if all(MIXCR_SUFFIX.search(_table_name(p)) for p in (first[entry.subject_id], entry.path)) else "")
            raise DeepRCError(f"files {first[entry.subject_id].name} and {entry.path.name} would both be subject "
                              f"'{entry.subject_id}' (a file's name less its extensions){mixcr}; rename one, or name "
                              "the subjects with --metadata", folder)
        first[entry.subject_id] = entry.path
    return entries


def _note_other_label_columns(metadata: str | Path, columns: list[str], labels: list[str]) -> None:
    """A metadata table without the model's label column but with others (`CMV_status` for `label`) gives no true
    labels: say so, naming both, rather than leave true_label out without a word."""
    from deeprc_hopfield.metadata import REQUIRED_COLUMNS

    others = [c for c in columns if c not in REQUIRED_COLUMNS]
    missing = [name for name in labels if name not in columns]
    if missing and others:
        log.warning("%s: no column %s (the model's label), so the predictions get no true label; its other columns "
                    "are %s: rename the one that holds the label to '%s' to have it compared", metadata,
                    " or ".join(f"'{name}'" for name in missing), named_list(others, 8), missing[0])


def _repertoire_files(folder: Path) -> list[Path]:
    """The files of `folder` that may be repertoires: not hidden, not an output of this package (noted)."""
    names = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    broken = [p.name for p in names if not p.exists()]
    if broken:
        log.warning("note: %d broken link(s) in %s skipped: %s", len(broken), folder, named_list(broken))
    folders = [p.name for p in names if p.is_dir()]
    if folders:
        log.info("note: %d folder(s) in %s are not read (only the folder's own files are): %s", len(folders), folder,
                 named_list(folders))
    files = [p for p in names if p.is_file()]
    own = [p for p in files if _is_own_output(p)]
    if own:
        log.info("note: %d file(s) in %s are outputs of deeprc-hopfield, not repertoires, and are skipped: %s",
                 len(own), folder, named_list([p.name for p in own]))
    files = [p for p in files if p not in own]
    if not files:
        raise DeepRCError("no repertoire files in the folder", folder)
    return files


def _is_own_output(path: Path) -> bool:
    """A predictions, attended-sequence or attention file that `predict`/`attend` wrote (by their headers)."""
    from deeprc_hopfield.attention_file import is_attention_file

    return is_predictions_table(path) or is_attended_table(path) or is_attention_file(path)


def subjects_from_files(entries: list[FileEntry], saved: SavedModel, fmt: str = "auto",
                        chain: str | None = None, reads_v: bool | None = None) -> Iterator[Subject]:
    """The repertoire files of `entries` (:func:`file_entries`) read, quality-controlled and encoded as `ingest`
    does, as `fmt` (``predict --format``; 'auto': each file's own), with the QC settings and species of the store
    the model was trained on (the defaults and human for an older model), its chain replaced by `chain` where given
    (``predict --chain``: the locus to keep of files that hold several); each file's dropped rows by reason are
    logged. As in `ingest`, a file that cannot be used stops the scoring, but every other file is still read, and
    one error names every file's problems (:func:`deeprc_hopfield.errors.files_error`) before anything is written.
    `reads_v` as in :func:`subjects_from_store`."""
    qc, species = qc_settings(saved), model_species(saved)
    if chain is not None:
        qc = replace(qc, chain=chain)
    if species != DEFAULT_SPECIES:
        log.info("gene names of the files are read as %s genes (the species of the model's store)", species)
    from deeprc_hopfield.ingest import note_refused, warn_identical_files

    v_pos = {g: i for i, g in enumerate(saved.v_genes)}
    reads_v = reads_v_genes(saved) if reads_v is None else reads_v
    j_pos = {g: i for i, g in enumerate(saved.j_genes)}
    unresolved: Counter[str] = Counter()
    provenance: list[dict] = []
    failed: list[DeepRCError] = []
    for k, entry in enumerate(entries):
        try:
            parsed = _parsed(entry, fmt, qc, species)
        except DeepRCError as exc:
            note_refused(exc, failed, len(entries) - k - 1)
            continue
        if failed:  # nothing will be written: the other files are read for their problems alone
            continue
        unresolved.update(parsed.unresolved_genes)
        provenance.append({"source": parsed.source, "sha256": parsed.sha256})
        log.info("%s: %s, format %s, %s", entry.subject_id, entry.path, parsed.fmt, describe_counts(parsed.qc))
        v_names = np.asarray(parsed.v_call, dtype=object)
        j_names = np.asarray(parsed.j_call, dtype=object)
        v_index = np.array([v_pos.get(g, -1) for g in parsed.v_call.categories] + [-1])[parsed.v_call.codes]
        j_index = np.array([j_pos.get(g, -1) for g in parsed.j_call.categories] + [-1])[parsed.j_call.codes]
        share, note = _unknown_genes(entry.subject_id, parsed.v_call.codes >= 0, v_index, v_names, saved.v_genes,
                                     str(entry.path), reads_v)
        rep = Repertoire(entry.subject_id, parsed.codes, parsed.lengths, parsed.counts, v_index, j_index)
        yield Subject(entry.subject_id, rep, v_names, j_names, entry.truth, parsed.sha256, str(entry.path), share,
                      (note,) if note else ())
    if failed:
        raise files_error(failed, len(entries))
    _warn_other_species(unresolved, species)
    warn_identical_files([entry.subject_id for entry in entries], provenance)


def _warn_other_species(unresolved: Counter[str], species: str) -> None:
    """Warn when most V/J names the files gave that are no gene of the model's species are another species' genes:
    repertoires of another species than the model learnt from, whose scores mean little."""
    from deeprc_hopfield.ingest import species_of_unresolved

    found = species_of_unresolved(unresolved, species)
    if found is not None:
        log.warning("%s rows of the files name %s V/J genes (e.g. %s), kept as missing calls: the model was trained "
                    "on %s repertoires, and scores of %s ones mean little", f"{found[1]:,}", found[0],
                    ", ".join(name for name, _ in unresolved.most_common(3)), species, found[0])


#: Share of a repertoire's V-called sequences whose V gene the model never saw (another locus than its store held,
#: or a gene of it that training never met) above which scoring warns: a TRA/TRB file of one 10x sample (half TRA)
#: is well above it, the odd rare TRBV gene of a TRB repertoire well below.
UNKNOWN_V_WARNING = 0.1
#: Columns that `predict` adds at the end of every prediction row: the share of the repertoire's V-called sequences
#: whose V gene the model does not know (empty where none has a V call), and notes on a subject whose score may mean
#: little (empty for a clean one; several are joined by :data:`WARNINGS_SEPARATOR`).
UNKNOWN_V_COLUMN = "unknown_v_share"
WARNINGS_COLUMN = "warnings"
WARNINGS_SEPARATOR = " | "
#: Significant digits of the probabilities (and their spread) and of the unknown V share that `predict` writes: a
#: float32 model output has no more to give, and float64's 16 digits only make the table harder to read. Significant
#: digits, not decimals: a confident call's 3e-9 must stay below a less confident one's 2e-8, or the held-out AUC
#: that `evaluate` reads from these files would count ties across the classes.
SIGNIFICANT_DIGITS = 7


def written(value: float) -> float:
    """A value as `predict` writes it (:data:`SIGNIFICANT_DIGITS`)."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _locus(gene: object) -> str:
    """A V gene's locus, as ingest counts them (:func:`deeprc_hopfield.ingest._loci_of`): its first three letters."""
    return str(gene)[:3].upper()


def unknown_v_share(called: np.ndarray, unknown: np.ndarray) -> float:
    """Share of a repertoire's sequences with a V call (`called`, (n,) bool) whose V call the model does not know
    (`unknown`, (n,) bool: :func:`unknown_v_calls`): the predictions' :data:`UNKNOWN_V_COLUMN`. NaN where no
    sequence has a V call (nothing to tell by)."""
    n_called = int(called.sum())
    return float((called & unknown).sum() / n_called) if n_called else float("nan")


def unknown_v_calls(called: np.ndarray, v_index: np.ndarray, v_names: np.ndarray, model_genes: list[str]
                    ) -> np.ndarray:
    """Which sequences' V calls are unknown to the model, bool (n,): called (`called`, (n,) bool), not in its gene
    table (`v_index`, (n,) its gene indices, -1 for none) and not a call of a family alone whose genes it knows.

    immunoSEQ gives the family alone where it could not resolve the gene (`v_gene` 'unresolved', `v_family`
    `TCRBV10`: `v_names` says `TRBV10`), on about a fifth of the rows of an ordinary export; the model's table holds
    the genes (`TRBV10-1`, `TRBV10-3`), so the call is no row of it and is embedded as a missing call would be. It is
    no gene of another chain or species, which is what this share is to catch, so it is not counted as unknown (nor
    is a missing call: `called` is false). A family the model knows no gene of counts, as a gene of it would.
    """
    from deeprc_hopfield.genes import gene_family

    unknown = called & (v_index < 0)
    rows = np.flatnonzero(unknown)
    if rows.size == 0:
        return unknown
    codes, names = pd.factorize(pd.Series(v_names[rows], dtype=object))  # a few hundred names, whatever n
    families = {gene_family(g) for g in model_genes}
    family_only = np.array([gene_family(str(name)) == str(name) and str(name) in families for name in names] +
                           [False])  # the last place: a code of -1 (no name)
    unknown[rows[family_only[codes]]] = False
    return unknown


def reads_v_genes(saved: SavedModel) -> bool:
    """Whether a model's score can depend on its sequences' V genes: it embeds them (`gene_embedding_dim` > 0), or its
    clone memory or reference of known receptors keys its matches on V (a V level other than 'none'). A model that
    reads none (the default `gene_embedding_dim` 0, no memory of V-keyed clones) scores the CDR3s alone: a V gene it
    does not know cannot change its score, though another chain's genes still say that its CDR3s are another
    chain's. A model object this cannot look into (none loaded) is taken to read them."""
    model = saved.model
    if not isinstance(model, torch.nn.Module):
        return True
    if getattr(getattr(model, "embedder", None), "v_embedding", None) is not None:
        return True
    for memory in (getattr(model, "memory", None), getattr(model, "reference", None)):
        codes = getattr(memory, "v_codes", None)
        if isinstance(codes, torch.Tensor) and bool((codes >= 0).any()):
            return True
    return False


def _unknown_genes(subject_id: str, called: np.ndarray, v_index: np.ndarray, v_names: np.ndarray,
                   model_genes: list[str], source: str | None = None, reads_v: bool = True) -> tuple[float, str]:
    """The share of a repertoire's V-called sequences whose V gene is unknown to the model (:func:`unknown_v_calls`,
    :func:`unknown_v_share`) and, above :data:`UNKNOWN_V_WARNING`, a short note for the predictions'
    :data:`WARNINGS_COLUMN` (else ''), so that whoever reads only predictions.csv sees it: another chain than the
    model learnt from (a TRA repertoire to a TRB model, TRA and TRB contigs of one 10x sample) or another species,
    whose score means little. Above it, a warning is logged too, naming the file, the share, the loci and, where
    other loci than the model's store held are among them, the `--chain` that keeps the model's.

    Where every unknown gene is of a locus the model knows (genes its training never met, or another species' named
    like the model's), what they do depends on whether the model reads V genes (`reads_v`: :func:`reads_v_genes`):
    if it does, they are embedded (and matched) as unknown, and the warning and note say so; if not, they cannot
    change its score, and only an INFO line says the share. Another locus is warned of either way: its CDR3s are
    another chain's, whatever the model does with the genes."""
    unknown = unknown_v_calls(called, v_index, v_names, model_genes)
    share = unknown_v_share(called, unknown)
    if not share > UNKNOWN_V_WARNING:  # NaN (no V call) included
        return share, ""
    names = pd.Series(v_names[unknown]).astype(str)
    loci = names.str[:3].str.upper().value_counts()  # as _locus, vectorised: a million names at most
    known_loci = sorted({_locus(g) for g in model_genes})
    n_called = int(called.sum())
    shares = ", ".join(f"{locus} {n / n_called:.0%}" for locus, n in loci.items())
    seen = ", ".join(sorted(set(names.iloc[:1000]))[:3])
    other = [locus for locus in loci.index if locus not in known_loci]
    where = f"{subject_id}{f' ({source})' if source else ''}"
    if not other and not reads_v:
        log.info("%s: %d%% of its sequences' V genes (%s; e.g. %s) are genes of %s that the model's training never "
                 "met; the model reads no V genes, so they do not change its score", where, round(100 * share),
                 shares, seen, ", ".join(known_loci))
        return share, ""
    hint = (f"; give --chain {known_loci[0]} to score its {known_loci[0]} sequences alone" if other and
            len(known_loci) == 1 else f"; give --chain with the model's locus ({', '.join(known_loci)})" if other
            else "")
    why = (("another chain or species than it learnt from? its score means little" + (
               " (the model reads no V genes, so these do not change its score, but its CDR3s are of a chain it "
               "never learnt)" if not reads_v else "")) if other else
           "genes of its locus that its training never met, embedded as unknown: another species than it learnt "
           "from, or genes its store lacked? its score may mean little")
    log.warning("%s: %d%% of its sequences' V genes are unknown to the model (by locus: %s; e.g. %s; the model's "
                "store held %s: %s, ...): %s%s", where, round(100 * share), shares, seen, ", ".join(known_loci),
                ", ".join(model_genes[:3]), why, hint)
    return share, _unknown_genes_note(share, loci / n_called, known_loci, bool(other))


def _unknown_genes_note(share: float, by_locus: pd.Series, known_loci: list[str], other: bool = True) -> str:
    """The predictions' note on a repertoire whose V genes the model largely does not know: the share, by locus
    (`by_locus`: locus -> share of the V-called sequences; names that are no locus counted as `other`) and the
    loci the model knows; where none is of `other` loci than those, that they are genes of its own locus it never
    met. Without commas or quotes, so that the CSV cell needs no quoting."""
    from deeprc_hopfield.genes import LOCI

    grouped = by_locus.groupby(by_locus.index.where(by_locus.index.isin(LOCI), "other"), sort=False).sum()
    shares = " / ".join(f"{locus} {value:.0%}" for locus, value in grouped.sort_values(ascending=False).items())
    if not other:
        return (f"{share:.0%} of V genes unknown to the model ({shares}: genes of its locus its training never met): "
                "another species than it learnt from? its score may mean little")
    return (f"{share:.0%} of V genes unknown to the model ({shares}; it knows {' / '.join(known_loci)}): "
            "another chain or species than it learnt from? its score means little")


def _parsed(entry: FileEntry, fmt: str, qc: QCSettings, species: str) -> ParsedRepertoire:
    """One file read as `ingest` reads it; a file of no repertoire format is refused with how to leave it out."""
    from deeprc_hopfield.ingest import parse_repertoire

    try:
        return parse_repertoire(entry.path, fmt, qc, species)
    except InputFormatError as exc:
        if not exc.message.startswith("unrecognised repertoire format"):
            raise
        raise InputFormatError(f"{exc.message}; not a repertoire? move it out of the folder, or name the files to "
                               "read with --metadata (the workflow: new_metadata)", exc.path, exc.line) from None


def qc_settings(saved: SavedModel) -> QCSettings:
    """The QC of the store a model was trained on (`config.json`'s training `qc`; the defaults for older models)."""
    kept = saved.training.get("qc", {})
    return QCSettings(**{f.name: kept[f.name] for f in fields(QCSettings) if f.name in kept})


def model_species(saved: SavedModel) -> str:
    """Whose genes a model learnt: its store's species (`config.json`'s training `species`; human for older models)."""
    return saved.training.get("species", DEFAULT_SPECIES)


def check_store_species(store: RepertoireStore, saved: SavedModel) -> None:
    """Refuse a store of another species than the model's store: its V/J genes are another species' (a mouse TRBV1
    is not a human TRBV1), and its score would mean little."""
    if store.species != model_species(saved):
        raise DeepRCError(f"a {store.species} store (ingest --species), but the model {saved.path} was trained on "
                          f"{model_species(saved)} repertoires: score it with a model of {store.species} "
                          "repertoires", store.path)


def _warn_other_qc(store: RepertoireStore, saved: SavedModel) -> None:
    """A store ingested with other QC settings than the model's store holds other sequences than it learnt from."""
    if "qc" not in saved.training:
        return
    wanted, used = asdict(qc_settings(saved)), store.parameters
    differ = {k: used[k] for k, v in wanted.items() if k in used and used[k] != v}
    if differ:
        log.warning("%s was ingested with other QC settings than the model's store (%s against %s)", store.path,
                    ", ".join(f"{k} {v}" for k, v in differ.items()), ", ".join(f"{k} {wanted[k]}" for k in differ))


def subject_groups(table: pd.DataFrame, column: str | None, path: str | Path) -> dict[str, str] | None:
    """Each subject's group (e.g. donor) from column `column` of a metadata table (`path`, named in errors);
    None without a column. A subject with no value in it has no group."""
    if column is None:
        return None
    if column not in table.columns:
        raise DeepRCError(f"--group-column '{column}' is not a column of the metadata table (columns: "
                          f"{named_list(list(table.columns), 8)}){did_you_mean(column, table.columns)}", path)
    values = table[column].astype("string").str.strip()
    kept = values.notna() & ~values.str.lower().isin(MISSING_VALUES)
    return dict(zip(table["subject_id"].astype(str)[kept], values[kept]))


def store_subject_ids(path: str | Path, only: set[str] | None = None) -> list[str]:
    """The subject ids :func:`subjects_from_store` yields (those in `only`, if given), in store order."""
    with RepertoireStore(path) as store:
        return [s for s in store.subject_ids if only is None or s in only]


def predict_outputs(model: torch.nn.Module, repertoires: Iterable[Repertoire], device: torch.device,
                    chunk_size: int = DEFAULT_CHUNK) -> dict[str, torch.Tensor]:
    """Raw model outputs per task for whole repertoires, one repertoire at a time (bounded memory)."""
    outputs: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for rep in repertoires:
            result = model(SequenceBags.from_repertoires([rep]).to(device), chunk_size=chunk_size)
            for name, value in result.outputs.items():
                outputs.setdefault(name, []).append(value.float().cpu())
    return {name: torch.cat(values) for name, values in outputs.items()}


def task_scores(kind: str, output: torch.Tensor, calibration: dict | None = None) -> np.ndarray:
    """Scores from raw outputs of B repertoires: P(positive) (binary, (B,); through the model's
    `calibration` of the logit when given), class probabilities (categorical, (B, k)) or the value
    (numeric, (B,))."""
    output = output.detach().float().cpu()
    if kind == "binary":
        logit = calibrated_logit(output.reshape(-1).double().numpy(), calibration)
        return expit(logit).astype(np.float32)
    if kind == "categorical":
        return torch.softmax(output, dim=-1).numpy()
    return output.reshape(-1).numpy()


def call_columns(labels: dict[str, dict]) -> list[str]:
    """The columns of a prediction row that make the call of a repertoire (:func:`_prediction_columns` less the
    spreads): per label, its probability (binary) or one per class (categorical), then `predicted`; each prefixed by
    the label's name where the model has several. The attended table repeats them on every row of the repertoire."""
    single, columns = len(labels) == 1, []
    for name, label in labels.items():
        prefix = "" if single else f"{name}_"
        if label["kind"] == "binary":
            columns.append(f"{prefix}probability")
        elif label["kind"] == "categorical":
            columns += [f"{prefix}probability_{cls}" for cls in label["classes"]]
        columns.append(f"{prefix}predicted")
    return columns


def _prediction_columns(labels: dict[str, dict], scores: dict[str, np.ndarray],
                        ensemble: bool | None = None) -> dict[str, object]:
    """Columns of one prediction row from the scores of one or more models (shape (n_models, k)).

    The mean over models is the prediction; for an `ensemble` (default: several models scored it) the standard
    deviation across its models is given too, as `<column>_sd`: NaN where one model alone scored the repertoire
    (the others were fitted or validated on it), so that every row has the same columns. Probabilities and their
    spread are rounded to :data:`SIGNIFICANT_DIGITS`, and a binary label's `predicted` is that of the rounded probability
    (>= 0.5), so that the row read alone never contradicts itself.
    """
    if ensemble is None:
        ensemble = len(next(iter(scores.values()), ())) > 1
    row: dict[str, object] = {}
    single = len(labels) == 1
    for name, label in labels.items():
        prefix = "" if single else f"{name}_"
        values = scores[name]
        mean, spread = values.mean(axis=0), values.std(axis=0)
        if label["kind"] == "binary":
            columns = {f"{prefix}probability": 0}
            predicted = label["classes"][int(written(float(mean[0])) >= 0.5)]
        elif label["kind"] == "categorical":
            columns = {f"{prefix}probability_{cls}": k for k, cls in enumerate(label["classes"])}
            predicted = label["classes"][int(np.argmax(mean))]
        else:
            columns, predicted = {}, float(mean[0])
        for column, k in columns.items():
            row[column] = written(float(mean[k]))
            if ensemble:
                row[f"{column}_sd"] = written(float(spread[k])) if len(values) > 1 else float("nan")
        row[f"{prefix}predicted"] = predicted
        if label["kind"] == "numeric" and ensemble:
            row[f"{prefix}predicted_sd"] = float(spread[0]) if len(values) > 1 else float("nan")
    return row


def load_models(path: str | Path | list[str | Path], device: torch.device) -> list[SavedModel]:
    """One model directory, a folder of them (the fold models of a cross-validation: an ensemble), or a list
    of model directories (an ensemble of just those, as the workflow names this run's folds)."""
    from deeprc_hopfield.saved_model import CONFIG_FILE, ModelFileError, load_model, model_members

    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    if len(paths) > 1:
        models = [load_model(p, device) for p in paths]
        _check_ensemble(models, paths[0].parent)
        return models
    path = paths[0]
    if (path / CONFIG_FILE).is_file() or not path.is_dir():
        return [load_model(path, device)]
    members = model_members(path)
    if not members:
        raise ModelFileError("neither a model directory nor a folder of model directories", path)
    models = [load_model(p, device) for p in members]
    _check_ensemble(models, path)
    return models


def _check_ensemble(models: list[SavedModel], where: Path) -> None:
    """Models averaged together must share labels, gene tables and species (trained on one store)."""
    from deeprc_hopfield.saved_model import ModelFileError

    def trained_on(model: SavedModel) -> tuple:
        return model.labels, model.v_genes, model.j_genes, model_species(model)

    for other in models[1:]:
        if trained_on(other) != trained_on(models[0]):
            raise ModelFileError(f"{other.path} has other labels, gene tables or species than {models[0].path}; "
                                 "an ensemble needs models trained on the same store", where)
    log.info("ensemble of %d models from %s: %s", len(models), where, ", ".join(_model_name(m) for m in models))
    _warn_other_cross_validations(models, where)


def _overlapping_held_out(seen: list[set[str]]) -> bool:
    """Whether two of the models (their training subjects `seen`) held out a subject in common: the folds of one
    split hold out disjoint parts of the subjects any of them trained on (models trained on a whole cohort, none)."""
    everyone = set().union(*seen)
    held: set[str] = set()
    for subjects in seen:
        out = everyone - subjects
        if held & out:
            return True
        held |= out
    return False


def _warn_other_cross_validations(models: list[SavedModel], where: Path) -> None:
    """Warn where an ensemble's models are not folds of one cross-validation: two of them held out a subject in
    common. A fold model of an earlier run with more folds left beside this run's (the workflow after `folds` was
    lowered) does, and would be averaged in."""
    seen = [training_subjects(saved) for saved in models]
    if len(models) < 2 or not all(seen) or not _overlapping_held_out(seen):
        return
    odd = [_model_name(saved) for i, saved in enumerate(models)  # those without which the rest are one split's
           if len(models) > 2 and not _overlapping_held_out(seen[:i] + seen[i + 1:])]
    log.warning("the %d models of %s are not the folds of one cross-validation (two of them held out a subject in "
                "common): %s may be of another split, e.g. a fold model of an earlier run with more folds; remove the "
                "models that are not of this run, or name this run's with --model DIR1 DIR2 ...", len(models), where,
                ", ".join(odd) if odd else "some")


#: Subjects a refusal names before "and N more".
NAMED_SUBJECTS = 5
#: Column that `--allow-training-subjects` adds to the outputs: was the subject scored by a model that
#: was fitted or validated on it?
TRAINING_SUBJECT_COLUMN = "scored_by_training_model"


class TrainingSubjectsError(DeepRCError):
    """Subjects to score that a model was fitted or validated on: their scores would not be held-out ones."""


def training_subjects(saved: SavedModel) -> set[str]:
    """The subjects a model was fitted or validated on (`fit_subjects`, `validation_subjects` of its config)."""
    return set(saved.training.get("fit_subjects", ())) | set(saved.training.get("validation_subjects", ()))


def held_out_models(models: list[SavedModel], subject_ids: list[str], allow: bool = False,
                    digests: dict[str, str] | None = None) -> tuple[list[SavedModel], set[str]]:
    """The models that may score all of `subject_ids` together (`interpret`'s one ranking of a cohort), checked
    before any repertoire is read.

    A model never scores a subject it was fitted or validated on, known by its id or, with `digests` (each
    subject's file sha256, as a store's provenance has them), by a training file under another name. Of several
    models (a fold ensemble), those that held out every subject are used: for the held-out fold K of a split, the
    model of fold K. When no model did, the scoring is refused in one line naming the subjects, unless `allow`
    (``--allow-training-subjects``): then every model scores them and a warning is logged. (`predict` and `attend`
    score each subject with its own held-out models: :class:`TrainingGuard`.)

    Returns
    -------
    models
        The models to score with.
    seen
        The subjects scored by a model that was fitted or validated on them (empty unless `allow`).
    """
    guard, digests = TrainingGuard(models), digests or {}
    wanted = list(dict.fromkeys(subject_ids))
    flags = {s: guard.trained_on(s, digests.get(s))[0] for s in wanted}
    seen = [{s for s in wanted if flags[s][k]} for k in range(len(models))]
    if not any(seen):
        return models, set()
    clean = [saved for saved, overlap in zip(models, seen) if not overlap]
    if clean:
        log.info("scoring %d subjects with the %d of %d models that held them all out: %s", len(wanted),
                 len(clean), len(models), ", ".join(_model_name(saved) for saved in clean))
        return clean, set()
    leaked = set().union(*seen)
    ordered = [guard.described(s, digests.get(s)) for s in wanted if s in leaked]
    named = named_list(ordered, NAMED_SUBJECTS)
    what = (f"the model was fitted or validated on {len(ordered)} of the {len(wanted)} subjects to score ({named})"
            if len(models) == 1 else f"each of the {len(models)} models was fitted or validated on some of the "
            f"{len(wanted)} subjects to score ({len(ordered)} in all: {named})")
    if not allow:
        raise TrainingSubjectsError(f"{what}: their scores would not be held-out ones; score held-out subjects "
                                    "(--split/--fold K with the model of fold K, or a folder of fold models) "
                                    "or pass --allow-training-subjects", _ensemble_path(models))
    log.warning("%s; scoring them anyway (--allow-training-subjects): the output's %s column says which",
                what, TRAINING_SUBJECT_COLUMN)
    return models, leaked


def _ensemble_path(models: list[SavedModel]) -> Path | None:
    """Where refusals about the models point: the model, or the folder of an ensemble's models."""
    return models[0].path if len(models) == 1 or models[0].path is None else models[0].path.parent


class TrainingGuard:
    """Which models of an ensemble score each subject: those never fitted or validated on it.

    A model knows its training subjects by id (`fit_subjects`, `validation_subjects` of its config) and, where it
    recorded them (`subject_sha256`), by their files' sha256: a file named like a training subject that holds
    another repertoire is a new patient (`files` are hashed for those alone, before reading), and a training file
    under another name (``cp rep001.tsv PAT1.tsv``) is that training subject, known by the sha256 that reading
    it computes anyway (or a store's provenance records). Each subject is scored by the models that held it out
    (a new patient: all of them), so a training subject in a batch weakens no one else's ensemble. A subject that
    no model held out is refused in one line, unless `allow` (``--allow-training-subjects``): then every model
    scores it and the outputs say so (:data:`TRAINING_SUBJECT_COLUMN`).
    """

    def __init__(self, models: list[SavedModel], allow: bool = False, files: dict[str, Path] | None = None,
                 groups: dict[str, str] | None = None) -> None:
        self.models, self.allow = models, allow
        from deeprc_hopfield.split import group_key

        self._group_names = dict(groups or {})  # predict --group-column: each subject's group as its metadata spells it
        self.groups = {s: group_key(g) for s, g in self._group_names.items()}  # as matched
        self._trained_groups = [{group_key(g) for g in (saved.training.get("subject_groups") or {}).values()}
                                for saved in models]
        if groups is not None and not any(self._trained_groups):
            log.warning("--group-column: the model%s record%s no groups (trained on a split made without "
                        "--group-column, or before models recorded them): it changes nothing",
                        "s" if len(models) > 1 else "", "" if len(models) > 1 else "s")
        named = [training_subjects(saved) for saved in models]
        self._named = _same_files(models, named, files) if files else named
        self._digests = [{digest: subject for subject, digest in (saved.training.get("subject_sha256") or {}).items()}
                         for saved in models]
        self._sequences = [{digest: subject for subject, digest in
                            (saved.training.get("subject_sequences") or {}).items()} for saved in models]
        self._sketches: list[TrainingSketches | None] | None = None  # read when a repertoire first needs them
        self._one_set = False  # every subject scored by one set of models (an attention file): notes only
        self.used: dict[str, tuple[list[str], bool]] = {}  # subject -> names of the models that scored it, seen
        self.copies: dict[str, str] = {}  # subject -> the training subject whose file it is
        self.notes: dict[str, str] = {}  # subject -> what the predictions' warnings column says of its donor

    def trained_on(self, subject_id: str, sha256: str | None = None,
                   sequences: str | None = None) -> tuple[list[bool], str | None]:
        """Per model, whether it was fitted or validated on the subject (by id, by its file's sha256, or by its
        sequences' digest once read: a training repertoire re-exported or re-compressed), and the training subject
        whose repertoire the subject's is when that subject is named otherwise (a renamed copy)."""
        flags, copy_of = [], None
        group = self.groups.get(subject_id)
        for named, digests, contents, groups in zip(self._named, self._digests, self._sequences, self._trained_groups):
            twin = digests.get(sha256) if sha256 is not None else None
            twin = twin if twin is not None or sequences is None else contents.get(sequences)
            if twin is not None and twin != subject_id:
                copy_of = twin
            flags.append(subject_id in named or twin is not None or group in groups)
        return flags, copy_of

    def described(self, subject_id: str, sha256: str | None = None) -> str:
        """The subject for a message: its id, and the training subject whose file it is, if renamed, or the training
        group it is of (`--group-column`)."""
        copy_of = self.trained_on(subject_id, sha256)[1]
        if copy_of is not None:
            return f"{subject_id} (a copy of training subject {copy_of}'s file)"
        group = self.groups.get(subject_id)
        if group is not None and any(group in groups for groups in self._trained_groups):
            return f"{subject_id} (of a training group: {self._group_names[subject_id]})"
        return subject_id

    def planned(self, subject_ids: list[str], digests: dict[str, str] | None = None) -> dict[str, list[SavedModel]]:
        """Before any repertoire is read: the models that will score each subject, by what is known then (ids; the
        sha256 of a store's subjects). Subjects no model held out are refused in one line naming them (and the
        training subject a renamed copy is), unless `allow`, which scores them with every model and warns."""
        digests = digests or {}
        plan: dict[str, list[SavedModel]] = {}
        refused = []
        for subject in dict.fromkeys(subject_ids):
            flags = self.trained_on(subject, digests.get(subject))[0]
            plan[subject] = [saved for saved, seen in zip(self.models, flags) if not seen] or self.models
            if all(flags):
                refused.append(self.described(subject, digests.get(subject)))
        if refused:
            named = named_list(refused, NAMED_SUBJECTS)
            what = (f"the model was fitted or validated on {len(refused)} of the {len(plan)} subjects to score "
                    f"({named})" if len(self.models) == 1 else f"all {len(self.models)} models were fitted or "
                    f"validated on {len(refused)} of the {len(plan)} subjects to score ({named})")
            if not self.allow:
                raise TrainingSubjectsError(
                    f"{what}: their scores would not be held-out ones; leave them out, score them with the folder of "
                    "fold models (each subject by the models that held it out; with --store, --split/--fold K keeps "
                    "fold K's subjects) or pass --allow-training-subjects", _ensemble_path(self.models))
            log.warning("%s; scoring them anyway (--allow-training-subjects): the output's %s column says which",
                        what, TRAINING_SUBJECT_COLUMN)
        return plan

    def one_model_set(self, plan: dict[str, list[SavedModel]]) -> list[SavedModel]:
        """The models that score every subject of `plan` (:meth:`planned`), for an attention file, which holds one
        set of models' attention; subjects held out by different models are refused before any work."""
        self._one_set = True  # a sample of a training donor, found as it is read, keeps the set (with a note)
        sets = {tuple(_model_name(saved) for saved in chosen): chosen for chosen in plan.values()}
        if len(sets) > 1:
            by = [f"{s} by {', '.join(map(_model_name, chosen))}" for s, chosen in plan.items()
                  if len(chosen) < len(self.models)]
            raise DeepRCError("--attention holds the attention of one set of models, but these subjects are held out "
                              f"by different ones ({named_list(by, 3)}): write it for the subjects of one fold "
                              "(--store with --split/--fold K), or leave --attention out", _ensemble_path(self.models))
        return next(iter(sets.values()), self.models)

    def models_for(self, subject: Subject) -> tuple[list[SavedModel], bool]:
        """The models that score `subject` (by its id and its file's sha256, known once it is read) and whether one
        of them was fitted or validated on it (only with `allow`). A renamed training file that no model held out
        is refused here, in one line naming the file and the training subject it is a copy of."""
        keys = (sequence_keys(subject.repertoire.codes, subject.repertoire.lengths)
                if any(self._sequences) or any(s is not None for s in self.sketches()) else None)
        sequences = sequence_digest(subject.repertoire, keys) if any(self._sequences) else None  # those recording them
        flags, copy_of = self.trained_on(subject.subject_id, subject.sha256, sequences)
        clean = [saved for saved, seen in zip(self.models, flags) if not seen]
        if copy_of is None and keys is not None:
            clean = self._apart_from_relatives(subject, keys, flags, clean)
        if copy_of is not None:
            self.copies[subject.subject_id] = copy_of
            if not clean and not self.allow:
                who = "the model was" if len(self.models) == 1 else f"all {len(self.models)} models were"
                raise TrainingSubjectsError(
                    f"a copy of training subject {copy_of}'s repertoire (the same file, or the same sequences and "
                    f"counts), which {who} fitted or validated on: its score would not be a held-out one; leave the "
                    "file out or pass --allow-training-subjects", subject.source or subject.subject_id)
        if not clean and not self.allow:  # by id: refused by planned() before any reading, when it was called
            raise TrainingSubjectsError(f"a model was fitted or validated on subject {subject.subject_id}: its "
                                        "score would not be a held-out one; leave it out or pass "
                                        "--allow-training-subjects", _ensemble_path(self.models))
        chosen = clean or self.models
        self.used[subject.subject_id] = ([_model_name(saved) for saved in chosen], not clean)
        if copy_of is not None:
            self.notes[subject.subject_id] = _copy_note(copy_of, [_model_name(saved) for saved in clean])
        return chosen, not clean

    def sketches(self) -> list[TrainingSketches | None]:
        """Each model's training sketches (:mod:`deeprc_hopfield.donors`), read once, when first needed; None for a
        model without them (one of an earlier version; one whose folder lost its file is warned of)."""
        if self._sketches is None:
            self._sketches = [TrainingSketches.read(saved.path) for saved in self.models]
            lost = [_model_name(saved) for saved, read in zip(self.models, self._sketches)
                    if read is None and saved.training.get("sketch_file")]
            if lost:
                log.warning("%s: the model folder lacks %s, which training wrote: another sample of a training "
                            "donor is not told apart from a new patient", ", ".join(lost), SKETCH_FILE)
        return self._sketches

    def _apart_from_relatives(self, subject: Subject, keys: np.ndarray, flags: list[bool],
                              clean: list[SavedModel]) -> list[SavedModel]:
        """Of the models that held `subject` out (`clean`), those that were not fitted or validated on a sample of
        its donor either (a training repertoire sharing its most abundant clones: :mod:`deeprc_hopfield.donors`),
        where one is (and the models are not fixed to one set: an attention file); otherwise `clean`, its note
        saying which training subject it shares them with."""
        sketch = clone_sketch(subject.repertoire, keys)
        related = [known.closest(sketch) if known is not None and not seen else None
                   for known, seen in zip(self.sketches(), flags)]
        found = [r for r in related if r is not None]
        if not found:
            return clean
        relative, share = max(found, key=lambda r: r[1])
        apart = [] if self._one_set else [saved for saved, r, seen in zip(self.models, related, flags)
                                          if not seen and r is None]
        names = " / ".join(_model_name(saved) for saved in apart)  # the warnings cell stays free of commas
        self.notes[subject.subject_id] = (
            f"shares {share:.0%} of its most abundant CDR3s with training subject {relative} (a sample of one donor?): "
            + (f"scored by the models that held it out ({names})" if apart else
               "a model that scores it trained on it or on a sample like it: the score may not be a held-out one"))
        log.warning("%s%s: %s", subject.subject_id, f" ({subject.source})" if subject.source else "",
                    self.notes[subject.subject_id])
        return apart or clean

    def log_scored(self) -> None:
        """After scoring, what the guard did: each renamed training file (WARNING), and the subjects scored by fewer
        models than the ensemble holds, with the models that scored them (WARNING where the batch's subjects were
        not all scored alike, e.g. new patients beside a training subject, who kept every model; INFO where they
        were, as a held-out fold scored by its fold's model)."""
        for subject, copy_of in self.copies.items():
            names, seen = self.used.get(subject, ([], False))
            log.warning("%s: its repertoire is training subject %s's (the same file, or sequences and counts): "
                        "scored as that subject, %s", subject, copy_of,
                        "by every model (--allow-training-subjects)" if seen
                        else f"by the {len(names)} of {len(self.models)} models that held it out ({', '.join(names)})")
        fewer = {s: names for s, (names, seen) in self.used.items() if not seen and len(names) < len(self.models)}
        if not fewer:
            return
        if len({tuple(names) for names, _ in self.used.values()}) == 1:
            names = next(iter(fewer.values()))
            log.info("scored %d subjects with the %d of %d models that held them all out: %s", len(self.used),
                     len(names), len(self.models), ", ".join(names))
            return
        shown = [f"{s} by {', '.join(names)}" for s, names in fewer.items()]
        log.warning("%d of the %d subjects were scored by fewer than the %d models, by those that held them out (a "
                    "model never scores a subject it was fitted or validated on; the other subjects got every model): "
                    "%s", len(fewer), len(self.used), len(self.models), "; ".join(shown[:NAMED_SUBJECTS]) +
                    (f" and {len(shown) - NAMED_SUBJECTS} more" if len(shown) > NAMED_SUBJECTS else ""))


def _copy_note(copy_of: str, held_out_by: list[str]) -> str:
    """The predictions' note on a renamed copy of training subject `copy_of`'s repertoire: scored as that subject, by
    the models that held it out (`held_out_by`, their names), or by every model, one that trained on it among them,
    where none did (``--allow-training-subjects``). Without commas, as every note (the CSV cell needs no quoting)."""
    if held_out_by:
        return (f"a copy of training subject {copy_of}'s repertoire: scored as that subject by the models that held "
                f"it out ({' / '.join(held_out_by)})")
    return (f"a copy of training subject {copy_of}'s repertoire: scored by a model trained on it "
            "(--allow-training-subjects): not a held-out score")


def _same_files(models: list[SavedModel], seen: list[set[str]], files: dict[str, Path]) -> list[set[str]]:
    """`seen` (per model, its training subjects) less those named like a file in `files` that is not the training
    file the model recorded (models that recorded none keep theirs: their names decide). Only the files named like
    training subjects are hashed here (read twice: before scoring, to refuse a training subject before any work)."""
    from deeprc_hopfield.io import sha256_file

    digests: dict[str, str] = {}
    others: set[str] = set()
    kept = []
    for saved, named in zip(models, seen):
        recorded = saved.training.get("subject_sha256")
        if not recorded:
            kept.append(named)
            continue
        for subject in (named & set(files)) - set(digests):  # each file read once, whatever the models
            digests[subject] = sha256_file(files[subject])
        differ = {s for s in named if s in digests and recorded.get(s) not in (None, digests[s])}
        others |= differ
        kept.append(named - differ)
    if others:
        log.warning("%d subject(s) named like training subjects have other files than those the model was trained on "
                    "(%s): scored as new patients; if they are the same repertoires re-exported, their scores are not "
                    "held-out ones (caught only where the sequences and counts are the training repertoire's, as "
                    "each is read)", len(others), named_list(sorted(others)))
    return kept


def _model_name(saved: SavedModel) -> str:
    return saved.path.name if saved.path is not None else "model"


def score_repertoire(models: list[SavedModel], repertoire: Repertoire, device: torch.device,
                     attention: bool = False, chunk_size: int = DEFAULT_CHUNK
                     ) -> tuple[dict[str, np.ndarray], torch.Tensor | None]:
    """Every model on one whole repertoire.

    Returns
    -------
    scores
        Per label, the scores of each model stacked, shape (n_models, k): P(positive) (binary, k = 1),
        class probabilities (categorical) or the value (numeric).
    attention
        With `attention`, each sequence's attention weight (n,) on the CPU: the highest over heads,
        averaged over the models; else None.
    """
    labels = models[0].labels
    scores: dict[str, list[np.ndarray]] = {name: [] for name in labels}
    weights = None
    with torch.inference_mode():
        bags = SequenceBags.from_repertoires([repertoire]).to(device)
        for saved in models:
            result = saved.model(bags, return_attention=attention, chunk_size=chunk_size)
            for name, label in labels.items():
                calibration = saved.training.get("calibration", {}).get(name)
                scores[name].append(task_scores(label["kind"], result.outputs[name], calibration).reshape(-1))
            if attention:
                best = result.attention.float().max(dim=1).values
                weights = best if weights is None else weights + best
        mean_attention = (weights / len(models)).cpu() if attention else None
    return {k: np.stack(v) for k, v in scores.items()}, mean_attention


@dataclass
class Scored:
    """One repertoire scored: its subject, its scores per label (n_models, k) as :func:`score_repertoire`
    gives them, when asked for each sequence's attention (n,) float32, and whether a model that scored it was
    fitted or validated on it (only with ``--allow-training-subjects``)."""

    subject: Subject
    scores: dict[str, np.ndarray]
    attention: np.ndarray | None
    seen: bool = False


def score_subjects(models: list[SavedModel], subjects: Iterable[Subject], device: torch.device,
                   attention: bool = False, chunk_size: int = DEFAULT_CHUNK, total: int | None = None,
                   guard: TrainingGuard | None = None) -> Iterator[Scored]:
    """Every model over each whole repertoire in turn: one forward pass per repertoire (progress of
    the `total` repertoires in the log). With a `guard`, each repertoire is scored by the models it says
    (:meth:`TrainingGuard.models_for`: those that held it out)."""
    progress = LoggedProgress(log, "scored", total)
    for subject in subjects:
        chosen, seen = guard.models_for(subject) if guard is not None else (models, False)
        scores, weights = score_repertoire(chosen, subject.repertoire, device, attention=attention,
                                           chunk_size=chunk_size)
        yield Scored(subject, scores, weights.numpy() if weights is not None else None, seen)
        progress.update()
        raise_if_interrupted()


def scored_from_file(path: str | Path, models: list[SavedModel], subjects: Iterable[Subject]) -> Iterator[Scored]:
    """The scores and attention that `predict --attention` wrote for `subjects` with `models`: what
    :func:`score_subjects` would give, without a second pass."""
    from deeprc_hopfield.attention_file import open_attention, repertoire_fingerprint

    with open_attention(path, models) as reader:
        for subject in subjects:
            scores, weights = reader.get(subject.subject_id, repertoire_fingerprint(subject.repertoire))
            yield Scored(subject, scores, weights)


def predict(models: list[SavedModel], subjects: Iterator[Subject], device: torch.device,
            chunk_size: int = DEFAULT_CHUNK, top: int = 0, guard: TrainingGuard | None = None,
            attention_file: str | Path | None = None, total: int | None = None,
            attention_models: list[SavedModel] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prediction table (one row per repertoire) and, when `top` > 0, its `top` most-attended sequences.

    With several models (a fold ensemble) probabilities are averaged and their spread reported (columns
    `<column>_sd` whenever `models` are several, empty for a repertoire that one model scored), and a sequence's
    attention is the mean of its attention under each model. All models share the gene tables (checked by
    :func:`load_models`), so one `Subject` serves them all. With a `guard` (:class:`TrainingGuard`), each
    repertoire is scored by the models that held it out, and with its ``allow`` both tables get the column
    :data:`TRAINING_SUBJECT_COLUMN`, true for the rows of subjects a model that scored them trained on. Every row
    ends with :data:`UNKNOWN_V_COLUMN` and :data:`WARNINGS_COLUMN` (the subject's share of V genes the model does
    not know, and a note where that share says its score means little, where the subject shares its most
    abundant clones with a training subject: another sample of a training donor, or where it is a renamed copy of a
    training subject's repertoire), so that a table read without the log still says which calls not to trust. Each
    row of the attended table carries its repertoire's call (:func:`call_columns`) after `repertoire_id`. With a
    model trained with a reference of known receptors, the attended table marks the sequences that match one
    (:data:`deeprc_hopfield.interpret.known.KNOWN_COLUMNS`). With `attention_file`, the same pass also writes every
    sequence's attention there
    (:mod:`deeprc_hopfield.attention_file`), for `interpret`; it holds the attention of one set of models,
    `attention_models` (default: all), and a repertoire that others score is refused.
    """
    from deeprc_hopfield.attention_file import attention_writer, repertoire_fingerprint
    from deeprc_hopfield.interpret.known import known_receptors  # the interpret package imports this module

    labels = models[0].labels
    known = known_receptors(models) if top > 0 else None
    flag = guard is not None and guard.allow
    writer_models = attention_models or models
    rows, attended = [], []
    stream = score_subjects(models, subjects, device, attention=top > 0 or attention_file is not None,
                            chunk_size=chunk_size, total=total, guard=guard)
    with (attention_writer(attention_file, writer_models) if attention_file is not None
          else contextlib.nullcontext()) as writer:
        for scored in stream:
            subject = scored.subject
            if writer is not None:
                _check_attention_models(guard, subject, writer_models, attention_file)
                writer.add(subject.subject_id, scored.scores, scored.attention, repertoire_fingerprint(subject.repertoire))
            row = {"subject_id": subject.subject_id, **_prediction_columns(labels, scored.scores, len(models) > 1)}
            for name, value in subject.truth.items():
                row["true_label" if len(labels) == 1 else f"{name}_true"] = value
            flagged = {TRAINING_SUBJECT_COLUMN: scored.seen} if flag else {}
            rows.append({**row, **flagged, UNKNOWN_V_COLUMN: written(subject.unknown_v_share),
                         WARNINGS_COLUMN: WARNINGS_SEPARATOR.join(
                             subject.warnings + ((guard.notes[subject.subject_id],)
                                                 if guard is not None and subject.subject_id in guard.notes else ()))})
            if top > 0:
                call = {column: row[column] for column in call_columns(labels)}
                attended.append(_top_sequences(subject, scored.attention, top, call).assign(**flagged))
    if guard is not None:
        guard.log_scored()
    columns = ["repertoire_id", *call_columns(labels), "rank", "attention", "junction_aa", "v_call", "j_call",
               "duplicate_count", "family", "family_size"]
    columns += [TRAINING_SUBJECT_COLUMN] if flag else []
    table = with_families(pd.concat(attended, ignore_index=True)) if attended else pd.DataFrame(columns=columns)
    return pd.DataFrame(rows), (known.mark(table) if known is not None else table)


def with_families(attended: pd.DataFrame) -> pd.DataFrame:
    """An attended table with `family` and `family_size` after `duplicate_count`: within each repertoire's list,
    near-identical sequences (SHM siblings, convergent TCRs: :mod:`deeprc_hopfield.interpret.families`) share the
    rank of their family's best row, so that a top 20 of one lineage's variants reads as one finding."""
    from deeprc_hopfield.interpret.families import sequence_families  # the interpret package imports this module

    family = pd.Series(pd.NA, index=attended.index, dtype="Int64")
    size = family.copy()
    for _, rows in attended.groupby("repertoire_id", sort=False):  # each list in rank order already
        family.loc[rows.index], size.loc[rows.index] = sequence_families(rows["junction_aa"], rows["v_call"])
    at = attended.columns.get_loc("duplicate_count") + 1
    out = attended.copy()
    out.insert(at, "family", family)
    out.insert(at + 1, "family_size", size)
    return out


def _check_attention_models(guard: TrainingGuard | None, subject: Subject, writer_models: list[SavedModel],
                            path: str | Path) -> None:
    """An attention file holds one set of models' attention: refuse a repertoire that other models scored (a
    renamed training file found when read), before the file is complete (nothing is written)."""
    if guard is None:
        return
    names = guard.used[subject.subject_id][0]
    if names != [_model_name(saved) for saved in writer_models]:
        held = ", ".join(map(_model_name, writer_models))
        raise DeepRCError(f"--attention holds the attention of one set of models ({held}), "
                          f"but {subject.subject_id} was scored by {', '.join(names)}: write it for the subjects of "
                          "one fold, or leave --attention out", path)


def _top_sequences(subject: Subject, weights: np.ndarray, top: int, call: dict[str, object] | None = None
                   ) -> pd.DataFrame:
    """The `top` sequences of one repertoire by attention weight (n,), highest first, each row with the
    repertoire's `call` (:func:`call_columns`: its probability and predicted class) after its id: attention sums
    alike in every repertoire whatever the call, so a control's top sequences, read without it, look like a
    positive's."""
    k = min(top, len(weights))
    order = np.argsort(-weights, kind="stable")[:k]
    rep = subject.repertoire.subset(order)
    return pd.DataFrame({
        "repertoire_id": subject.subject_id,
        **(call or {}),
        "rank": np.arange(1, k + 1),
        "attention": weights[order],
        "junction_aa": decode(rep.codes, rep.lengths),
        "v_call": subject.v_names[order],
        "j_call": subject.j_names[order],
        "duplicate_count": count_column(rep.counts),
    })


def is_predictions_table(path: Path) -> bool:
    """Whether the file `path` was written by `predict` (known by its header: subject_id first, a
    `predicted` column)."""
    fields = first_line(path).split(",")
    return fields[0] == "subject_id" and any(f == "predicted" or f.endswith("_predicted") for f in fields)


def is_attended_table(path: Path) -> bool:
    """Whether the file `path` was written by `attend` or `predict --attended` (known by its header: repertoire_id
    first, then the repertoire's call, as these write it, or none, as they did before, then rank and attention)."""
    fields = first_line(path).split("\t")
    return fields[:1] == ["repertoire_id"] and "rank" in fields and fields[fields.index("rank") + 1:][:1] == [
        "attention"]
