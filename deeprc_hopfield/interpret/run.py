"""`deeprc-hopfield interpret` and `interpret-summary`: from a model and a store to an output folder.

The folder holds ranked_sequences.tsv (:mod:`.ranking`), motifs.tsv and motif logos (:mod:`.motifs`,
:mod:`.logos`), contributions.tsv and its logo (:mod:`.contributions`), and interpretation.json (the
label, the repertoires by label, the settings). It is written to a temporary folder beside the
target and renamed into place at the end, so an error or an interrupt leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from deeprc_hopfield import __version__
from deeprc_hopfield.encoding import decode
from deeprc_hopfield.attention_file import check_attention
from deeprc_hopfield.errors import DeepRCError, named_list
from deeprc_hopfield.infer import (TRAINING_SUBJECT_COLUMN, check_store_species, held_out_models, load_models,
                                   score_subjects, scored_from_file, store_digests, subjects_from_store)
from deeprc_hopfield.interpret.known import KNOWN_COLUMNS, known_receptors
from deeprc_hopfield.interpret import contributions, logos, motifs, ranking
from deeprc_hopfield.io import atomic_folder, check_output
from deeprc_hopfield.saved_model import SavedModel
from deeprc_hopfield.split import donor_names
from deeprc_hopfield.store import RepertoireStore, count_column

log = logging.getLogger(__name__)

INFO_FILE = "interpretation.json"
RANKED_FILE = "ranked_sequences.tsv"
MOTIFS_FILE = "motifs.tsv"
CONTRIBUTIONS_FILE = "contributions.tsv"
FOREGROUND_FILE = "motif_foreground.tsv"
#: Logo files: MOTIF_LOGO_1.png/.svg, ... and CONTRIBUTION_LOGO.png/.svg.
MOTIF_LOGO, CONTRIBUTION_LOGO = "motif", "contributions"
#: Sequences sampled from the interpreted repertoires as the motif background.
BACKGROUND_SIZE = 50_000
#: Fewest sequences sampled from each repertoire for the motif tests.
MIN_PER_REPERTOIRE = 200
#: Motifs drawn as logos (motif_1 ... motif_N).
MOTIF_LOGOS = 3


class InterpretError(DeepRCError):
    """Input that cannot be interpreted: no binary label, genes the store lacks, unknown subjects."""


def _written_by(command: str) -> Callable[[Path], bool]:
    """How an interpretation folder written before output markers is known: its interpretation.json,
    which names a model (`interpret`) or the interpretations it merges (`interpret-summary`)."""
    key = "model" if command == "interpret" else "interpretations"

    def recognise(folder: Path) -> bool:
        try:
            info = json.loads((folder / INFO_FILE).read_text())
        except (OSError, ValueError):
            return False
        return isinstance(info, dict) and key in info

    return recognise


def _check_output(out: Path, command: str, force: bool) -> None:
    """Refuse, before any work, an `out` that is taken (:func:`deeprc_hopfield.io.check_output`)."""
    check_output(out, command, force, recognise=_written_by(command))


@contextlib.contextmanager
def _output_folder(out: Path, command: str, force: bool) -> Iterator[Path]:
    """A temporary folder beside `out`, renamed to `out` on success (replacing an earlier output of
    `command` there only with `force`; checked again just before), removed on any error."""
    with atomic_folder(out, command, force, recognise=_written_by(command)) as tmp:
        yield tmp


def binary_label(saved: SavedModel, name: str | None) -> tuple[str, str]:
    """The label to interpret (`name`, else the model's only binary label) and its positive class."""
    binary = [n for n, spec in saved.labels.items() if spec["kind"] == "binary"]
    if name is None:
        if len(binary) != 1:
            raise InterpretError(f"the model has {len(binary)} binary labels ({', '.join(binary) or 'none'}); "
                                 "name one with --label-column" if binary else
                                 "interpretation needs a binary label; the model has none "
                                 f"({', '.join(saved.labels)})", saved.path)
        name = binary[0]
    if name not in saved.labels:
        raise InterpretError(f"the model has no label '{name}' (labels: {', '.join(saved.labels)})", saved.path)
    if name not in binary:
        raise InterpretError(f"label '{name}' is {saved.labels[name]['kind']}; interpretation needs a binary label",
                             saved.path)
    return name, str(saved.labels[name]["classes"][1])


def check_genes(store: RepertoireStore, saved: SavedModel) -> None:
    """Refuse a store that has none of the V (or J) genes a gene-embedding model was trained on."""
    config = saved.model.config
    if config.gene_embedding_dim == 0:
        return
    for kind, used, model_genes, store_genes in (("V", config.n_v_genes, saved.v_genes, store.v_genes),
                                                 ("J", config.n_j_genes, saved.j_genes, store.j_genes)):
        if not used:
            continue
        shared = set(model_genes) & set(store_genes)
        if not shared:
            raise InterpretError(f"the store has none of the {len(model_genes)} {kind} genes the model embeds "
                                 f"(e.g. {', '.join(model_genes[:3])}); it needs repertoires with {kind} calls "
                                 "named as in its training store", store.path)
        unknown = len(set(store_genes) - shared)
        if unknown:
            log.warning("%d of the store's %d %s genes are unknown to the model (embedded as 'unknown')", unknown,
                        len(store_genes), kind)


def _subjects(store: RepertoireStore, wanted: set[str] | None) -> list[str]:
    if wanted is None:
        return list(store.subject_ids)
    missing = sorted(wanted - set(store.subject_ids))
    if missing:
        raise InterpretError(f"{len(missing)} subject(s) not in the store, e.g. '{missing[0]}'", store.path)
    if not wanted:
        raise InterpretError("no repertoire selected", store.path)
    return [s for s in store.subject_ids if s in wanted]


def check_labels(store: RepertoireStore, label: str, subject_ids: list[str], labels: str,
                 classes: list[str]) -> None:
    """Refuse ``labels="store"`` when the repertoires have no stored `label` (all of them when the store
    was ingested without it), naming them in one line; and, unless ``labels="model"``, a stored label none
    of whose values is one of the model's `classes` (every repertoire would silently count as negative)."""
    if label in store.label_names:
        if labels != "model":
            _check_label_values(store, label, subject_ids, classes)
        return  # a store's label has a value for every repertoire (ingest refuses missing ones)
    if labels != "store":
        return
    raise InterpretError(f"--labels store: {len(subject_ids)} repertoire(s) have no stored label '{label}' "
                         f"({named_list(subject_ids, 10)}); --labels auto or model takes the model's calls", store.path)


def stored_values(store: RepertoireStore, label: str, subject_ids: list[str]) -> list[str]:
    """The distinct values of the stored `label` among `subject_ids`, as text as the ranking compares them
    with the positive class (:func:`~deeprc_hopfield.interpret.ranking.collect_attention`), in store order."""
    stored = store.label(label)
    values = stored.values[[store.index_of(s) for s in subject_ids]]
    if stored.kind == "numeric":
        return list(dict.fromkeys(str(float(v)) for v in values))
    return list(dict.fromkeys(str(stored.classes[int(v)]) for v in values))


def _check_label_values(store: RepertoireStore, label: str, subject_ids: list[str], classes: list[str]) -> None:
    """Refuse a stored `label` with none of the model's `classes` among its values; warn of values that are
    not (those repertoires count as negative)."""
    values = stored_values(store, label, subject_ids)
    unknown = [v for v in values if v not in classes]
    if len(unknown) == len(values):
        kind = store.label(label).kind
        raise InterpretError(f"the store's label '{label}' ({kind}) has values {named_list(values)}, none of the "
                             f"model's classes ({', '.join(classes)}): no repertoire could count as positive; --labels model takes "
                             "the model's calls, or ingest the store with the model's class names", store.path)
    if unknown:
        log.warning("the store's label '%s' has value(s) %s, not among the model's classes (%s): those repertoires "
                    "count as negative", label, ", ".join(unknown[:5]), ", ".join(classes))


def background_sample(store_path: Path, subject_ids: list[str], size: int = BACKGROUND_SIZE,
                      seed: int = 0) -> list[str]:
    """A seeded uniform sample (without replacement) of the CDR3s of the given repertoires."""
    with RepertoireStore(store_path) as store:
        index = np.array([store.index_of(s) for s in subject_ids], dtype=np.int64)
        sizes = store.repertoire_sizes()[index]
        ends = np.cumsum(sizes)
        picks = np.sort(np.random.default_rng(seed).choice(int(ends[-1]), size=min(size, int(ends[-1])),
                                                             replace=False))
        owner = np.searchsorted(ends, picks, side="right")
        local = picks - (ends - sizes)[owner]
        sample: list[str] = []
        for k in np.unique(owner):  # one read per repertoire
            rep = store.repertoire(int(index[k])).subset(local[owner == k])
            sample += decode(rep.codes, rep.lengths)
    return sample


def _write(folder: Path, ranked: pd.DataFrame, foreground_of: pd.DataFrame, samples: motifs.RepertoireSamples | None,
           contributions_of: pd.DataFrame, info: dict, motif_alpha: float) -> None:
    """Every output file of an interpretation into `folder`.

    When `info` lists the subjects scored by a model that trained on them (``--allow-training-subjects``),
    every table gets the column :data:`TRAINING_SUBJECT_COLUMN`: true when any such subject was
    interpreted (the tables pool all repertoires).
    """
    flag = {} if TRAINING_SUBJECT_COLUMN not in info else {TRAINING_SUBJECT_COLUMN: bool(info[TRAINING_SUBJECT_COLUMN])}
    ranked.assign(top_duplicate_count=count_column(ranked["top_duplicate_count"].to_numpy(np.float64)),
                  **flag).to_csv(folder / RANKED_FILE, sep="\t", index=False)
    foreground_of.assign(**flag).to_csv(folder / FOREGROUND_FILE, sep="\t", index=False)
    searched = searched_foreground(foreground_of, info.get("donor_of"))
    foreground = searched["junction_aa"].tolist()
    background = [s for sample in samples.negative for s in sample] if samples is not None else []
    found = motifs.find_motifs(foreground, background, repertoires=samples, owners=searched["donor"].to_numpy(),
                               alpha=motif_alpha) if samples is not None else motifs.no_motifs()
    tested = found.attrs["patterns_tested"]
    if samples is not None and found.empty:
        unit = "donors" if info.get("donor_of") is not None else "repertoires"
        info["notes"].append(no_motif_note(tested, motif_alpha, unit) if tested else
                             f"no motif searched: no pattern's carriers among the searched sequences came from "
                             f"{found.attrs['repertoires_needed']} positive {unit} (of the {searched['donor'].nunique()} "
                             "searched), which a motif of the condition needs")
        log.warning("%s", info["notes"][-1])
    found.assign(**flag).to_csv(folder / MOTIFS_FILE, sep="\t", index=False)
    for k, motif in enumerate(found["motif"].head(MOTIF_LOGOS), start=1):
        logos.motif_logo(foreground, motif, folder / f"{MOTIF_LOGO}_{k}", title=f"motif {k}: {motif}")
    contributions_of.assign(**flag).to_csv(folder / CONTRIBUTIONS_FILE, sep="\t", index=False)
    logos.contribution_logo(contributions_of, folder / CONTRIBUTION_LOGO)
    info = {**info, "foreground_sequences": len(foreground), "background_sequences": len(background),
            "positive_sample_sequences": sum(map(len, samples.positive)) if samples is not None else 0,
            "motif_test": {"alpha": motif_alpha, "patterns_tested": tested,
                           "log10_p_max": found.attrs["log10_p_max"] if tested else None},
            "top_motif": found["motif"].iloc[0] if len(found) else None, "package_version": __version__}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    log.info("%d ranked sequences, %d motifs (top: %s), contributions of %d sequences",
             len(ranked), len(found), info["top_motif"], contributions_of["rank"].nunique())


def _contributions(models: list[SavedModel], ranked: pd.DataFrame, top: int) -> pd.DataFrame:
    chosen = ranked[ranked["score"] > 0].head(top)
    if any(saved.model.pooling.update_steps != 1 for saved in models):
        log.warning("no contributions: integrated gradients of the attention logit need update_steps = 1")
        chosen = chosen.iloc[:0]
    return contributions.contributions_table(models, chosen)


def interpret(model: str | Path, store: str | Path, out: str | Path, device: torch.device | str = "cpu",
              subjects: set[str] | None = None, label: str | None = None, top: int = 20, motif_top: int = 20,
              per_repertoire: int = 1000, seed: int = 0, allow_training_subjects: bool = False,
              labels: str = "auto", force: bool = False, attention_file: str | Path | None = None,
              motif_alpha: float = motifs.ALPHA, groups: Mapping[str, str] | None = None) -> Path:
    """Interpret a model (or a fold ensemble) on the repertoires of a store; see the module docstring.

    Parameters
    ----------
    model
        A model directory or a folder of them (an ensemble).
    store
        The repertoire store; `subjects` restricts it (e.g. to a held-out fold).
    out
        Output folder (created); an existing one is replaced only when it is an earlier interpretation
        and `force`, and anything else there is refused, before any work.
    label
        Binary label to interpret (default: the model's only binary label).
    top
        Top-ranked sequences (score > 0) whose residue contributions are computed.
    motif_top
        Most-attended sequences of each positive repertoire searched for motifs (`attend`'s order).
    per_repertoire
        Most-attended sequences of each repertoire that enter the ranking.
    seed
        Seed of the background sample of the motif search.
    allow_training_subjects
        Interpret subjects a model was fitted or validated on instead of refusing (see
        :func:`~deeprc_hopfield.infer.held_out_models`); the tables then say so in a column.
    labels
        Which repertoires are positive: "auto" (the store's label where it has one, else the model's
        call P(positive) >= 0.5), "store" (the store's labels; repertoires without one are refused
        before any work) or "model" (the model's calls even where the store has labels: what new,
        unlabelled patients get). interpretation.json records the choice (settings) and what was
        used (label_source: store, predicted).
    attention_file
        The attention file that `predict --attention` wrote with the same model(s) for these
        repertoires: its scores and attention are used instead of a second pass of the model (refused
        when written by other models or lacking a repertoire).
    motif_alpha
        Family-wise error rate of the motif tests (:func:`~deeprc_hopfield.interpret.motifs.find_motifs`).
    groups
        The donor of each subject (`split --group-column`): the ranking's Fisher test and the motif tests then count
        donors, not repertoires (:mod:`~deeprc_hopfield.interpret.ranking`, "Donors"). None: each repertoire its own.
    """
    out, store = Path(out), Path(store)
    if labels not in ranking.LABEL_CHOICES:
        raise InterpretError(f"labels must be one of {', '.join(ranking.LABEL_CHOICES)}, not {labels!r}")
    _check_output(out, "interpret", force)
    if motif_top > per_repertoire:
        log.warning("--motif-top %d is more than --per-repertoire %d, the most-attended sequences kept of each "
                    "repertoire: motifs are searched among those %d", motif_top, per_repertoire, per_repertoire)
    device = torch.device(device)
    models = load_models(model, device)
    name, positive_class = binary_label(models[0], label)
    with RepertoireStore(store) as opened:
        check_store_species(opened, models[0])  # before the genes: another species' genes are unknown to the model
        check_genes(opened, models[0])
        chosen = _subjects(opened, subjects)
        check_labels(opened, name, chosen, labels, [str(c) for c in models[0].labels[name]["classes"]])
        digests = store_digests(opened)  # a training file ingested again under another name is that subject
    models, seen = held_out_models(models, chosen, allow=allow_training_subjects, digests=digests)
    if attention_file is not None:
        check_attention(attention_file, models, chosen)
    with _output_folder(out, "interpret", force) as tmp:
        subjects_of = subjects_from_store(store, models[0], set(chosen))
        scored = (score_subjects(models, subjects_of, device, attention=True, total=len(chosen))
                  if attention_file is None else scored_from_file(attention_file, models, subjects_of))
        attention = ranking.collect_attention(scored, name, positive_class, per_repertoire, labels, groups)
        ranked = ranking.rank_sequences(attention)
        known = known_receptors(models)
        if known is not None:  # what is known of each ranked sequence: its match to the reference's receptors
            ranked = known.mark(ranked)
        reps = attention.repertoires
        positives = reps.loc[reps["positive"], "subject_id"].tolist()
        negatives = reps.loc[~reps["positive"], "subject_id"].tolist()
        info = {"label": name, "positive_class": positive_class,
                "label_source": "+".join(sorted(attention.label_source)),
                "repertoires": {"positive": len(positives), "negative": len(negatives)},
                "positive_subjects": positives, "negative_subjects": negatives, "model": str(model),
                "models": len(models), "store": str(store),
                "attention_file": str(attention_file) if attention_file is not None else None,
                "settings": {"top": top, "motif_top": motif_top, "per_repertoire": per_repertoire, "seed": seed,
                             "labels": labels, "motif_alpha": motif_alpha},
                "memory_alone_models": sum(bool(saved.training.get("memory_alone")) for saved in models),
                "notes": label_notes(len(positives), len(negatives), f"{name}={positive_class}")}
        info["notes"] += memory_alone_notes(info["memory_alone_models"], len(models))
        if groups is not None:
            grouped = donor_info(reps, attention.donors_by_side(), groups)
            info["notes"] += grouped.pop("notes")
            info.update(grouped)
        if allow_training_subjects:
            info[TRAINING_SUBJECT_COLUMN] = [s for s in chosen if s in seen]
        _write(tmp, ranked, ranking.positives_top_attended(attention, motif_top),
               _motif_samples(store, positives, negatives, seed, info.get("donor_of")),
               _contributions(models, ranked, top), info, motif_alpha)
    return out


def label_notes(n_positive: int, n_negative: int, positive: str) -> list[str]:
    """Warnings of an interpretation whose repertoires are all of one side (`positive`: label=class), logged
    and kept in interpretation.json's `notes`: what the output then lacks, and why."""
    notes = []
    if not n_positive:
        notes.append(f"no repertoire was positive ({positive}; all {n_negative} negative): no sequence scores "
                     "above 0, so motifs.tsv and contributions.tsv are empty and the ranking only shows what "
                     "negatives attend")
    if not n_negative:
        notes.append(f"no negative repertoire (all {n_positive} positive, {positive}): no motif is searched (a motif "
                     "must be more common in positive than in negative repertoires) and no sequence is scored down")
    for note in notes:
        log.warning("%s", note)
    return notes


def _motif_samples(store: Path, positives: list[str], negatives: list[str], seed: int,
                   donor_of: Mapping[str, str] | None = None) -> motifs.RepertoireSamples | None:
    """Samples of each repertoire's sequences, as many from each (:func:`repertoire_samples`): the negatives' are
    the enrichment test's background (how common a pattern is without the condition), and both sides the label
    test's, whose unit is then a donor (`donor_of`: its repertoires' samples pooled) or a repertoire. None without
    both sides: no motif is searched then (:func:`label_notes` says why)."""
    if not (positives and negatives):
        return None
    return motifs.RepertoireSamples(
        pooled_by_donor(repertoire_samples(store, positives, seed=seed + 1), positives, donor_of),
        pooled_by_donor(repertoire_samples(store, negatives, seed=seed), negatives, donor_of))


def searched_foreground(foreground_of: pd.DataFrame, donor_of: Mapping[str, str] | None) -> pd.DataFrame:
    """The foreground sequences the motifs are searched among, with each one's `donor`: with groups, a donor's
    sequence in the top of several of its samples once (one finding, not one a sample)."""
    named = foreground_of.assign(donor=donor_names(foreground_of["subject_id"].tolist(), donor_of))
    return named if donor_of is None else named.drop_duplicates(["donor", *ranking.KEY_COLUMNS])


def pooled_by_donor(samples: list[list[str]], subjects: list[str],
                    donor_of: Mapping[str, str] | None) -> list[list[str]]:
    """The samples of each donor's repertoires pooled into one (the label test's unit), donors in first-seen order."""
    pooled: dict[str, list[str]] = {}
    for donor, sample in zip(donor_names(subjects, donor_of), samples):
        pooled.setdefault(donor, []).extend(sample)
    return list(pooled.values())


def donor_info(repertoires: pd.DataFrame, donors: tuple[int, int], groups: Mapping[str, str]) -> dict[str, object]:
    """interpretation.json's account of a grouped interpretation: the donors by side, each subject's donor (`groups`,
    those of the interpreted subjects) and a note (logged) of what counts donors and of subjects without a group."""
    by_side = [int(repertoires["positive"].sum()), int((~repertoires["positive"]).sum())]
    subjects = repertoires["subject_id"].tolist()
    lacking = [s for s in subjects if s not in groups]
    notes = [f"the {by_side[0]} positive and {by_side[1]} negative repertoires are {donors[0]} and {donors[1]} donors: "
             "the score, fisher_p, log_odds_ratio and the motif tests count donors (a donor by the mean of its "
             "samples); n_, attended_ and mean_attention_ count repertoires"]
    log.info("%s", notes[0])
    if lacking:
        notes.append(f"{len(lacking)} of the {len(subjects)} repertoires have no group ({named_list(lacking, 5)}): "
                     "each counts as a donor of its own")
        log.warning("%s", notes[-1])
    return {"donors": {"positive": donors[0], "negative": donors[1]},
            "donor_of": {s: str(groups[s]) for s in subjects if s in groups}, "notes": notes}


def repertoire_samples(store_path: Path, subject_ids: list[str], size: int = BACKGROUND_SIZE,
                       seed: int = 0) -> list[list[str]]:
    """A seeded sample of each repertoire's CDR3s, `size` in all, as many from each (at least
    :data:`MIN_PER_REPERTOIRE`; a smaller repertoire gives all it has)."""
    each = max(MIN_PER_REPERTOIRE, size // max(len(subject_ids), 1))
    rng = np.random.default_rng(seed)
    samples = []
    with RepertoireStore(store_path) as store:
        for subject in subject_ids:
            rep = store.repertoire(store.index_of(subject))
            picks = np.sort(rng.choice(len(rep), size=min(each, len(rep)), replace=False))
            picked = rep.subset(picks)
            samples.append(decode(picked.codes, picked.lengths))
    return samples


def memory_alone_notes(alone: int, models: int) -> list[str]:
    """A note (logged) when fold models give their clone memory's output alone: their calls rest on the stored
    public clones (config.json `memory_clones`), not on the attention ranked here."""
    if not alone:
        return []
    who = "the model's output is" if models == 1 else f"{alone} of the {models} models' outputs are"
    note = (f"{who} its clone memory alone (training chose it on validation): those calls rest on the stored "
            "public clones (config.json `memory_clones`, `deeprc-hopfield inspect`); the attention ranked here did "
            "not affect them")
    log.warning("%s", note)
    return [note]


def no_motif_note(tested: int, alpha: float, unit: str = "repertoires") -> str:
    """Why motifs.tsv is empty although the positives' most-attended sequences were searched (`unit`: what the
    label test counted, repertoires or donors)."""
    return (f"no motif found: none of the {tested} patterns of the positives' most-attended sequences is enriched "
            f"among them and carried by a larger share of the positive {unit}' sequences than of the negatives' "
            f"(one-sided Fisher and Welch tests, family-wise alpha {alpha:g}, Bonferroni; few {unit} cannot "
            "reach it); what the model attends there is not a motif that tells the classes apart")


@dataclass
class Interpretation:
    """An interpretation folder as read back: its info, its tables and where its logos are."""

    folder: Path
    info: dict  # interpretation.json: label, positive_class, repertoires, subjects, settings, ...
    ranked: pd.DataFrame  # ranked_sequences.tsv, best first
    motifs: pd.DataFrame  # motifs.tsv
    contributions: pd.DataFrame  # contributions.tsv
    foreground: pd.DataFrame | None = None  # motif_foreground.tsv (None: written before it existed)

    @property
    def motif_logos(self) -> list[Path]:
        """The motif logos (PNG) in motif order."""
        return sorted(self.folder.glob(f"{MOTIF_LOGO}_*.png"), key=lambda p: p.stem)

    @property
    def contribution_logo(self) -> Path | None:
        """The residue-contribution logo (PNG), if there is one."""
        path = self.folder / f"{CONTRIBUTION_LOGO}.png"
        return path if path.is_file() else None


def read_interpretation(folder: str | Path) -> Interpretation:
    """Read a folder written by :func:`interpret` or :func:`summarise` (a missing file is an error)."""
    folder = Path(folder)
    text = {c: str for c in (*ranking.KEY_COLUMNS, "top_repertoire", "subject_id")}
    try:
        info = json.loads((folder / INFO_FILE).read_text())
        tables = [pd.read_csv(folder / name, sep="\t", dtype=text)
                  for name in (RANKED_FILE, MOTIFS_FILE, CONTRIBUTIONS_FILE)]
        foreground = (pd.read_csv(folder / FOREGROUND_FILE, sep="\t", dtype=text)
                      if (folder / FOREGROUND_FILE).is_file() else None)
    except FileNotFoundError as exc:
        raise InterpretError(f"not an interpretation folder: {Path(exc.filename).name} is missing (write it with "
                             "`interpret`)", folder) from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InterpretError(f"cannot read the interpretation: {exc}", folder) from None
    return Interpretation(folder, info, *tables, foreground)


def merge_rankings(tables: list[pd.DataFrame], n_positive: int, n_negative: int,
                   donors: tuple[int, int] | None = None) -> pd.DataFrame:
    """One ranking from rankings of disjoint sets of repertoires (and, with `donors`, the totals of each side's
    donors, of disjoint donors): sums add, the rest is recomputed."""
    both = pd.concat(tables, ignore_index=True)
    for suffix in ("positive", "negative"):
        both[f"attention_{suffix}"] = both[f"mean_attention_{suffix}"].fillna(0) * both[f"n_{suffix}"]
    sums = [f"{c}_{s}" for c in ("n", "attended", "attention", "evidence") for s in ("positive", "negative")]
    sums += ranking.DONOR_COLUMNS if donors is not None else []
    row, key = ranking.clone_rows(both)  # rows grouped by clone, as the ranking groups sequences
    both = both.iloc[row].assign(clone=key)
    merged = both.groupby("clone", sort=False)[sums].sum()
    top = both.sort_values("top_attention", ascending=False, kind="stable").drop_duplicates("clone")
    top_columns = [*ranking.KEY_COLUMNS, "top_repertoire", "top_attention", "top_duplicate_count",
                   *[c for c in KNOWN_COLUMNS if c in both.columns]]
    merged = merged.join(top.set_index("clone")[top_columns]).reset_index(drop=True)
    return ranking.finish_ranking(merged, n_positive, n_negative, donors)


def merged_donors(infos: list[dict[str, object]], folders: list[str | Path]
                  ) -> tuple[tuple[int, int] | None, dict[str, str] | None, str | None]:
    """The donors by side and each subject's donor of interpretations to merge, where every one counted donors and
    no donor is in two of them (their counts then add up); else (None, None, why), and the merge counts repertoires
    (None, None, None where none counted donors)."""
    why = unmergeable_donors(infos, folders)
    if why is not None or "donor_of" not in infos[0]:
        return None, None, why
    totals = (sum(info["donors"]["positive"] for info in infos), sum(info["donors"]["negative"] for info in infos))
    return totals, {s: d for info in infos for s, d in info["donor_of"].items()}, None


def unmergeable_donors(infos: list[dict[str, object]], folders: list[str | Path]) -> str | None:
    """Why the donor counts of interpretations cannot be added up (some counted repertoires, or a donor is in two of
    them), None where they can (or none counted donors)."""
    grouped = ["donor_of" in info for info in infos]
    if not any(grouped):
        return None
    if not all(grouped):
        return f"{folders[grouped.index(False)]} counted repertoires (interpreted without groups)"
    seen: dict[str, str] = {}
    for info, folder in zip(infos, folders):
        donors = set(info["donor_of"].values())
        shared = sorted(donors & set(seen))
        if shared:
            return f"donor '{shared[0]}' is in {seen[shared[0]]} and {folder}"
        seen.update(dict.fromkeys(donors, str(folder)))
    return None


def summarise(folders: list[str | Path], store: str | Path, out: str | Path, top: int = 20, motif_top: int = 20,
              seed: int = 0, force: bool = False, motif_alpha: float = motifs.ALPHA) -> Path:
    """The cohort summary of per-fold interpretations (each of its fold's held-out repertoires).

    Rankings are merged (sums over repertoires add up; score, means and tests recomputed), motifs are
    searched again among the merged top sequences against a background sampled from all their
    repertoires, and the contributions of the merged top sequences are those computed by their
    fold's model (a sequence no fold had among its top has none). An existing `out` is replaced only
    when it is an earlier summary and `force`; anything else there is refused, before any work.
    """
    out, store = Path(out), Path(store)
    _check_output(out, "interpret-summary", force)
    read = [read_interpretation(f) for f in folders]
    for r in read:
        if r.foreground is None:
            raise InterpretError(f"written by an older version (no {FOREGROUND_FILE}, what motifs are searched "
                                 "among): run `interpret` on it again", r.folder)
    infos = [r.info for r in read]
    for other, folder in zip(infos[1:], folders[1:]):
        if (other["label"], other["positive_class"]) != (infos[0]["label"], infos[0]["positive_class"]):
            raise InterpretError(f"label {other['label']}={other['positive_class']} differs from "
                                 f"{infos[0]['label']}={infos[0]['positive_class']} of {folders[0]}", folder)
    negatives = [s for info in infos for s in info["negative_subjects"]]
    subjects = [s for info in infos for s in info["positive_subjects"] + info["negative_subjects"]]
    if len(set(subjects)) != len(subjects):
        raise InterpretError("the interpretations share repertoires; a summary needs disjoint ones (one per fold)")
    n_positive = sum(info["repertoires"]["positive"] for info in infos)
    n_negative = sum(info["repertoires"]["negative"] for info in infos)
    donors, donor_of, unmerged = merged_donors(infos, folders)
    with _output_folder(out, "interpret-summary", force) as tmp:
        ranked = merge_rankings([r.ranked for r in read], n_positive, n_negative, donors)
        chosen = ranked[ranked["score"] > 0].head(top)[["rank", *ranking.KEY_COLUMNS]]
        keys = ranking.KEY_COLUMNS
        contributed = pd.concat([r.contributions.assign(source=k) for k, r in enumerate(read)], ignore_index=True)
        contributed = chosen.merge(contributed.drop(columns="rank"), on=keys, how="inner")
        source = contributed.drop_duplicates(keys)[[*keys, "source"]]  # one fold's contributions per sequence
        contributed = contributed.merge(source, on=[*keys, "source"]).sort_values(["rank", "position"], kind="stable")
        info = {"label": infos[0]["label"], "positive_class": infos[0]["positive_class"],
                "label_source": "+".join(sorted({info["label_source"] for info in infos})),
                "repertoires": {"positive": n_positive, "negative": n_negative},
                "positive_subjects": [s for info in infos for s in info["positive_subjects"]],
                "negative_subjects": negatives, "interpretations": [str(f) for f in folders], "store": str(store),
                "settings": {"top": top, "motif_top": motif_top, "seed": seed, "motif_alpha": motif_alpha,
                             "per_repertoire": infos[0]["settings"].get("per_repertoire")},
                "memory_alone_models": sum(info.get("memory_alone_models", 0) for info in infos),
                "notes": label_notes(n_positive, n_negative, f"{infos[0]['label']}={infos[0]['positive_class']}")}
        info["notes"] += memory_alone_notes(info["memory_alone_models"], sum(i.get("models", 1) for i in infos))
        if donors is not None:
            info.update({"donors": {"positive": donors[0], "negative": donors[1]}, "donor_of": donor_of})
        if unmerged is not None:
            info["donors_not_counted"] = unmerged
            info["notes"].append(f"the Fisher and motif tests count repertoires, not donors: {unmerged}; the score "
                                 "adds up each fold's own (by donor in a fold interpreted with groups)")
            log.warning("%s", info["notes"][-1])
        if any(TRAINING_SUBJECT_COLUMN in i for i in infos):  # carried over from --allow-training-subjects
            info[TRAINING_SUBJECT_COLUMN] = [s for i in infos for s in i.get(TRAINING_SUBJECT_COLUMN, [])]
        positives = [s for info in infos for s in info["positive_subjects"]]
        searched = [int(r.info["settings"].get("motif_top", motif_top)) for r in read]
        if min(searched) < motif_top:
            log.warning("the folds' motif searches kept %d most-attended sequences of each positive, fewer than "
                        "--motif-top %d: the summary searches those", min(searched), motif_top)
        foreground_of = pd.concat([r.foreground[r.foreground["rank"] <= motif_top] for r in read], ignore_index=True)
        _write(tmp, ranked, foreground_of, _motif_samples(store, positives, negatives, seed, donor_of),
               contributed[contributions.CONTRIBUTION_COLUMNS], info, motif_alpha)
    return out
