"""Human-readable summaries (`deeprc-hopfield inspect`): of a repertoire store, or of a saved model (what it was
trained on and started from, where training stopped, its clone memory, reference and calibration), read from its
`config.json` alone."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from deeprc_hopfield.errors import StoreError
from deeprc_hopfield.genes import clone_rule_name
from deeprc_hopfield.qc import DROP_REASONS, QC_COLUMNS
from deeprc_hopfield.species import DEFAULT_SPECIES
from deeprc_hopfield.store import RepertoireStore

#: Stored public clones named in a model's summary (all of them are in its config.json).
CLONES_SHOWN = 5


def summarise(path: str | Path, per_repertoire: bool = False) -> str:
    """A store's repertoires, sequences, label balance, QC summary and provenance; or, for a model folder, its
    summary (:func:`model_summary`), and for a folder of them (the workflow's `models/`), a summary of them together
    (:func:`ensemble_summary`) and then each model's; as text."""
    path = Path(path)
    if path.is_dir():
        return _models_summary(path)
    try:
        return _summary(path, per_repertoire)
    except (KeyError, OSError) as exc:  # a store whose groups were removed or damaged after writing
        raise StoreError(f"damaged store: {exc}", path) from None


def _models_summary(folder: Path) -> str:
    from deeprc_hopfield.saved_model import CONFIG_FILE, ModelFileError, model_members

    if (folder / CONFIG_FILE).is_file():
        return model_summary(folder)
    models = model_members(folder)
    if not models:
        raise ModelFileError(f"a folder, but neither a model ({CONFIG_FILE}) nor a folder of models; inspect reads "
                             "a store (.h5) or a model folder", folder)
    return "\n\n".join([ensemble_summary(folder, models), *(model_summary(model) for model in models)])


def ensemble_summary(folder: Path, models: list[Path]) -> str:
    """A folder of fold models in a few lines, before each model's own summary: its members, which of them give their
    clone memory alone, their stored clones, and how `predict` uses them together."""
    from deeprc_hopfield.saved_model import read_model_config

    trainings = [read_model_config(model).get("training", {}) for model in models]
    names = [model.name for model in models]
    alone = [name for name, training in zip(names, trainings) if training.get("memory_alone")]
    trained = [name for name in names if name not in alone]
    clones = [training.get("memory_clones") or [] for training in trainings]
    outputs = [f"{what} in {len(members)} ({', '.join(members)})"
               for what, members in (("the clone memory alone", alone), ("the trained model", trained)) if members]
    rows = [
        ("fold models", f"{len(models)} in {folder}: {', '.join(names)}"),
        ("output", "; ".join(outputs)),
        ("stored clones", f"{len({clone for held in clones for clone in held})} distinct over the {len(models)} "
                          "models (" + ", ".join(f"{name} {len(held)}" for name, held in zip(names, clones)) + ")"),
        ("ensemble", f"`deeprc-hopfield predict --model {shlex.quote(str(folder))} --repertoires DIR --out p.csv` "
                     "scores each new "
                     f"repertoire by all {len(models)} and gives the mean probability and its spread "
                     "(probability_sd); each model follows"),
    ]
    return "\n".join(f"{name:<14}{text}" for name, text in rows)


def model_summary(folder: str | Path) -> str:
    """A saved model's provenance and choices, from its checked `config.json` (the weights are not read)."""
    from deeprc_hopfield.saved_model import read_model_config

    config = read_model_config(folder)
    training, model = config.get("training", {}), config.get("model", {})
    labels = "; ".join(f"{name} ({label['kind']}" + (f": {', '.join(label['classes'])})" if label.get("classes")
                                                     else ")") for name, label in config.get("labels", {}).items())
    clones = training.get("memory_clones") or []
    rows = [
        ("model", f"{folder} (saved by {version_text(config)}, schema "
                  f"{config.get('schema_version')}; weights sha256 {str(config.get('weights_sha256', '?'))[:16]}...)"),
        ("trained on", f"{store_text(training.get('store'))}: {len(training.get('fit_subjects', []))} fitting and "
                       f"{len(training.get('validation_subjects', []))} validation repertoires"),
        ("labels", labels or "(none)"),
        ("new files QC", qc_text(training.get("qc"))),
        ("species", species_text(training.get("species"))),
        ("network", f"CNN of {model.get('n_conv_layers')} layer(s), {model.get('n_filters')} filters of width "
                    f"{model.get('kernel_size')}; {model.get('attention_heads')} attention head(s) of dimension "
                    f"{model.get('attention_dim')}; output network {model.get('head_layers')} hidden layer(s) of "
                    f"{model.get('head_hidden')}"),
        ("training", f"best update {training.get('best_update', '?')} of {training.get('n_updates', '?')} "
                     f"(validation loss {training.get('best_val_loss', float('nan')):.4g}); "
                     f"{training.get('repertoires_per_update')} repertoires x {training.get('sample_size', 0):,} "
                     f"sequences an update, seed {training.get('seed')}"),
        ("seeded k-mers", ", ".join(training.get("seeded_kmers") or []) or "none"),
        ("clone memory", f"{len(clones)} stored clone(s)" + (": " + ", ".join(clones[:CLONES_SHOWN]) if clones else "")
         + (" ..." if len(clones) > CLONES_SHOWN else "")
         + ("; the memory alone is the output" if training.get("memory_alone") else "")),
        ("clone rule", clone_rule_text(training.get("clone_rule"))),
        ("memory/model", memory_choice_text(training.get("memory_choice"))),
        ("reference", reference_text(training.get("reference") or {})),
    ]
    for name, fit in (training.get("calibration") or {}).items():
        rows.append(("calibration", calibration_text(name, fit, training)))
    lines = [f"{name:<14}{text}" for name, text in rows]
    return "\n".join(lines)


def store_text(store: str | None) -> str:
    """The store a model was trained on, as it recorded it: an absolute path, or, for a model saved before training
    recorded it so, the path as given to `train`, relative to the folder it ran in (said so)."""
    if store is None:
        return "?"
    return store if Path(store).is_absolute() else f"{store} (relative to the folder train ran in)"


def version_text(config: dict) -> str:
    """The deeprc-hopfield version that saved a model (its config.json), and this one where they differ."""
    from deeprc_hopfield import __version__
    from deeprc_hopfield.saved_model import VERSION_RECORDED_SINCE, saved_version

    saved = saved_version(config)
    if saved is None:
        return f"a deeprc-hopfield before {VERSION_RECORDED_SINCE} recorded its version; this is {__version__}"
    return f"deeprc-hopfield {saved}" + ("" if saved == __version__ else f"; this is {__version__}")


def qc_text(qc: dict | None) -> str:
    """The quality control `predict` gives new repertoire files: that of the model's store (older models: defaults)."""
    if qc is None:
        return "the defaults (the model predates recording its store's QC)"
    chain = qc.get("chain") or "every locus (10x files: TRB)"
    return (f"junctions (CDR3 + anchors) of {qc.get('min_length')}-{qc.get('max_length')} residues, {chain} "
            "(as its store was ingested)")


def species_text(species: str | None) -> str:
    """Whose genes the model learnt (its store's species), with which `predict` reads new files' gene names."""
    if species is None:
        return f"{DEFAULT_SPECIES} (the model predates recording its store's species)"
    return f"{species} (its store's; predict reads new files' gene names as {species} genes)"


def calibration_text(name: str, fit: dict, training: dict) -> str:
    """A label's calibration and the repertoires it was fitted on: the validation repertoires scored whole, or,
    for a memory alone refit on all training repertoires, those by their clones found without them (what
    training's `calibrate` does; its count is stored as `n_validation` either way)."""
    refit = bool(training.get("memory_alone")) and bool((training.get("clone_rule") or {}).get("refit"))
    on, why = (("training repertoires, each by the clones found without it", "the memory alone, refit; ") if refit
               else ("validation repertoires", ""))
    brier = [fit.get(f"validation_brier_{when}", float("nan")) for when in ("before", "after")]
    return (f"{name}: {fit.get('slope', float('nan')):.3f} x logit {fit.get('intercept', float('nan')):+.3f}, "
            f"fitted on {fit.get('n_validation')} {on} ({why}Brier {brier[0]:.3f} -> {brier[1]:.3f})")


def clone_rule_text(rule: dict | None) -> str:
    """The clone rule a model's memory chose (V level, radius), its AUCs and whether it is used."""
    if not rule:
        return "-"
    return (f"{clone_rule_name(rule.get('v_level'), rule.get('radius'))}; AUC {rule.get('inner_auc', float('nan')):.2f} inner CV, "
            f"{rule.get('validation_auc', float('nan')):.2f} validation"
            + (f"; pgen above {rule['pgen_cutoff']:g} left out" if rule.get("pgen_cutoff") else "")
            + ("" if rule.get("used") else "; not used") + _refit_text(rule.get("refit")))


def memory_choice_text(choice: dict | None) -> str:
    """How the model chose between its clone memory alone and the trained network, on validation repertoires."""
    if not choice:
        return "-"
    kept = "the trained model kept" if choice.get("trained_wins") else "the memory alone kept"
    if choice.get("trained_auc") is None:
        return f"the validation repertoires hold one class: {kept}"
    lead = "" if choice.get("gain_z") is None else f" (the trained model leads by {choice['gain_z']:.2f} SE)"
    return (f"validation AUC{' by donor' if choice.get('units') == 'donors' else ''} "
            f"{choice.get('memory_auc', float('nan')):.3f} by the memory alone, "
            f"{choice['trained_auc']:.3f} by the trained model{lead}: {kept}")


def _refit_text(refit: dict | None) -> str:
    """The clone rule chosen again on all training repertoires for a memory alone, or nothing."""
    if not refit:
        return ""
    return (f"; memory alone, refit on {refit.get('repertoires')} training repertoires: "
            f"{clone_rule_name(refit.get('v_level'), refit.get('radius'))}, {refit.get('clones')} clones (AUC {refit.get('inner_auc', float('nan')):.2f} inner CV)")


def reference_text(reference: dict) -> str:
    """A model's reference of known receptors: its name and whether (and how) the model uses it."""
    if not reference:
        return "-"
    verdict = f"used, radius {reference.get('radius')}" if reference.get("used") else "not used"
    return (f"{reference.get('name')} ({reference.get('n_receptors')} receptors): {verdict}; AUC "
            f"{reference.get('inner_auc', float('nan')):.2f} inner CV, "
            f"{reference.get('validation_auc', float('nan')):.2f} validation")


def _summary(path: str | Path, per_repertoire: bool) -> str:
    with RepertoireStore(path) as store:
        sizes = store.repertoire_sizes()
        lines = [
            f"store        {store.path}",
            f"created      {store.attrs['created']} by deeprc-hopfield {store.attrs['package_version']} "
            f"(schema {store.attrs['schema_version']})",
            f"repertoires  {store.n_repertoires}",
            f"sequences    {store.n_sequences:,} (per repertoire: median {int(np.median(sizes)):,}, "
            f"min {sizes.min():,}, max {sizes.max():,})",
            f"genes        {len(store.v_genes)} V, {len(store.j_genes)} J, {store.species} (ingest --species)",
            "labels",
        ]
        for name in store.label_names:
            label = store.label(name)
            if label.kind == "numeric":
                v = label.values
                lines.append(f"  {name} (numeric): mean {v.mean():.3g}, min {v.min():.3g}, max {v.max():.3g}")
            else:
                n = np.bincount(label.values, minlength=len(label.classes))
                balance = ", ".join(f"{c} {k}" for c, k in zip(label.classes, n))
                lines.append(f"  {name} ({label.kind}): {balance}")
        if not store.label_names:
            lines.append("  (none)")
        qc = store.qc()
        total = qc.sum()
        dropped = ", ".join(f"{r} {total[r]:,}" for r in DROP_REASONS if total[r])
        lines += [
            "quality control (rows)",
            f"  input {total['input_rows']:,}; dropped {sum(total[r] for r in DROP_REASONS):,}"
            f" ({dropped or 'none'}); merged duplicates {total['merged_duplicates']:,}; kept {total['kept']:,}",
            f"  sequences without V gene {total['v_missing']:,}, without J gene {total['j_missing']:,}"
            + (f", without a clone count {total['count_missing']:,}" if "count_missing" in total else ""),
        ]
        prov = store.provenance()
        formats = prov["format"].value_counts()
        lines.append("provenance")
        lines.append("  formats: " + ", ".join(f"{f} {k}" for f, k in formats.items()))
        if "cdr3" in prov.columns:  # stores written before the CDR3 convention was recorded lack it
            given = prov["cdr3"].value_counts()
            lines.append("  CDR3s given as: " + ", ".join(f"{c} {k}" for c, k in given.items())
                         + (" (IMGT CDR3s got their conserved C and F/W back)" if "imgt_cdr3" in given else ""))
        lines.append("  parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(store.parameters.items())))
        for _, row in prov.head(3).iterrows():
            lines.append(f"  {row['source']}  sha256 {row['sha256'][:16]}...")
        if len(prov) > 3:
            lines.append(f"  ... and {len(prov) - 3} more files")
        lines.extend(f"warning at ingest: {message}" for message in store.warnings)
        if per_repertoire:
            lines += ["", qc[[column for column in QC_COLUMNS if column in qc]].to_string()]  # older: no count_missing
        return "\n".join(lines)
