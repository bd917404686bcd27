"""A whole simulated cohort: labels and sizes, one repertoire per task, files and ground truth.

Randomness is split by purpose with ``numpy.random.SeedSequence(seed, spawn_key=...)``: the
background of repertoire r comes in blocks of :data:`BLOCK` sequences, block b drawn from key
(BACKGROUND, r, b); the implants of repertoire r from (IMPLANT, r) and its signal-pool receptors
from (POOL_IMPLANT, r); labels and sizes from (COHORT,); the public clones from (PUBLIC,); the signal
pool (its members, Zipf order and nucleotides) from (POOL,); the variants of public clones from
(VARIANTS,), and the choice of family members and V noise of repertoire r from (ROUGH, r, 0) and
(ROUGH, r, 1) (:mod:`deeprc_hopfield.simulate.public`; unused at the defaults); which positives carry
which signal with `mixed_positives` from (MIXED,) (unused without it). No stream depends on
another or on which process runs it, so the files are byte-identical whatever the number of threads.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import io
import logging
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from deeprc_hopfield import __version__
from deeprc_hopfield.interrupts import worker_pool
from deeprc_hopfield.io import atomic_folder, check_output
from deeprc_hopfield.simulate.background import Background, background_model
from deeprc_hopfield.simulate.implant import Implant, implant_motifs, implant_receptors
from deeprc_hopfield.simulate.public import (PublicClones, clone_table, implant_public, noise_v_calls, public_clones,
                                             read_public_clone_list)
from deeprc_hopfield.simulate.settings import (END_MARGIN, V_NOISE_KINDS, SimulationSettings, max_motif_length,
                                               validate)
from deeprc_hopfield.simulate.signal_pool import (SignalPool, describe, draw_receptors, make_signal_pool,
                                                  pool_table, read_signal_pool)

log = logging.getLogger(__name__)

BLOCK = 10_000  # background sequences per seeded block
BACKGROUND, IMPLANT, COHORT, PUBLIC, POOL, POOL_IMPLANT = 0, 1, 2, 3, 4, 5  # spawn keys of the random streams
VARIANTS, ROUGH, MIXED = 6, 7, 8
#: Kinds of implant that come from a signal pool's list.
POOL_KINDS = ("pool_receptor", "chance_receptor")
TRUTH_COLUMNS = ["subject_id", "filename", "sequence_id", "label", "kind", "signal", "position", "implanted",
                 "junction_aa", "v_call", "j_call"]
#: Columns added to truth/implanted.tsv when an option of :data:`~.settings.ROUGH_OPTIONS` is set: the
#: public clone's index (empty for other kinds), the V the receptor has (`v_call` is the one written)
#: and how its V call was noised ('gene', 'family', 'missing'; empty: not noised).
ROUGH_TRUTH_COLUMNS = ["clone", "true_v_call", "v_noise"]
#: Columns of truth/signal_groups.tsv (written with `mixed_positives`): every repertoire, the signal it
#: was given ('public_clone' or 'motif' for a positive, 'none' for a negative) and what it carries.
SIGNAL_GROUP_COLUMNS = ["subject_id", "filename", "label", "signal", "public_clone_implants", "motif_implants"]


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


@dataclass
class _Task:
    """What a worker needs to build and write one repertoire."""

    index: int
    subject_id: str
    filename: str
    label: int
    size: int
    settings: SimulationSettings
    clones: PublicClones | None
    pool: SignalPool | None
    folder: Path
    signal: str = "all"  # see :func:`signal_groups`


@dataclass
class _Done:
    index: int
    rows: int
    implants: list[Implant]
    truth: list[list[str]]
    background_matches: dict[str, int]


def cohort_plan(settings: SimulationSettings) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Subject ids, labels (1 = positive) and sizes of the repertoires, in order."""
    rng = _rng(settings.seed, COHORT)
    n = settings.n_repertoires
    labels = np.zeros(n, dtype=np.int64)
    labels[rng.permutation(n)[: settings.n_positive]] = 1
    sizes = np.full(n, settings.sequences_per_repertoire, dtype=np.int64)
    z = rng.standard_normal(n)
    if settings.size_spread > 0:
        sigma = settings.size_spread
        sizes = np.maximum(1, np.round(settings.sequences_per_repertoire * np.exp(sigma * z - sigma**2 / 2)))
        sizes = sizes.astype(np.int64)
    width = max(3, len(str(n - 1)))
    return [f"rep{i:0{width}d}" for i in range(n)], labels, sizes


def signal_groups(settings: SimulationSettings, labels: np.ndarray) -> np.ndarray:
    """The signal each repertoire is given ((n,) object): 'none' for a negative; for a positive 'all'
    (every signal the settings ask for) or, with `mixed_positives`, 'public_clone' (a seeded
    :attr:`~.settings.SimulationSettings.n_clone_only` of them: public clones, no motif witness) or
    'motif' (the others: motif witnesses, no public clone)."""
    groups = np.where(labels == 1, "all", "none").astype(object)
    if settings.mixed_positives is None:
        return groups
    positives = np.flatnonzero(labels == 1)
    groups[positives] = "motif"
    groups[_rng(settings.seed, MIXED).permutation(positives)[: settings.n_clone_only]] = "public_clone"
    return groups


def make_background(settings: SimulationSettings, index: int, size: int) -> Background:
    """The background of repertoire `index`: `size` sequences in seeded blocks of :data:`BLOCK`."""
    model = background_model(settings.chain, settings.species)
    blocks = [model.generate(min(BLOCK, size - start), _rng(settings.seed, BACKGROUND, index, b))
              for b, start in enumerate(range(0, size, BLOCK))]
    return Background.concatenate(blocks)


def _adaptive_gene(name: str) -> str:
    """IMGT `TRBV5-1*01` -> immunoSEQ style `TCRBV05-01*01` (IG genes: `IGHV3-23*01` -> `IGHV03-23*01`); each name of
    a call of several (VDJdb's `TRBV6-2,TRBV6-3`), so that no row mixes the two styles (a real export writes
    `unresolved` with the genes in `v_gene_ties`; readers take the first call either way)."""
    if "," in name:
        return ",".join(_adaptive_gene(part.strip()) for part in name.split(","))
    match = re.fullmatch(r"(TR|IG)([A-Z])([VDJ])(\d+)(?:-(\d+))?([^*]*)(\*\d+)?", name)
    if not match or (match.group(5) is None and match.group(6)):  # e.g. IGHV4-NL1: no immunoSEQ form
        return name
    locus, chain, segment, family, member, rest, allele = match.groups()
    prefix = "TCR" if locus == "TR" else "IG"
    return f"{prefix}{chain}{segment}{int(family):02d}-{int(member or 1):02d}{rest}{allele or ''}"


def _adaptive_family(name: str) -> str:
    """IMGT `TRBV5-1*01` or `TRBV5` -> immunoSEQ style family `TCRBV05` (a name it cannot read is kept)."""
    match = re.match(r"(TR|IG)([A-Z])([VDJ])(\d+)", name)
    if not match:
        return name
    locus, chain, segment, family = match.groups()
    return f"{'TCR' if locus == 'TR' else 'IG'}{chain}{segment}{int(family):02d}"


def _immunoseq_v(v_call: np.ndarray, family_only: np.ndarray) -> tuple[list[str], list[str]]:
    """immunoSEQ's `v_family` and `v_gene` of each V call: a family-only call has `v_gene` 'unresolved',
    a missing one 'unresolved' in both."""
    families, genes = [], []
    for name, family in zip(v_call, family_only):
        if not name:
            families.append("unresolved")
            genes.append("unresolved")
        elif family:
            families.append(_adaptive_family(name))
            genes.append("unresolved")
        else:
            families.append(_adaptive_family(name))
            genes.append(_adaptive_gene(name))
    return families, genes


def _table(task: _Task, rep: Background, counts: np.ndarray, family_only: np.ndarray | None = None) -> str:
    """The repertoire file's text (tab-separated, one header line, '\\n' line ends). `family_only`: (n,) bool,
    rows whose V call is a family alone (V noise); with V noise, immunoSEQ files get a `v_family` column."""
    s = task.settings
    ids = [f"{task.subject_id}_{i}" for i in range(len(rep))]
    count_text = counts.astype(str).tolist()
    if s.fmt == "airr":
        header = ["sequence_id", "junction", "junction_aa", "v_call", "j_call", "duplicate_count", "productive",
                  "locus"]
        columns = [ids, rep.junction.tolist(), rep.junction_aa.tolist(), rep.v_call.tolist(), rep.j_call.tolist(),
                   count_text, ["T"] * len(rep), [s.chain] * len(rep)]
        nucleotide_column = 1
    elif s.public_v_noise > 0:
        j_genes = {name: _adaptive_gene(name) for name in set(rep.j_call)}
        only = np.zeros(len(rep), dtype=bool) if family_only is None else family_only
        v_family, v_gene = _immunoseq_v(rep.v_call, only)
        header = ["nucleotide", "amino_acid", "templates", "frame_type", "v_family", "v_gene", "j_gene"]
        columns = [rep.junction.tolist(), rep.junction_aa.tolist(), count_text, ["In"] * len(rep), v_family,
                   v_gene, [j_genes[g] for g in rep.j_call]]
        nucleotide_column = 0
    else:
        genes = {name: _adaptive_gene(name) for name in set(rep.v_call) | set(rep.j_call)}
        header = ["nucleotide", "amino_acid", "templates", "frame_type", "v_gene", "j_gene"]
        columns = [rep.junction.tolist(), rep.junction_aa.tolist(), count_text, ["In"] * len(rep),
                   [genes[g] for g in rep.v_call], [genes[g] for g in rep.j_call]]
        nucleotide_column = 0
    if not s.nucleotides:
        del header[nucleotide_column], columns[nucleotide_column]
    lines = ["\t".join(header)] + ["\t".join(row) for row in zip(*columns)]
    return "\n".join(lines) + "\n"


def _write_bytes(path: Path, text: str, compress: bool) -> None:
    data = text.encode("utf-8")
    with open(path, "wb") as handle:
        if compress:  # no file name and mtime 0 in the header: the same text gives the same bytes
            with gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=6) as zipped:
                zipped.write(data)
        else:
            handle.write(data)


def build_repertoire(task: _Task) -> _Done:
    """Generate, implant and write one repertoire (runs in a worker process)."""
    s = task.settings
    rep = make_background(s, task.index, task.size)
    background_matches = count_motif_carriers(rep.junction_aa, s.motifs)
    rng = _rng(s.seed, IMPLANT, task.index)
    counts = np.minimum(rng.zipf(s.count_exponent, size=len(rep)), s.max_count).astype(np.int64)
    taken = np.zeros(len(rep), dtype=bool)
    implants: list[Implant] = []
    if task.label == 1 and task.clones is not None and task.signal != "motif":
        member_rng = _rng(s.seed, ROUGH, task.index, 0) if s.public_variants > 1 else None
        implants += implant_public(rep, task.clones, s.public_rate, rng, taken, member_rng)
    if task.pool is not None:
        pool_rng = _rng(s.seed, POOL_IMPLANT, task.index)
        signal, chance = draw_receptors(task.pool, task.label, s, pool_rng)
        for kind, chosen in zip(POOL_KINDS, (signal, chance)):
            implants += implant_receptors(rep, task.pool.receptors, chosen, kind, pool_rng, taken)
    if s.public_v_noise > 0:  # every implant so far is a whole receptor
        noise_v_calls(rep, implants, s.public_v_noise, s.chain, _rng(s.seed, ROUGH, task.index, 1), s.species)
    witnesses = task.label == 1 and task.signal != "public_clone"  # a clone-only positive: as a negative
    rate = s.witness_rate if witnesses else s.noise_rate
    n_motif = int(rng.binomial(len(rep), rate)) if rate > 0 else 0
    if witnesses and s.witness_rate > 0:
        n_motif = max(1, n_motif)
    if n_motif:
        placed = implant_motifs(rep, s.motifs, n_motif, s.substitution_rate, rng, taken)
        if len(placed) < n_motif:
            log.warning("%s: only %d of %d sequences are long enough for a motif", task.subject_id, len(placed),
                        n_motif)
        implants += placed
    implants.sort(key=lambda implant: implant.row)
    family_only = np.zeros(len(rep), dtype=bool)
    family_only[[i.row for i in implants if i.v_noise == "family"]] = True
    _write_bytes(task.folder / task.filename, _table(task, rep, counts, family_only), s.compress)
    truth = [[task.subject_id, task.filename, f"{task.subject_id}_{i.row}", str(task.label), i.kind, i.signal,
              str(i.position) if i.position >= 0 else "", i.implanted, rep.junction_aa[i.row], rep.v_call[i.row],
              rep.j_call[i.row]] for i in implants]
    if s.rough:
        for row, i in zip(truth, implants):
            row += [str(i.clone) if i.clone >= 0 else "", rep.v_call[i.row] if i.true_v is None else i.true_v,
                    i.v_noise]
    return _Done(task.index, len(rep), implants, truth, background_matches)


def count_motif_carriers(junctions: Sequence[str], motifs: Sequence[str]) -> dict[str, int]:
    """How many of the junctions carry each motif anywhere ('.' = any residue), before implanting."""
    column = pd.Series(junctions, dtype=object)
    return {m: int(column.str.contains(m, regex=True).sum()) for m in motifs}


def background_motif_rates(done: list[_Done], motifs: Sequence[str]) -> dict[str, float]:
    """Share of all background sequences that carry each motif by chance."""
    total = sum(d.rows for d in done)
    return {m: sum(d.background_matches[m] for d in done) / total if total else 0.0 for m in motifs}


def warn_if_motif_is_common(rates: dict[str, float], witness_rate: float) -> None:
    """A motif that the background carries about as often as the witnesses caps every classifier."""
    if witness_rate == 0:  # no motif implanted (a signal pool's cohort)
        return
    for motif, rate in rates.items():
        if rate >= 0.5 * witness_rate:
            log.warning("motif %s occurs by chance in %.3f%% of background sequences, against a witness rate of "
                        "%.3f%%: positive repertoires carry it only %.1fx as often as negative ones, so no "
                        "classifier can separate them well; choose a rarer motif for a clear signal", motif,
                        100 * rate, 100 * witness_rate, (rate + witness_rate / len(rates)) / rate)


def _is_simulation(folder: Path) -> bool:
    """A simulation written before output markers, known by its truth/parameters.yaml."""
    return (folder / "truth" / "parameters.yaml").is_file()


def _prepare_output(out: Path, force: bool) -> None:
    """Refuse an output that exists and is not empty, unless `force` and it is an earlier simulation."""
    check_output(out, "simulate", force, recognise=_is_simulation)


def simulate(settings: SimulationSettings, out: str | Path, threads: int = 1, force: bool = False) -> Path:
    """Simulate a cohort with known truth and write it to folder `out`.

    Writes ``out/metadata.csv`` (subject_id, filename, label with 1 = positive),
    ``out/repertoires/<subject_id>.tsv[.gz]``, ``out/truth/implanted.tsv`` (one row per implanted
    sequence), ``out/truth/parameters.yaml``, with public clones and an option of
    :data:`~.settings.ROUGH_OPTIONS` ``out/truth/public_clones.tsv``, with `mixed_positives`
    ``out/truth/signal_groups.tsv`` (the signal each repertoire was given and what it carries)
    (every member of every clone's family, its V and J, source and epitopes, and how many positive and
    negative repertoires carry it) and, with a signal pool, ``out/truth/signal_pool.tsv``
    (every receptor of the list: in the pool or not, its chance to be drawn, how many positive and
    negative repertoires carry it). Everything is written to a temporary folder beside
    `out` and moved into place at the end, so an error or an interrupt leaves nothing behind.

    Parameters
    ----------
    settings
        The cohort's parameters (validated here first).
    out
        Output folder; must not exist or be empty, unless `force` and it holds an earlier simulation.
    threads
        Worker processes. The files do not depend on it.
    force
        Replace an earlier simulation's folder.

    Returns
    -------
    The output folder.
    """
    out = Path(out)
    validate(settings)
    receptors = read_signal_pool(settings) if settings.signal_pool is not None else None
    clone_list = read_public_clone_list(settings) if settings.public_clone_list is not None else None
    _prepare_output(out, force)
    started = time.perf_counter()
    log.info("simulate: %d repertoires x %d sequences (%s), seed %d, %d threads, on %s at %s",
             settings.n_repertoires, settings.sequences_per_repertoire, settings.chain, settings.seed, threads,
             socket.gethostname(), datetime.datetime.now().isoformat(timespec="seconds"))
    subjects, labels, sizes = cohort_plan(settings)
    if settings.n_positive in (0, settings.n_repertoires):
        log.warning("every repertoire is %s (positive fraction %g): a cohort of one class, nothing to train on",
                    "positive" if settings.n_positive else "negative", settings.positive_fraction)
    groups = signal_groups(settings, labels)
    clones = public_clones(settings, _rng(settings.seed, PUBLIC), _rng(settings.seed, VARIANTS), clone_list)
    listed = make_signal_pool(settings, receptors, _rng(settings.seed, POOL)) if receptors is not None else None
    suffix = ".tsv.gz" if settings.compress else ".tsv"
    with atomic_folder(out, "simulate", force, recognise=_is_simulation) as tmp:
        (tmp / "repertoires").mkdir()
        (tmp / "truth").mkdir()
        tasks = [_Task(i, subjects[i], subjects[i] + suffix, int(labels[i]), int(sizes[i]), settings, clones,
                       listed, tmp / "repertoires", groups[i]) for i in range(settings.n_repertoires)]
        threads = max(1, min(threads, len(tasks), os.cpu_count() or 1))
        if threads == 1:
            done = [build_repertoire(task) for task in tasks]
        else:
            with worker_pool(threads) as pool:
                done = list(pool.map(build_repertoire, tasks))
        _write_metadata(tmp / "metadata.csv", tasks)
        _write_truth(tmp / "truth" / "implanted.tsv", done, settings.rough)
        if settings.mixed_positives is not None:
            _write_signal_groups(tmp / "truth" / "signal_groups.tsv", tasks, done)
        if clones is not None and settings.rough:
            carriers = _clone_carriers(clones, labels, done)
            (tmp / "truth" / "public_clones.tsv").write_bytes(clone_table(clones, *carriers).encode())
        if listed is not None:
            carriers = _pool_carriers(listed, labels, done)
            (tmp / "truth" / "signal_pool.tsv").write_bytes(pool_table(listed, *carriers).encode())
        rates = background_motif_rates(done, settings.motifs)
        warn_if_motif_is_common(rates, settings.witness_rate)
        _write_parameters(tmp / "truth" / "parameters.yaml", settings, labels, done, rates, listed, clones)
    total = int(sum(d.rows for d in done))
    log.info("wrote %s: %d repertoires (%d positive), %d sequences, %d implanted, in %.1f s", out,
             len(done), int(labels.sum()), total, sum(len(d.implants) for d in done), time.perf_counter() - started)
    if settings.species != "human":
        log.info("%s gene names: ingest it with --species %s (the workflow: species: %s)", settings.species,
                 settings.species, settings.species)
    return out


def _write_metadata(path: Path, tasks: list[_Task]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["subject_id", "filename", "label"])
    writer.writerows([t.subject_id, t.filename, t.label] for t in tasks)
    path.write_bytes(buffer.getvalue().encode())


def _write_truth(path: Path, done: list[_Done], rough: bool = False) -> None:
    columns = TRUTH_COLUMNS + ROUGH_TRUTH_COLUMNS if rough else TRUTH_COLUMNS
    rows = ["\t".join(columns)] + ["\t".join(row) for d in done for row in d.truth]
    path.write_bytes(("\n".join(rows) + "\n").encode())


def _implant_counts(d: _Done) -> tuple[int, int]:
    """Public-clone and motif implants of one repertoire."""
    return (sum(1 for i in d.implants if i.kind == "public_clone"), sum(1 for i in d.implants if i.kind == "motif"))


def _write_signal_groups(path: Path, tasks: list[_Task], done: list[_Done]) -> None:
    """truth/signal_groups.tsv (:data:`SIGNAL_GROUP_COLUMNS`); warns of clone-only positives that drew
    no clone (each clone is carried with probability --public-rate, so one may carry none)."""
    rows = ["\t".join(SIGNAL_GROUP_COLUMNS)]
    empty = []
    for t, d in zip(tasks, done):
        clones, motifs = _implant_counts(d)
        rows.append("\t".join([t.subject_id, t.filename, str(t.label), t.signal, str(clones), str(motifs)]))
        if t.signal == "public_clone" and clones == 0:
            empty.append(t.subject_id)
    path.write_bytes(("\n".join(rows) + "\n").encode())
    if empty:
        log.warning("%d clone-only positives carry no public clone (each is carried with probability "
                    "--public-rate): %s", len(empty), ", ".join(empty))


def _mixed_realised(labels: np.ndarray, groups: np.ndarray, done: list[_Done]) -> dict:
    """What `mixed_positives` came to, for truth/parameters.yaml."""
    counts = {d.index: _implant_counts(d) for d in done}
    clone_only = np.flatnonzero(groups == "public_clone")
    return {"public_clone_only": len(clone_only), "motif_only": int((groups == "motif").sum()),
            "public_clone_only_without_clone": sum(1 for i in clone_only if counts[i][0] == 0),
            "groups_file": "truth/signal_groups.tsv"}


def _pool_carriers(pool: SignalPool, labels: np.ndarray, done: list[_Done]) -> tuple[np.ndarray, np.ndarray]:
    """How many positive and how many negative repertoires carry each receptor of the list ((n,) each)."""
    carriers = np.zeros((2, len(pool)), dtype=np.int64)
    for d in done:
        for i in d.implants:
            if i.kind in POOL_KINDS:
                carriers[labels[d.index], i.receptor] += 1
    return carriers[1], carriers[0]


def _clone_carriers(clones: PublicClones, labels: np.ndarray,
                    done: list[_Done]) -> tuple[np.ndarray, np.ndarray]:
    """How many positive and how many negative repertoires carry each member of each clone ((m,) each)."""
    carriers = np.zeros((2, len(clones.members)), dtype=np.int64)
    for d in done:
        for i in d.implants:
            if i.kind == "public_clone":
                carriers[labels[d.index], i.receptor] += 1
    return carriers[1], carriers[0]


def _rough_realised(settings: SimulationSettings, done: list[_Done], clones: PublicClones | None) -> dict:
    """What the rough options came to, for truth/parameters.yaml."""
    receptors = [i for d in done for i in d.implants if i.kind != "motif"]
    noised = [i.v_noise for i in receptors if i.v_noise]
    out: dict = {"receptor_implants": len(receptors), "v_noised": len(noised),
                 "v_noised_share": round(len(noised) / len(receptors), 6) if receptors else None,
                 "v_noise_kinds": {kind: noised.count(kind) for kind in V_NOISE_KINDS}}
    if clones is not None:
        out["public_clone_source"] = clones.source
        out["public_clone_members"] = len(clones.members)
        out["public_clone_family_sizes"] = sorted({int(k) for k in clones.size})
    return out


def _pool_realised(pool: SignalPool, labels: np.ndarray, done: list[_Done]) -> dict:
    """What the signal pool's draws came to, for truth/parameters.yaml."""
    def mean(kind: str, label: int | None) -> float | None:
        chosen = [d for d in done if label is None or labels[d.index] == label]
        total = sum(1 for d in chosen for i in d.implants if i.kind == kind)
        return round(total / len(chosen), 6) if chosen else None

    negatives = [i for d in done if labels[d.index] == 0 for i in d.implants if i.kind == "chance_receptor"]
    return {
        **describe(pool),
        "pool_receptors_per_positive": mean("pool_receptor", 1),
        "chance_receptors_per_repertoire": mean("chance_receptor", None),
        "pool_receptors_in_negatives": sum(1 for i in negatives if pool.in_pool[i.receptor]),
    }


def _write_parameters(path: Path, settings: SimulationSettings, labels: np.ndarray, done: list[_Done],
                      background_rates: dict[str, float], pool: SignalPool | None = None,
                      clones: PublicClones | None = None) -> None:
    from importlib.metadata import version

    longest, median = max_motif_length(settings.chain, settings.species)
    positives = [d for d in done if labels[d.index] == 1]
    motif_implants = sum(1 for d in positives for i in d.implants if i.kind == "motif")
    positive_rows = sum(d.rows for d in positives)
    document = {
        "generator": {
            "program": f"deeprc-hopfield {__version__}",
            "background": f"OLGA {version('olga')} default model {background_model(settings.chain, settings.species).model_name}"
                          " (vectorised sampler)",
            "block_size": BLOCK,
            "motif_end_margin": END_MARGIN,
            "max_motif_length": longest,
            "median_cdr3_length": median,
        },
        "parameters": settings.as_dict(),
        "realised": {
            "repertoires": len(done),
            "positive_repertoires": int(labels.sum()),
            "sequences": int(sum(d.rows for d in done)),
            "motif_implants_in_positives": motif_implants,
            "witness_rate_in_positives": round(motif_implants / positive_rows, 6) if positive_rows else None,
            "motif_implants_in_negatives": sum(1 for d in done if labels[d.index] == 0 for i in d.implants
                                               if i.kind == "motif"),
            "public_clone_implants": sum(1 for d in done for i in d.implants if i.kind == "public_clone"),
            "motif_background_rate": {m: round(r, 6) for m, r in background_rates.items()},
        },
    }
    if pool is not None:
        document["realised"]["signal_pool"] = _pool_realised(pool, labels, done)
    if settings.rough:
        document["realised"]["rough"] = _rough_realised(settings, done, clones)
    if settings.mixed_positives is not None:
        document["realised"]["mixed_positives"] = _mixed_realised(labels, signal_groups(settings, labels), done)
    path.write_bytes(yaml.safe_dump(document, sort_keys=False, default_flow_style=False).encode())
