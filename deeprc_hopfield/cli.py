"""The `deeprc-hopfield` command line: one subcommand per step, user mistakes reported in one line."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deeprc_hopfield import __version__, interrupts
from deeprc_hopfield.errors import DeepRCError

if TYPE_CHECKING:  # imported where used: `--help` stays quick
    from deeprc_hopfield.split import Split

log = logging.getLogger("deeprc_hopfield")

#: Most-attended sequences per repertoire that `attend` and `predict --attended` list by default.
TOP_ATTENDED = 20
_EPILOG = "Run `deeprc-hopfield COMMAND --help` for the options of each command."
#: Folders of the demo run (`make demo`) that the subcommands' examples read, and where they write.
_DEMO, _OUT = "results/demo", "results/examples"
_FOLDS = "{0,1,2,3,4}"  # the shell's brace expansion (bash, zsh, fish): one word per fold of the demo


def _examples(*lines: str) -> str:
    """A subcommand's epilog: an 'examples:' block of command lines that work as written from the repository root
    after `make demo` (tests/test_cli.py parses each with the subcommand's parser)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, but an 'examples:' epilog keeps its lines as written: a wrapped command line no longer
    works when copied."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:\n"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value:g}")
    return value


def _motif_alpha(args: argparse.Namespace) -> dict:
    """`motif_alpha` where --motif-alpha was given (else the interpretation's own default)."""
    return {} if args.motif_alpha is None else {"motif_alpha": args.motif_alpha}


def _add_force(p: argparse.ArgumentParser, what: str) -> None:
    """--force: replace an earlier output of the same command at --out, never anything else."""
    p.add_argument("--force", action="store_true",
                   help=f"replace --out when it holds an earlier {what}: a folder is replaced whole, files you "
                        "added to it included; a path holding anything else is never replaced (an existing --out "
                        "is otherwise refused before any work)")


def _add_format(p: argparse.ArgumentParser) -> None:
    """--format: how `ingest`, `predict` and `attend` read repertoire files, one definition for all."""
    from deeprc_hopfield.readers import FORMATS

    p.add_argument("--format", default="auto", choices=["auto", *FORMATS],
                   help="input format of every file (default: detect each file from its header)")


# --- ingest -----------------------------------------------------------------------------------
def _add_ingest(sub: argparse._SubParsersAction) -> None:
    from deeprc_hopfield.genes import LOCI
    from deeprc_hopfield.qc import QCSettings
    from deeprc_hopfield.species import DEFAULT_SPECIES, SPECIES

    defaults = QCSettings()
    p = sub.add_parser(
        "ingest",
        help="read repertoire files, quality-control them and write one HDF5 store",
        description=(
            "Read every repertoire file named in a metadata table (AIRR, immunoSEQ v1/v2, MiXCR, 10x, VDJtools; "
            "plain or gzip; format detected per file), drop unusable rows (counted by reason), merge exact "
            "duplicates, and write one HDF5 store plus a QC table (<store stem>.qc.tsv) beside it. "
            "On any error nothing is written."
        ),
        epilog=_examples(
            f"deeprc-hopfield ingest --metadata data/demo/metadata.csv --repertoires data/demo/repertoires "
            f"--out {_OUT}/cohort.h5 --threads 2",
        ),
    )
    p.add_argument("--metadata", required=True, type=Path,
                   help="table (comma-, tab- or semicolon-separated) with columns subject_id, filename (relative to "
                        "--repertoires) and label column(s); without a label the store is a cohort to classify")
    p.add_argument("--repertoires", required=True, type=Path, help="folder holding the repertoire files")
    p.add_argument("--out", required=True, type=Path, help="the store to write, e.g. cohort.h5")
    p.add_argument("--label-column", action="append", dest="label_columns", metavar="COLUMN",
                   help="label column of the metadata (repeatable; default: 'label' if present)")
    p.add_argument("--positive-class", metavar="VALUE",
                   help="label value to code as the positive class (1) of two-class labels (default: the larger "
                        "of two numbers; else the other of false/no/negative/healthy/control, of 'CMV -' (any "
                        "dash), of 'not detected', 'non-responder', ...; else the second alphabetically, with a "
                        "warning)")
    p.add_argument("--drop-unlabelled", action="store_true",
                   help="leave out subjects whose label value is missing (empty, NA, unknown, ...; their files are "
                        "not read), with a warning that names them, rather than refuse the table; classify them "
                        "with predict after training")
    _add_format(p)
    p.add_argument("--threads", type=_positive_int, default=1, help="worker processes (default: 1)")
    p.add_argument("--min-length", type=_positive_int, default=defaults.min_length,
                   help=f"shortest junction kept (the IMGT CDR3 and its two anchors), in residues (default: "
                        f"{defaults.min_length})")
    p.add_argument("--max-length", type=_positive_int, default=defaults.max_length,
                   help=f"longest junction kept (the IMGT CDR3 and its two anchors), in residues (default: "
                        f"{defaults.max_length}, which keeps IMGT CDR3s of up to {defaults.max_length - 2} residues; "
                        "raise it only for longer ones, as some heavy chains have)")
    p.add_argument("--chain", default=None, type=str.upper, choices=LOCI, metavar="LOCUS",
                   help=f"keep only this locus ({', '.join(LOCI)}): a row's locus is the file's locus or chain "
                        "column, else its V call's (TRBV5-1: TRB), else, without a V call, its J call's (TRAJ33: "
                        "TRA); rows of none are kept (default: every locus; 10x files: TRB)")
    p.add_argument("--species", default=DEFAULT_SPECIES, type=str.lower, choices=SPECIES,
                   help="whose genes the V/J names are: they are normalised with tidytcells' tables of that species "
                        "(a name of no gene of it becomes a missing call), the store records it, and training's "
                        "pgen and predict follow it (default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier store (and its QC table) at --out; anything else there is never replaced")
    p.set_defaults(func=_run_ingest)


def _run_ingest(args: argparse.Namespace) -> int:
    from deeprc_hopfield.ingest import ingest
    from deeprc_hopfield.qc import QCSettings

    if args.min_length > args.max_length:
        raise DeepRCError(f"--min-length {args.min_length} is greater than --max-length {args.max_length}")
    if args.max_length > 255:
        raise DeepRCError(f"--max-length {args.max_length} is above 255, the longest CDR3 a store holds")
    qc = QCSettings(min_length=args.min_length, max_length=args.max_length, chain=args.chain)
    ingest(metadata=args.metadata, repertoires=args.repertoires, out=args.out, label_columns=args.label_columns,
           fmt=args.format, qc=qc, threads=args.threads, progress=sys.stderr.isatty(),
           positive_class=args.positive_class, force=args.force, species=args.species,
           drop_unlabelled=args.drop_unlabelled)
    return 0


# --- inspect ----------------------------------------------------------------------------------
def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="summarise a store (repertoires, sequences, labels, QC, provenance) or a saved model",
        description="Print a summary of a repertoire store written by `deeprc-hopfield ingest`, or of a model "
                    "written by `train` (what it was trained on, where training stopped, the k-mers it started "
                    "from, its clone memory and rule, reference and calibration; from its config.json), or of "
                    "a folder of them (the workflow's results/<run>/models): the fold models together first, then "
                    "each of them.",
        epilog=_examples(
            f"deeprc-hopfield inspect {_DEMO}/cohort.h5 --per-repertoire",
            f"deeprc-hopfield inspect {_DEMO}/models",
            f"deeprc-hopfield inspect {_DEMO}/models/fold0",
        ),
    )
    p.add_argument("store", type=Path, metavar="PATH", help="a store (.h5), a model folder or a folder of models")
    p.add_argument("--per-repertoire", action="store_true", help="also print the QC counts of every repertoire")
    p.set_defaults(func=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from deeprc_hopfield.inspect import summarise

    print(summarise(args.store, per_repertoire=args.per_repertoire))
    return 0


# --- simulate ---------------------------------------------------------------------------------
def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a labelled cohort with known truth (OLGA backgrounds, implanted motifs)",
        description=(
            "Write a simulated cohort to DIR: background CDR3s with V and J genes drawn from OLGA's default "
            "model of the chain for --species, heavy-tailed clone counts, motifs implanted in the CDR3 middle of a "
            "binomial share of each positive repertoire's sequences (at least one), optional public clones, "
            "optional whole receptors from a list (--signal-pool). "
            "Files: DIR/metadata.csv, DIR/repertoires/, DIR/truth/implanted.tsv, DIR/truth/parameters.yaml "
            "(and DIR/truth/signal_pool.tsv). "
            "The same options give byte-identical files whatever --threads is. Bad options are refused "
            "before anything is written."
        ),
        epilog=_examples(
            f"deeprc-hopfield simulate --out {_OUT}/simulated --n-repertoires 100 --sequences-per-repertoire 2000 "
            "--witness-rate 0.0075 --motifs GR.DT --seed 2024 --gzip --no-nucleotides --threads 2  "
            "# data/demo's settings",
            f"deeprc-hopfield simulate --out {_OUT}/simulated_public --n-repertoires 40 --sequences-per-repertoire 1000 "
            "--witness-rate 0.01 --public-clones 20 --public-rate 0.3 --gzip",
        ),
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="output folder (must not exist, or be empty; see --force)")
    p.add_argument("--n-repertoires", required=True, type=int, metavar="N", help="number of repertoires (>= 2)")
    p.add_argument("--sequences-per-repertoire", required=True, type=int, metavar="S",
                   help="sequences (clones) per repertoire; the mean when --size-spread > 0")
    p.add_argument("--witness-rate", type=float, metavar="W",
                   help="expected share of a positive repertoire's sequences that carry a motif, in (0, 1]; "
                        "required, unless --signal-pool is given (then default 0: no motif)")
    p.add_argument("--seed", type=int, default=0, metavar="K", help="random seed, >= 0 (default: 0)")
    p.add_argument("--motifs", default="GR.DT", metavar="LIST",
                   help="comma-separated motifs of amino-acid letters; '.' is a gap that keeps the background "
                        "residue, e.g. GRDT,AL.QG (default: GR.DT)")
    p.add_argument("--substitution-rate", type=float, default=0.0, metavar="P",
                   help="probability that an implanted motif residue is replaced by another amino acid "
                        "(default: 0)")
    p.add_argument("--positive-fraction", type=float, default=0.5, metavar="F",
                   help="share of repertoires labelled positive (default: 0.5)")
    p.add_argument("--noise-rate", type=float, default=0.0, metavar="W0",
                   help="expected share of a negative repertoire's sequences that carry a motif (default: 0)")
    p.add_argument("--size-spread", type=float, default=0.0, metavar="SIGMA",
                   help="standard deviation of log repertoire size (log-normal sizes, mean S); 0 = all of "
                        "size S (default: 0)")
    p.add_argument("--public-clones", type=int, default=0, metavar="N",
                   help="number of disease-associated public clones (CDR3 + V + J) shared by positives "
                        "(default: 0)")
    p.add_argument("--public-rate", type=float, default=0.0, metavar="P",
                   help="probability that a positive repertoire carries a given public clone (default: 0)")
    p.add_argument("--mixed-positives", type=float, metavar="F",
                   help="split the positives by signal: a seeded share F in [0, 1] of them (rounded; at least one "
                        "of each group when 0 < F < 1) carry public clones and no motif witness, the others motif "
                        "witnesses and no public clone (each group is like a negative on the signal it lacks: "
                        "clone-only positives get motifs at --noise-rate); truth/signal_groups.tsv names each "
                        "repertoire's group. Needs --public-clones and --witness-rate > 0 (default: every "
                        "positive carries both)")
    rough = p.add_argument_group(
        "rough public clones", "public clones as real cohorts carry them; with any of these options "
        "truth/public_clones.tsv lists every clone and family member, and truth/implanted.tsv gains the columns "
        "clone, true_v_call and v_noise")
    rough.add_argument("--public-v-noise", type=float, default=0.0, metavar="F",
                       help="share of the occurrences of public clones and signal-pool receptors written with "
                            "another V call: another gene of the same family, the family alone (TRBV5; "
                            "immunoSEQ: v_gene unresolved, v_family TCRBV05) or none (AIRR: empty v_call; "
                            "immunoSEQ: unresolved), with equal chances (default: 0)")
    rough.add_argument("--public-variants", type=int, default=1, metavar="K",
                       help="each public clone is a family of K CDR3s with its V and J: itself and K-1 variants "
                            "one amino-acid substitution away (not at the 3 conserved residues at either end); "
                            "an occurrence carries one member, drawn with equal chance; 1 to 100 (default: 1, "
                            "exact clones)")
    rough.add_argument("--public-clone-list", type=Path, metavar="FILE",
                       help="draw the --public-clones clones from this table of known receptors (a VDJdb export "
                            "or a table with junction_aa/cdr3, v_call, j_call and optionally epitope; rows of "
                            "another chain or without a V or J call are left out) instead of from OLGA's model; "
                            "vdjdb-cmv-trb names the shipped list of CMV-specific TRB receptors")
    pool = p.add_argument_group(
        "signal pool", "whole receptors (CDR3 with V and J) from a list, e.g. disease-specific database entries: "
        "each positive carries about R receptors of the pool, every repertoire about R0 of the whole list by "
        "chance; they replace background rows and keep the list's V and J; truth/signal_pool.tsv lists them")
    pool.add_argument("--signal-pool", type=Path, metavar="FILE",
                      help="TSV/CSV (plain or gzip) with columns junction_aa (or VDJdb's CDR3), v_call (or V) and "
                           "j_call (or J); rows of another chain are left out; vdjdb-cmv-trb names the shipped "
                           "list of CMV-specific TRB receptors")
    pool.add_argument("--pool-size", type=int, metavar="N",
                      help="receptors of the list that form the disease pool, drawn once with the seed "
                           "(default: all)")
    pool.add_argument("--receptors-per-positive", type=float, metavar="R",
                      help="mean (Poisson) number of distinct pool receptors in a positive repertoire (default: 10)")
    pool.add_argument("--receptors-per-negative", type=float, metavar="R0",
                      help="mean (Poisson) number of distinct receptors of the whole list that every repertoire "
                           "carries by chance: all a negative carries, besides R in a positive (default: 1)")
    pool.add_argument("--pool-sharing", choices=["pgen", "zipf", "uniform"],
                      help="a receptor's chance to be drawn: its OLGA generation probability to the power A "
                           "(pgen; ~20 ms a TRB receptor, seconds an IGH one), rank^-A in a random order of the "
                           "list (zipf), or equal (uniform) (default: pgen)")
    pool.add_argument("--pool-sharing-exponent", type=float, metavar="A",
                      help="the exponent A of pgen and zipf sharing, > 0; larger: the likeliest receptors are "
                           "shared by more repertoires (default: 1)")
    p.add_argument("--chain", default="TRB", type=str.upper, choices=["TRB", "TRA", "IGH", "IGK", "IGL"],
                   help="locus; backgrounds come from OLGA's default model of it for --species (default: TRB)")
    p.add_argument("--species", default="human", type=str.lower, choices=["human", "mouse"],
                   help="human, or mouse (OLGA's mouse TRB and TRA models, mouse gene names; ingest the cohort with "
                        "--species mouse); receptor lists (--signal-pool, --public-clone-list) are human "
                        "(default: human)")
    p.add_argument("--format", dest="fmt", default="airr", choices=["airr", "immunoseq"],
                   help="repertoire file format: AIRR Rearrangement TSV or an immunoSEQ v1 export (default: airr)")
    p.add_argument("--gzip", action="store_true",
                   help="write gzip-compressed repertoire files (.tsv.gz, reproducible bytes)")
    p.add_argument("--no-nucleotides", dest="nucleotides", action="store_false",
                   help="leave out the nucleotide junction column (files about half the size)")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="worker processes; the output does not depend on it (default: 1)")
    _add_force(p, "simulation (a folder written by `simulate`)")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from deeprc_hopfield.errors import SimulationError
    from deeprc_hopfield.simulate import SimulationSettings, parse_motifs, simulate
    from deeprc_hopfield.simulate.settings import POOL_OPTIONS

    pool = {name: getattr(args, name) for name in POOL_OPTIONS if getattr(args, name) is not None}
    if args.signal_pool is not None:
        pool["signal_pool"] = str(args.signal_pool)
    if args.witness_rate is None and args.signal_pool is None:
        raise SimulationError("--witness-rate is required (unless --signal-pool is given)")
    settings = SimulationSettings(
        n_repertoires=args.n_repertoires, sequences_per_repertoire=args.sequences_per_repertoire,
        witness_rate=0.0 if args.witness_rate is None else args.witness_rate, seed=args.seed,
        motifs=parse_motifs(args.motifs),
        substitution_rate=args.substitution_rate, positive_fraction=args.positive_fraction,
        noise_rate=args.noise_rate, size_spread=args.size_spread, public_clones=args.public_clones,
        public_rate=args.public_rate, chain=args.chain, species=args.species, fmt=args.fmt, compress=args.gzip,
        nucleotides=args.nucleotides, public_v_noise=args.public_v_noise, public_variants=args.public_variants,
        public_clone_list=None if args.public_clone_list is None else str(args.public_clone_list),
        mixed_positives=args.mixed_positives, **pool,
    )
    simulate(settings, args.out, threads=args.threads, force=args.force)
    return 0


# --- train / predict / attend -----------------------------------------------------------------
def _add_train(sub: argparse._SubParsersAction) -> None:
    from deeprc_hopfield.data import CONFIG_SCHEMA_NAME
    from deeprc_hopfield.genes import LOCI

    p = sub.add_parser(
        "train",
        help="train a model on a store (optionally on the training folds of a split)",
        description=(
            "Train a CNN + Hopfield-attention model on the repertoires of a store. Each update samples "
            "repertoires and sequences, scores them all without gradients and back-propagates through the "
            "most-attended 10%; the model is selected on an inner validation split of the training "
            "repertoires (never the test fold); the fitting repertoires are the training repertoires less "
            "these inner validation ones. The clone memory: public clones (a CDR3, with its V gene or family "
            "where the clone rule says so, that several people carry) that a Fisher test on the training "
            "repertoires associates with the positive class; they are stored in the model, and matched in every "
            "repertoire it scores. Writes MODEL_DIR (config.json, weights.safetensors, "
            "metrics.csv) and a checkpoint MODEL_DIR.checkpoint that --resume continues from. "
            "--resume-if-possible continues from it only when it is of this very run (same store, split "
            "and fold, labels, model and training config, --checkpoint-every and --embed-chunk aside) and "
            "starts afresh otherwise; the workflow "
            "uses it so that an interrupted training job picks up where it stopped."
        ),
        epilog=_examples(
            f"deeprc-hopfield train --store {_DEMO}/cohort.h5 --split {_DEMO}/split.csv --fold 0 "
            f"--config {_DEMO}/train.yaml --clones {_DEMO}/clones.h5 --out {_OUT}/fold0 --threads 2  "
            "# fold 0 as the demo trained it",
            f"deeprc-hopfield train --store {_DEMO}/cohort.h5 --split {_DEMO}/split.csv --fold 0 --updates 100 "
            f"--out {_OUT}/fold0_quick",
        ),
    )
    p.add_argument("--store", required=True, type=Path, help="the HDF5 store made by `ingest`")
    p.add_argument("--out", required=True, type=Path, metavar="MODEL_DIR",
                   help="model directory to write (see --force)")
    _add_force(p, "model (a folder written by `train`; --resume and --resume-if-possible imply it)")
    p.add_argument("--config", type=Path,
                   help="a training YAML with `model:` and `training:` sections only (not the workflow's config, "
                        "whose sections these are: the workflow writes results/RUN/train.yaml), e.g. training: "
                        "{sample_size: 10000, seed: 1}; each key, its default and bounds are in the workflow config's "
                        f"schema ({CONFIG_SCHEMA_NAME}, shipped in the package), plus training.seed (the workflow's "
                        "top-level seed); a key left out takes its default")
    p.add_argument("--label-column", action="append", dest="label_columns", metavar="COLUMN",
                   help="label(s) to learn, repeatable (default: every label of the store); the first should be "
                        "binary: it drives the k-mer seeding and the clone memory")
    p.add_argument("--split", type=Path, help="split table (subject_id, fold) made by `split`; goes with --fold K")
    p.add_argument("--fold", type=int, help="the held-out fold of --split, numbered from 0 (never seen in training)")
    p.add_argument("--updates", type=_positive_int, dest="n_updates",
                   help="number of updates (overrides the config's n_updates; default 600)")  # tests/test_cli.py
    p.add_argument("--seed", type=int, help="random seed (overrides the config; default 0)")
    p.add_argument("--checkpoint-every", type=_positive_int, metavar="N",
                   help="updates between checkpoints (overrides the config's checkpoint_every; default 100)")
    p.add_argument("--embed-chunk", type=_positive_int, metavar="N",
                   help="sequences embedded at once (scoring passes and the training step); lower it where memory runs out "
                        "(overrides the config's embed_chunk; default 8192). Like --checkpoint-every, it changes how "
                        "training runs, not what it learns: --resume continues a checkpoint made under another value")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads, and the processes computing OLGA's pgen "
                                                         "of the public-clone candidates (default: torch's choice, "
                                                         "usually every core)")
    p.add_argument("--device", default="auto",
                   help="auto (GPU when present), cpu or cuda (default: auto; which GPU: CUDA_VISIBLE_DEVICES)")
    _add_pgen_cache(p)
    _add_clones_file(p, "the clone memory's")
    known = p.add_argument_group(
        "known receptors", "a table of receptors of known specificity (e.g. a VDJdb export) as prior knowledge: "
        "each repertoire's matches enter the attention and the output when inner cross-validation on the fitting "
        "repertoires finds them useful, and change nothing otherwise; interpretation marks them")
    known.add_argument("--reference", type=Path, metavar="FILE",
                       help="VDJdb export (web SearchTable-*.tsv, or vdjdb.txt / vdjdb.slim.txt of a release) or a "
                            "TSV/CSV with junction_aa (or cdr3_aa, cdr3) and optional v_call, j_call, locus, species, "
                            "epitope, antigen, antigen_gene; plain or gzip; vdjdb-cmv-trb names the shipped list of "
                            "CMV-specific TRB receptors (a VDJdb extract)")
    known.add_argument("--reference-chain", type=str.upper, choices=LOCI,
                       help="keep only receptors of this chain (rows of unknown chain are kept)")
    known.add_argument("--reference-species", metavar="SPECIES",
                       help="keep only receptors of this species, e.g. HomoSapiens (also: human, mouse); not applied "
                            "to a file without a species column (default: the store's species, where the file has "
                            "one; another species than the store's is refused)")
    known.add_argument("--reference-antigen", metavar="NAME[,NAME...]",
                       help="keep only receptors of these antigens, epitopes or antigen genes, e.g. CMV or NLVPMVATV")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue from MODEL_DIR.checkpoint (an error when there is none, or when it is "
                             "of another store, split, fold, label or model)")
    resume.add_argument("--resume-if-possible", action="store_true",
                        help="continue from MODEL_DIR.checkpoint when it is of this very run, else train from "
                             "the start; the log says which")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from deeprc_hopfield.reference import ReferenceOptions
    from deeprc_hopfield.training import train

    _set_threads(args.threads)
    reference = ReferenceOptions(args.reference, args.reference_chain, args.reference_species,
                                 args.reference_antigen) if args.reference else None
    with _pgen_cache(args):
        train(store_path=args.store, out=args.out, config_path=args.config, label_columns=args.label_columns,
              split=args.split, fold=args.fold, device=args.device,
              resume="auto" if args.resume_if_possible else args.resume, seed=args.seed, n_updates=args.n_updates,
              progress=sys.stderr.isatty(), force=args.force, reference=reference, clones=args.clones,
              checkpoint_every=args.checkpoint_every, embed_chunk=args.embed_chunk)
    return 0


def _add_clones_file(p: argparse.ArgumentParser, whose: str) -> None:
    p.add_argument("--clones", type=Path, metavar="FILE",
                   help=f"clones file of this store, split and seed (`deeprc-hopfield clones`; another one is "
                        f"refused): {whose} public clones are read from it instead of collected by reading the "
                        "cohort again (the same result; the workflow makes it once for all folds)")


def _add_pgen_cache(p: argparse.ArgumentParser) -> None:
    from deeprc_hopfield.pgen import CACHE_VARIABLE

    p.add_argument("--pgen-cache", metavar="DIR|none",
                   help="folder where the generation probabilities of candidate public clones (OLGA, slow) are "
                        "kept and shared by jobs and later runs; none: not kept (default: "
                        f"${CACHE_VARIABLE}, else ~/.cache/deeprc-hopfield/pgen)")


def _pgen_cache(args: argparse.Namespace):
    """The pgen disk cache of `--pgen-cache` (a context manager)."""
    from deeprc_hopfield.pgen import default_cache_folder, disk_cache

    chosen = args.pgen_cache
    return disk_cache(None if chosen == "none" else Path(chosen) if chosen else default_cache_folder())


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _add_inference_source(p: argparse.ArgumentParser) -> None:
    from deeprc_hopfield.genes import LOCI

    p.add_argument("--model", required=True, type=Path, nargs="+", metavar="MODEL",
                   help="model directory written by `train`, or a folder of them (the fold models of a "
                        "cross-validation: an ensemble, whose probabilities and attention are averaged and the "
                        "probabilities' spread reported), or "
                        "several model directories (an ensemble of those)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", type=Path, help="repertoires from a store (of the model's store's species: "
                                                   "another is refused)")
    source.add_argument("--repertoires", type=Path,
                        help="repertoire files in a folder, or one file (any supported format), read with the QC of "
                             "the model's store and its species' gene names (ingest --species); without --metadata "
                             "every file is read, except hidden ones and earlier outputs of predict/attend, and its "
                             "subject id is its name less its table and gzip extensions and MiXCR's clone-table "
                             "suffix (PT03.clones_TRB.tsv: PT03); every file is read before any is refused, and one "
                             "error names each file's problems")
    p.add_argument("--metadata", type=Path, help="with --repertoires: the files to read, their subject ids and true "
                                                 "labels (a missing label leaves true_label empty)")
    _add_format(p)
    p.add_argument("--chain", default=None, type=str.upper, choices=LOCI, metavar="LOCUS",
                   help="with --repertoires: keep only this locus of the files, as `ingest --chain` does "
                        f"({', '.join(LOCI)}; a row's locus column, else its V call's), in place of the chain of "
                        "the QC the model's store was ingested with (its config.json; the files otherwise get that, and 10x "
                        "files TRB where it is none): e.g. --chain TRB for a TRB model given TRA and TRB contigs")
    p.add_argument("--split", type=Path, help="with --store: split table (subject_id, fold) ...")
    p.add_argument("--fold", type=int, help="... only the repertoires of this fold (the held-out ones)")
    p.add_argument("--group-column", metavar="COLUMN",
                   help="a column of --metadata (with --store: of its metadata table) naming each subject's group, "
                        "e.g. its donor: a subject of a group a model was fitted or validated on (models trained on "
                        "a split made with --group-column record their groups) is not scored by that model, as a "
                        "training subject is not")
    _add_allow_training_subjects(p)
    p.add_argument("--threads", type=_positive_int,
                   help="torch CPU threads (default: torch's choice, usually every core)")
    p.add_argument("--device", default="auto",
                   help="auto (GPU when present), cpu or cuda (default: auto; which GPU: CUDA_VISIBLE_DEVICES)")


def _add_allow_training_subjects(p: argparse.ArgumentParser) -> None:
    """The option of the scoring commands (predict, attend, interpret) to score training subjects."""
    p.add_argument("--allow-training-subjects", action="store_true",
                   help="score subjects a model was fitted or validated on instead of refusing (a folder of "
                        "models otherwise uses the models that held the subjects out, e.g. with --split/--fold "
                        "K the model of fold K); the output's column scored_by_training_model says which")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify repertoires with a trained model",
        description="Classify whole repertoires (never sub-sampled) from a store or from repertoire files. "
                    "One row per repertoire: subject_id, probability per class, predicted label, the true "
                    "label when known, then unknown_v_share (the share of its V-called sequences whose V gene the "
                    "model does not know: another chain or species; a family-only call, as immunoSEQ's where the "
                    "gene is unresolved, of a family the model knows is not counted; empty where no sequence has a "
                    "V call) and warnings (a note where that share makes the score mean little, as the log's "
                    "warning, or where the repertoire is a copy or another sample of a training subject's; empty "
                    "for a clean repertoire). Probabilities are written to 7 significant digits.",
        epilog=_examples(
            f"deeprc-hopfield predict --model {_DEMO}/models --repertoires data/demo/repertoires "
            f"--out {_OUT}/new_predictions.csv  # your new patients' folder in place of data/demo's",
            f"deeprc-hopfield predict --model {_DEMO}/models --store {_DEMO}/cohort.h5 --split {_DEMO}/split.csv "
            f"--fold 0 --out {_OUT}/fold0_predictions.csv --attended {_OUT}/fold0_attended.tsv",
        ),
    )
    _add_inference_source(p)
    p.add_argument("--out", required=True, type=Path, help="predictions CSV to write (see --force)")
    p.add_argument("--attended", type=Path, metavar="TSV",
                   help="from the same pass, also write the --top most-attended sequences of each repertoire "
                        "(what `attend` writes; each row with its repertoire's probability and predicted class)")
    p.add_argument("--top", type=_positive_int, help=f"with --attended: sequences per repertoire "
                                                      f"(default: {TOP_ATTENDED})")
    p.add_argument("--attention", type=Path, metavar="H5",
                   help="from the same pass, also write every sequence's attention to this HDF5 file, for "
                        "`interpret --attention` (which then does not run the model over the repertoires again)")
    _add_force(p, "predictions table (written by `predict`)")
    p.set_defaults(func=_run_predict)


def _add_attend(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attend",
        help="list the sequences each repertoire's attention points at",
        description="Write the K most-attended sequences of each repertoire, highest first, as a TSV with AIRR "
                    "column names (repertoire_id; the repertoire's call, as `predict` writes it: probability, or "
                    "probability_<class> per class, and predicted, each prefixed by the label's name for a model "
                    "of several labels; rank, attention, junction_aa, v_call, j_call, duplicate_count) and "
                    "family, family_size (near-identical sequences of one repertoire's list share the rank of their "
                    "family's best row). "
                    "attention is the sequence's share of the repertoire's attention: one softmax over its "
                    "(sequence, head) pairs, the sequence's best head, times the number of heads, so a repertoire's "
                    "weights sum to between 1 and the number of heads and 1/n (n sequences) is uniform, what every "
                    "sequence would get if the model had no preference; with several "
                    "models, their mean. Every repertoire's weights sum alike whatever the call: a control's top "
                    "sequences are merely its best matches, which its row's probability and predicted say.",
        epilog=_examples(
            f"deeprc-hopfield attend --model {_DEMO}/models/fold0 --store {_DEMO}/cohort.h5 --split {_DEMO}/split.csv "
            f"--fold 0 --top 10 --out {_OUT}/fold0_top10.tsv",
            f"deeprc-hopfield attend --model {_DEMO}/models --repertoires data/demo/repertoires "
            f"--out {_OUT}/attended.tsv",
        ),
    )
    _add_inference_source(p)
    p.add_argument("--top", type=_positive_int, default=TOP_ATTENDED,
                   help=f"sequences per repertoire (default: {TOP_ATTENDED})")
    p.add_argument("--out", required=True, type=Path, help="TSV to write (see --force)")
    _add_force(p, "attended-sequence table (written by `attend`)")
    p.set_defaults(func=_run_attend)


def _inference(args: argparse.Namespace, top: int, attention: Path | None = None):  # noqa: ANN202
    from deeprc_hopfield.devices import resolve_device
    from deeprc_hopfield.infer import (TrainingGuard, file_entries, load_models, predict, reads_v_genes,
                                       store_digests, store_subject_ids, subject_groups, subjects_from_files,
                                       subjects_from_store)
    from deeprc_hopfield.metadata import read_metadata
    from deeprc_hopfield.split import Split
    from deeprc_hopfield.store import RepertoireStore

    _set_threads(args.threads)
    device = resolve_device(args.device)
    split = Split.from_options(args.split, args.fold)
    if split is not None and args.store is None:
        raise DeepRCError("--split/--fold select repertoires of a --store (with --repertoires, name the files to "
                          "score with --metadata)")
    if args.metadata is not None and args.store is not None:
        raise DeepRCError("--metadata goes with --repertoires (a store holds its own subject ids and labels)")
    if args.chain is not None and args.store is not None:
        raise DeepRCError("--chain goes with --repertoires (a store's files were read with ingest's --chain)")
    if args.format != "auto" and args.store is not None:
        raise DeepRCError("--format goes with --repertoires (a store's files were read with ingest's --format)")
    if args.group_column is not None and args.store is None and args.metadata is None:
        raise DeepRCError("--group-column names a column of --metadata (or of a --store's metadata table)")
    models = load_models(args.model, device)
    only = split.held_out(args.fold) if split is not None else None
    if args.store is not None:
        ids = store_subject_ids(args.store, only)
        with RepertoireStore(args.store) as store:
            digests = store_digests(store)
            groups = subject_groups(store.metadata(), args.group_column, args.store)
        guard = TrainingGuard(models, allow=args.allow_training_subjects, groups=groups)
    else:
        entries = file_entries(args.repertoires, args.metadata, models[0].labels)
        ids, digests = [entry.subject_id for entry in entries], {}
        groups = (subject_groups(read_metadata(args.metadata, args.repertoires, []).table, args.group_column,
                                 args.metadata) if args.group_column is not None else None)
        guard = TrainingGuard(models, allow=args.allow_training_subjects,
                              files={entry.subject_id: entry.path for entry in entries}, groups=groups)
    plan = guard.planned(ids, digests)  # training subjects refused before any repertoire is read
    attention_models = guard.one_model_set(plan) if attention is not None else None
    if args.store is not None:
        subjects = subjects_from_store(args.store, models[0], only, reads_v=any(map(reads_v_genes, models)))
    else:
        subjects = subjects_from_files(entries, models[0], fmt=args.format, chain=args.chain,
                                       reads_v=any(map(reads_v_genes, models)))
    return predict(models, subjects, device, top=top, guard=guard, attention_file=attention, total=len(ids),
                   attention_models=attention_models)


def _distinct_outputs(**outputs: Path | None) -> None:
    """Refuse two outputs of one command at one path (the second would replace the first)."""
    given = {option: Path(path).absolute() for option, path in outputs.items() if path is not None}
    for k, (option, path) in enumerate(given.items()):
        for other, there in list(given.items())[:k]:
            if path == there or path.resolve() == there.resolve():
                raise DeepRCError(f"--{other.replace('_', '-')} and --{option.replace('_', '-')} name one file; "
                                  "give each output its own", path)


def _run_predict(args: argparse.Namespace) -> int:
    from deeprc_hopfield.infer import is_predictions_table
    from deeprc_hopfield.io import check_output, write_table

    from deeprc_hopfield.attention_file import is_attention_file
    from deeprc_hopfield.infer import is_attended_table

    if args.top is not None and args.attended is None:
        raise DeepRCError("--top goes with --attended (the most-attended sequences to list)")
    _distinct_outputs(out=args.out, attended=args.attended, attention=args.attention)
    check_output(args.out, "predict", args.force, folder=False, recognise=is_predictions_table)
    if args.attended is not None:
        check_output(args.attended, "predict", args.force, folder=False, recognise=is_attended_table,
                     option="--attended")
    if args.attention is not None:
        check_output(args.attention, "predict", args.force, folder=False, recognise=is_attention_file,
                     option="--attention")
    predictions, attended = _inference(args, top=(args.top or TOP_ATTENDED) if args.attended is not None else 0,
                                       attention=args.attention)
    write_table(predictions, args.out)
    log.info("wrote %s (%d repertoires)", args.out, len(predictions))
    if args.attended is not None:
        write_table(attended, args.attended, sep="\t")
        log.info("wrote %s (%d sequences)", args.attended, len(attended))
    if args.attention is not None:
        log.info("wrote %s (every sequence's attention, for `interpret --attention`)", args.attention)
    return 0


def _run_attend(args: argparse.Namespace) -> int:
    from deeprc_hopfield.infer import is_attended_table
    from deeprc_hopfield.io import check_output, write_table

    check_output(args.out, "attend", args.force, folder=False, recognise=is_attended_table)
    _, attended = _inference(args, top=args.top)
    write_table(attended, args.out, sep="\t")
    log.info("wrote %s (%d sequences)", args.out, len(attended))
    return 0


# --- interpret ----------------------------------------------------------------------------------
def _add_interpret(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interpret",
        help="rank the sequences, motifs and residues behind the positive calls of a model",
        description=(
            "Run a model (or a folder of fold models: an ensemble) over whole repertoires of a store and write "
            "DIR/ranked_sequences.tsv (one cohort-level ranking: each sequence scored by the bits of "
            "above-uniform attention it gets in positive repertoires minus those in negative ones, a bit being a "
            "doubling of the attention it would get if the model attended every sequence of the repertoire "
            "alike, with incidence by label, mean relative attention (attention times the repertoire's number of "
            "sequences: 1 = that uniform share) and a Fisher test), DIR/motifs.tsv (gapped k-mers "
            "enriched among the positives' most-attended sequences against the negative repertoires, '.' = any residue) with "
            "logos motif_N.png/.svg, and DIR/contributions.tsv (per-residue integrated gradients of the top "
            "sequences' attention logits: the scores, before the softmax, by which the model picks a sequence out "
            "of its repertoire; how much each residue adds to that score) with the logo contributions.png/.svg. DIR is written whole or not at "
            "all. Binary labels only."
        ),
        epilog=_examples(
            f"deeprc-hopfield interpret --model {_DEMO}/models/fold0 --store {_DEMO}/cohort.h5 --split "
            f"{_DEMO}/split.csv --fold 0 --attention {_DEMO}/attention/fold0.h5 --out {_OUT}/interpretation_fold0",
            f"deeprc-hopfield interpret --model {_DEMO}/models/fold1 --store {_DEMO}/cohort.h5 --split "
            f"{_DEMO}/split.csv --fold 1 --out {_OUT}/interpretation_fold1 --threads 2",
        ),
    )
    p.add_argument("--model", required=True, type=Path,
                   help="model directory written by `train`, or a folder of them (a fold ensemble)")
    p.add_argument("--store", required=True, type=Path, help="the HDF5 store made by `ingest`")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (see --force)")
    _add_force(p, "interpretation (a folder written by `interpret`)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--split", type=Path, help="split table (subject_id, fold) ...")
    which.add_argument("--subjects", nargs="+", metavar="ID", help="only these repertoires (subject ids)")
    p.add_argument("--fold", type=int, help="... with --split: only the repertoires of this fold (the held-out ones)")
    p.add_argument("--label-column", metavar="COLUMN", help="binary label to interpret (default: the model's only one)")
    p.add_argument("--group-column", metavar="COLUMN",
                   help="column of the store's metadata table naming each repertoire's donor (several samples a "
                        "donor): the Fisher test of the ranking and the motif tests then count donors, not "
                        "repertoires (default: the groups of a --split made with --group-column, else none)")
    p.add_argument("--per-repertoire", type=_positive_int, default=1000,
                   help="most-attended sequences of each repertoire that enter the ranking (default: 1000)")
    p.add_argument("--labels", choices=("auto", "store", "model"), default="auto",
                   help="which repertoires count as positive: auto = the store's label where it has one, else the "
                        "model's call (P >= 0.5); store = the store's labels only (refuses repertoires without "
                        "one); model = the model's calls even where the store has labels, i.e. what new, unlabelled "
                        "patients get (default: auto; interpretation.json says which were used)")
    p.add_argument("--attention", type=Path, metavar="H5",
                   help="the attention file `predict --attention` wrote with the same model for these repertoires: "
                        "rank from it instead of running the model over them again (refused when written by "
                        "another model or lacking a repertoire)")
    _add_allow_training_subjects(p)
    _add_interpret_options(p)
    p.add_argument("--threads", type=_positive_int,
                   help="torch CPU threads (default: torch's choice, usually every core)")
    p.add_argument("--device", default="auto",
                   help="auto (GPU when present), cpu or cuda (default: auto; which GPU: CUDA_VISIBLE_DEVICES)")
    p.set_defaults(func=_run_interpret)


def _add_interpret_options(p: argparse.ArgumentParser) -> None:
    """Options that `interpret` and `interpret-summary` share."""
    p.add_argument("--top", type=_positive_int, default=20,
                   help="top-ranked sequences whose residue contributions are given (default: 20)")
    p.add_argument("--motif-top", type=_positive_int, default=20,
                   help="most-attended sequences of each positive repertoire searched for motifs, as `attend` lists "
                        "them (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the motif background sample (default: 0)")
    p.add_argument("--motif-alpha", type=_probability, metavar="ALPHA",
                   help="family-wise error rate of the motif tests: a motif is listed only when it is enriched among "
                        "the positives' most-attended sequences (one-sided Fisher test) and carried by a larger share of the "
                        "positive repertoires' sequences than of the negatives' (Welch's t-test over repertoires, or donors "
                        "where the repertoires are grouped), each "
                        "at ALPHA over the patterns tested (Bonferroni; default: 0.05)")


def _run_interpret(args: argparse.Namespace) -> int:
    from deeprc_hopfield.devices import resolve_device
    from deeprc_hopfield.interpret import interpret
    from deeprc_hopfield.split import Split

    split = Split.from_options(args.split, args.fold)
    _set_threads(args.threads)
    subjects = split.held_out(args.fold) if split is not None else (set(args.subjects) if args.subjects else None)
    interpret(model=args.model, store=args.store, out=args.out, device=resolve_device(args.device), subjects=subjects,
              label=args.label_column, top=args.top, motif_top=args.motif_top, per_repertoire=args.per_repertoire,
              seed=args.seed, allow_training_subjects=args.allow_training_subjects, labels=args.labels,
              force=args.force, attention_file=args.attention, groups=_interpreted_groups(args, split),
              **_motif_alpha(args))
    log.info("wrote %s", args.out)
    return 0


def _interpreted_groups(args: argparse.Namespace, split: Split | None) -> dict[str, str] | None:
    """Each repertoire's donor for `interpret`: from --group-column (the store's metadata table), else from a
    grouped --split's table, else None."""
    from deeprc_hopfield.infer import subject_groups
    from deeprc_hopfield.store import RepertoireStore

    if args.group_column is not None:
        with RepertoireStore(args.store) as store:
            return subject_groups(store.metadata(), args.group_column, args.store)
    return split.group_of() if split is not None else None


def _add_interpret_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interpret-summary",
        help="merge the interpretations of the held-out folds into one cohort summary",
        description=(
            "Merge `interpret` folders of disjoint repertoires (one per held-out fold, each by its fold's model) "
            "into one: the rankings add up (counts and evidence are sums over repertoires, donor counts sums "
            "over donors where every fold counted disjoint donors; score, means and tests are recomputed), motifs are "
            "searched again among the merged top sequences, and the "
            "contributions of the merged top sequences are those their fold computed. Same files as `interpret`."
        ),
        epilog=_examples(
            f"deeprc-hopfield interpret-summary --interpretations {_DEMO}/interpretation/fold{_FOLDS} "
            f"--store {_DEMO}/cohort.h5 --out {_OUT}/interpretation_cohort",
        ),
    )
    p.add_argument("--interpretations", required=True, nargs="+", type=Path, metavar="DIR",
                   help="folders written by `interpret`, e.g. one per fold")
    p.add_argument("--store", required=True, type=Path, help="the store they were computed on (motif background)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (see --force)")
    _add_force(p, "summary (a folder written by `interpret-summary`)")
    _add_interpret_options(p)
    p.set_defaults(func=_run_interpret_summary)


def _run_interpret_summary(args: argparse.Namespace) -> int:
    from deeprc_hopfield.interpret import summarise

    summarise(folders=args.interpretations, store=args.store, out=args.out, top=args.top, motif_top=args.motif_top,
              seed=args.seed, force=args.force, **_motif_alpha(args))
    log.info("wrote %s", args.out)
    return 0


# --- cross-validation: split / baselines / evaluate / report -----------------------------------
def _add_split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split",
        help="assign the repertoires of a store to stratified, seeded cross-validation folds",
        description=(
            "Write a split table (columns subject_id, fold; folds 0..K-1) that `train --split/--fold`, "
            "`baselines` and `evaluate` share. Folds are stratified by the label's classes (numeric labels: "
            "by quantile bins) and seeded: the same store, --folds and --seed give the same file. "
            "--group-column keeps the repertoires of one group (e.g. the samples of one donor) in one fold. "
            "Beside OUT, OUT.related.tsv lists the pairs of repertoires that share many of their most abundant "
            "CDR3s (samples of one donor?) but no group keeps together, which it warns of (README: group_column)."
        ),
        epilog=_examples(
            f"deeprc-hopfield split --store {_DEMO}/cohort.h5 --out {_OUT}/split.csv --folds 5 --seed 0",
            f"deeprc-hopfield split --store {_DEMO}/cohort.h5 --out {_OUT}/split_10.csv --folds 10 --seed 1",
        ),
    )
    p.add_argument("--store", required=True, type=Path, help="the HDF5 store made by `ingest`")
    p.add_argument("--out", required=True, type=Path, help="split CSV to write, e.g. split.csv (see --force)")
    _add_force(p, "split table (written by `split`)")
    p.add_argument("--folds", type=int, default=5, metavar="K",
                   help="number of folds, >= 2; every class needs at least K repertoires (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the assignment (default: 0)")
    p.add_argument("--label-column", metavar="COLUMN",
                   help="label to stratify by (default: the store's only label, else 'label')")
    p.add_argument("--group-column", metavar="COLUMN",
                   help="metadata column naming each repertoire's group, e.g. donor_id: every group goes to one "
                        "fold, stratified by label as far as the groups allow; a group may not mix the classes "
                        "of a binary label (default: none, each repertoire on its own)")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="threads reading the repertoires' most abundant CDR3s, by which `split` warns of samples of "
                        "one donor that the folds may part (default: 1; ~0.3 s a 300,000-sequence repertoire each)")
    p.set_defaults(func=_run_split)


def _run_split(args: argparse.Namespace) -> int:
    from deeprc_hopfield.io import check_output, write_table
    from deeprc_hopfield.split import is_split_table, related_table, split_and_related

    check_output(args.out, "split", args.force, folder=False, recognise=is_split_table)
    split, related = split_and_related(store_path=args.store, folds=args.folds, seed=args.seed,
                                       label_column=args.label_column, group_column=args.group_column,
                                       workers=args.threads)
    write_table(related, related_table(args.out), sep="\t")  # always: a new split leaves no earlier split's pairs
    write_table(split, args.out)
    log.info("wrote %s (%d repertoires, %d folds)%s", args.out, len(split), args.folds,
             f" and its {len(related)} related pair(s) of repertoires, {related_table(args.out)}" if len(related) else "")
    return 0


def _methods(text: str) -> tuple[str, ...]:
    from deeprc_hopfield.baselines import METHODS

    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(f"unknown method '{unknown[0] if unknown else text}' "
                                         f"(choose from {', '.join(METHODS)})")
    return tuple(dict.fromkeys(methods))


def _add_baselines(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baselines",
        help="cross-validate the simple baselines (3-mer logistic regression, public clones) on a split",
        description=(
            "For every fold K of the split, fit each baseline on the repertoires of the other folds only and "
            "score fold K. Writes DIR/<method>_predictions.csv with columns subject_id, fold, probability "
            "(of the positive class), true_label (class name) and score. kmer: L1-penalised logistic "
            "regression on standardised 3-mer frequencies of the CDR3 cores (each distinct sequence counted "
            "once), C chosen by inner stratified cross-validation inside the training folds. public_clones "
            "(after Emerson et al. 2017): one-sided Fisher's exact test per clone on the training folds, the clone "
            "key (CDR3 core alone, + V family or + V gene) and match radius chosen by inner cross-validation (see "
            "--clone-keys, --clone-radius; the CDR3 core is the junction without its first and last residue); "
            "score = "
            "number of associated clones a repertoire carries (not divided by its size); the p-value threshold "
            "is chosen by inner cross-validation and the probability is a logistic fit of the inner "
            "out-of-fold scores. Binary labels only. A fold whose training part holds fewer than 2 repertoires "
            "(with a grouped split: groups) of a class for the inner cross-validation is not scored: --fold K "
            "refuses it, a run over every fold says so and scores the others."
        ),
        epilog=_examples(
            f"deeprc-hopfield baselines --store {_DEMO}/cohort.h5 --split {_DEMO}/split.csv --fold 0 "
            f"--clones {_DEMO}/clones.h5 --out {_OUT}/baselines_fold0 --threads 2",
            f"deeprc-hopfield baselines --store {_DEMO}/cohort.h5 --split {_DEMO}/split.csv --methods kmer "
            f"--out {_OUT}/baselines_kmer --threads 2",
        ),
    )
    p.add_argument("--store", required=True, type=Path, help="the HDF5 store made by `ingest`")
    p.add_argument("--split", required=True, type=Path, help="split table (subject_id, fold) made by `split`")
    p.add_argument("--fold", type=int, metavar="K",
                   help="fit on the other folds and score fold K only: its rows alone in the predictions (one job a "
                        "fold, as the workflow runs them; `evaluate` collects the files of a method named more than "
                        "once) (default: every fold)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder for the predictions (created, written whole; see --force)")
    _add_force(p, "baselines folder (written by `baselines`)")
    p.add_argument("--label-column", metavar="COLUMN",
                   help="binary label to predict (default: the store's only label, else 'label')")
    p.add_argument("--methods", type=_methods, default=("kmer", "public_clones"), metavar="LIST",
                   help="comma-separated baselines to run: kmer, public_clones (default: both)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inner cross-validation splits (default: 0)")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="parallel inner cross-validation fits of the k-mer baseline, pgen processes and threads counting "
                        "the public-clone fits' carriers (default: 1)")
    p.add_argument("--clone-keys", choices=("auto", "family", "gene", "none"), default="auto",
                   help="public clones: the V level of a clone key (CDR3 + V family, + V gene, or the CDR3 alone); "
                        "auto: chosen by inner cross-validation among the three, as the model's clone memory "
                        "(training: clone_keys) (default: auto)")
    p.add_argument("--clone-radius", choices=("auto", "0", "1"), default="auto",
                   help="public clones: exact matches (0), or a sequence one substitution away counts too (1); "
                        "auto: chosen by inner cross-validation; 0 holds far less memory on large cohorts "
                        "(default: auto)")
    p.add_argument("--clone-pgen", choices=("on", "off"), default="on",
                   help="public clones: let inner cross-validation leave out chance-public clones (OLGA generation "
                        "probability above a cutoff), as the model's clone memory (training: clone_pgen) (default: on)")
    p.add_argument("--clone-pgen-limit", type=_positive_int, metavar="N",
                   help="public clones: the most candidate clones one fit asks OLGA's pgen for (10-25 ms each); "
                        "where a loose p threshold passes more (large cohorts), the pgen cutoffs are tried only at "
                        "the tighter thresholds (training: clone_pgen_limit) (default: 20,000)")
    _add_pgen_cache(p)
    _add_clones_file(p, "the public-clone test's")
    p.set_defaults(func=_run_baselines)


def _run_baselines(args: argparse.Namespace) -> int:
    from deeprc_hopfield.baselines import cross_validate, is_baselines_folder
    from deeprc_hopfield.io import atomic_folder, check_output, write_table

    check_output(args.out, "baselines", args.force, recognise=is_baselines_folder)
    _set_threads(args.threads)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeepRCError(f"cannot create output folder: {exc.strerror}", args.out) from None
    from deeprc_hopfield.clone_rules import clone_rules
    from deeprc_hopfield.public_clones import PGEN_LIMIT

    radius = args.clone_radius if args.clone_radius == "auto" else int(args.clone_radius)
    with _pgen_cache(args):
        results = cross_validate(store_path=args.store, split_path=args.split, methods=args.methods,
                                 label_column=args.label_column, seed=args.seed, threads=args.threads,
                                 rules=clone_rules(args.clone_keys, radius), use_pgen=args.clone_pgen == "on",
                                 pgen_limit=args.clone_pgen_limit or PGEN_LIMIT, clones=args.clones, fold=args.fold)
    with atomic_folder(args.out, "baselines", args.force, recognise=is_baselines_folder) as tmp:
        for method, table in results.items():
            write_table(table, tmp / f"{method}_predictions.csv")
    for method, table in results.items():
        log.info("wrote %s (%d held-out predictions)", args.out / f"{method}_predictions.csv", len(table))
    return 0


def _add_clones(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "clones",
        help="optional speed-up for large cohorts: cache every fold's public-clone candidates in one reading of the "
             "cohort, for train and baselines --clones",
        description=(
            "An optional speed-up for large cohorts: a cache of every fold's public-clone candidates (public "
            "clones: CDR3s, with their V gene or family where the clone rule says so, that several repertoires "
            "carry) that `train --clones` and `baselines --clones` read; a file for those commands, not a list "
            "to look at (`inspect MODEL_DIR` and the report show the clones a model kept). "
            "Each training fold fits its clone memory on its fitting repertoires (and may refit it on all its "
            "training repertoires), and the baselines fit the public-clone test within each fold's training "
            "repertoires; each would read the whole cohort again to collect the clones it can use, the largest "
            "cost of training on a large cohort. This reads the store once and writes every such part's clones "
            "under every clone rule of the config to FILE (HDF5), which `train --clones` and `baselines --clones` "
            "read instead: the same clones, so the same models. Give it the --config, --seed and --label-column "
            "that training uses; a job whose repertoires the file does not hold collects its own."
        ),
        epilog=_examples(
            f"deeprc-hopfield clones --store {_DEMO}/cohort.h5 --split {_DEMO}/split.csv --config {_DEMO}/train.yaml "
            f"--seed 0 --label-column label --out {_OUT}/clones.h5 --threads 2",
        ),
    )
    p.add_argument("--store", required=True, type=Path, help="the HDF5 store made by `ingest`")
    p.add_argument("--split", required=True, type=Path, help="split table (subject_id, fold) made by `split`")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="clones file to write (see --force)")
    _add_force(p, "clones file (written by `clones`)")
    p.add_argument("--config", type=Path, help="the training YAML (`training:` clone_keys, clone_radius, "
                                               "clone_memory, validation_fraction, seed; defaults otherwise)")
    p.add_argument("--label-column", metavar="COLUMN",
                   help="the binary label (default: the store's only label, else 'label')")
    p.add_argument("--seed", type=int, help="seed of the inner folds (default: the config's, else 0)")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="leave out the public-clone baseline's part (every repertoire), when it is not run")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="threads reading the repertoires ahead and counting the one-substitution clones' carriers "
                        "(default: 1; the same result)")
    p.set_defaults(func=_run_clones)


def _run_clones(args: argparse.Namespace) -> int:
    from deeprc_hopfield.io import check_output
    from deeprc_hopfield.shared_clones import collect_clones, is_clones_file

    check_output(args.out, "clones", args.force, folder=False, recognise=is_clones_file)
    _set_threads(args.threads)
    collect_clones(args.store, args.split, args.out, args.label_column, args.config, args.seed,
                   baselines=args.baselines, workers=args.threads)
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="cross-validated metrics and ROC/PR curves of the model and the baselines on the same split",
        description=(
            "Score held-out predictions (one row per subject, each from a model that never saw it) per fold "
            "of the split and overall: ROC AUC, PR AUC (average precision), balanced accuracy and F1 "
            "(threshold 0.5), the Brier score (mean squared error of the probabilities), n. Writes DIR/metrics.tsv "
            "(method, fold = 0..K-1, mean, sd, and pooled: all held-out rows at once; the mean row's n counts all "
            "held-out rows; fold and pooled rows add the ROC AUC's 95% interval, roc_auc_low/_high: the wider at "
            "each end of DeLong's logit interval, counting donors with a grouped split (Obuchowski's), and "
            "Newcombe's score interval; and the calibration_intercept and _slope: 0 and 1 when the probabilities are "
            "right; `constant` where a fold's probabilities are all the same value; then the label scored, from "
            "--label-column "
            "or --label-name, and the positive class: the one a model's `predicted` column calls at p >= 0.5, else "
            "--positive-class, else ingest's rule), DIR/comparisons.tsv (the method named deeprc against each other "
            "one: pooled held-out ROC AUC difference, DeLong's paired test, its error counting donors with a grouped "
            "split), DIR/held_out.tsv (every method's call on every held-out subject), DIR/roc.png and DIR/pr.png (one curve per method, held-out folds "
            "pooled, legend with the pooled curve's AUC and the per-fold mean ± sd). Binary labels only."
        ),
        epilog=_examples(
            f"deeprc-hopfield evaluate --predictions deeprc={_DEMO}/predictions/fold{_FOLDS}.csv "
            f"kmer={_DEMO}/baselines/fold{_FOLDS}/kmer_predictions.csv "
            f"public_clones={_DEMO}/baselines/fold{_FOLDS}/public_clones_predictions.csv "
            f"--split {_DEMO}/split.csv --label-name label --out {_OUT}/evaluation",
            f"deeprc-hopfield evaluate --predictions deeprc={_DEMO}/predictions/fold{_FOLDS}.csv --split "
            f"{_DEMO}/split.csv --label-name label --out {_OUT}/evaluation_model_alone",
        ),
    )
    p.add_argument("--predictions", required=True, nargs="+", metavar="NAME=FILE",
                   help="a method's held-out predictions (columns subject_id, probability, true_label: a row with an "
                        "empty one, a subject of unknown label, is left out and named in the log; optional "
                        "fold, checked against the split); a NAME repeated collects its files, one per fold, e.g. "
                        "deeprc=results/demo/predictions/fold0.csv deeprc=results/demo/predictions/fold1.csv ... "
                        "kmer=results/demo/baselines/fold0/kmer_predictions.csv "
                        "kmer=results/demo/baselines/fold1/kmer_predictions.csv ...")
    p.add_argument("--split", type=Path, help="the split table (subject_id, fold) of the predictions; leave it out "
                                              "for an external cohort (predict --repertoires DIR --metadata TABLE "
                                              "with the fold models), scored as one fold")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder for metrics.tsv, comparisons.tsv, held_out.tsv, roc.png, pr.png, and with a grouped "
                        "split metrics_by_donor.tsv and comparisons_by_donor.tsv (written whole; see --force)")
    _add_force(p, "evaluation (a folder written by `evaluate`)")
    p.add_argument("--positive-class", metavar="VALUE",
                   help="true_label value of the positive class (default: the class a model's predictions call at "
                        "p >= 0.5, their `predicted` column; else as `ingest` orders two classes: the larger number, "
                        "True/yes/+ or the non-healthy/control one, else the second alphabetically); one that is not "
                        "the model's is refused")
    p.add_argument("--label-column", metavar="LABEL",
                   help="in predictions of several labels (`predict` of a multi-label model: LABEL_probability, "
                        "LABEL_true), the binary label to score (default: the only binary one; numeric and "
                        "categorical labels are not scored)")
    p.add_argument("--label-name", metavar="NAME",
                   help="the label that single-label predictions (probability, true_label) are of, written in "
                        "metrics.tsv's label column, which they cannot fill (refused with files of several labels: "
                        "--label-column chooses there)")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from deeprc_hopfield.evaluate import evaluate, parse_named_files

    metrics = evaluate(predictions=parse_named_files(args.predictions), split_path=args.split, out=args.out,
                       positive=args.positive_class, force=args.force, label=args.label_column,
                       label_name=args.label_name)
    log.info("wrote %s (%d methods), roc.png and pr.png", args.out / "metrics.tsv", metrics["method"].nunique())
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML report of a cross-validated run",
        description=(
            "Write one HTML file that needs nothing else (images embedded, no external CSS or JavaScript): "
            "cohort and QC summary from the store, the metrics of the model beside the baselines (mean ± sd "
            "over folds, ROC AUC per fold), the ROC and PR curves, the fold models (with --models: seeded k-mers and "
            "stored public clones), the sequences found most often among the "
            "top-attended sequences of the held-out repertoires (50 rows), the interpretation (with --interpretation: "
            "ranked sequences, motifs and logos), the configuration as given and the software versions."
        ),
        epilog=_examples(
            f"deeprc-hopfield report --store {_DEMO}/cohort.h5 --metrics {_DEMO}/evaluation/metrics.tsv "
            f"--figures {_DEMO}/evaluation --attended {_DEMO}/attended/fold{_FOLDS}.tsv --interpretation "
            f"{_DEMO}/interpretation/cohort --models {_DEMO}/models --config {_DEMO}/config.yaml --split "
            f"{_DEMO}/split.csv --out {_OUT}/report.html",
            f"deeprc-hopfield report --store {_DEMO}/cohort.h5 --metrics {_DEMO}/evaluation/metrics.tsv "
            f"--figures {_DEMO}/evaluation --out {_OUT}/report_short.html",
        ),
    )
    p.add_argument("--store", required=True, type=Path, help="the HDF5 store made by `ingest`")
    p.add_argument("--metrics", required=True, type=Path, help="metrics.tsv written by `evaluate`")
    p.add_argument("--figures", required=True, type=Path, metavar="DIR",
                   help="folder with roc.png and pr.png (written by `evaluate`); other PNGs there are included too")
    p.add_argument("--attended", nargs="+", type=Path, default=[], metavar="TSV",
                   help="attended-sequence table(s) written by `attend` on the held-out repertoires (one per fold "
                        "or one for all); optional")
    p.add_argument("--interpretation", type=Path, metavar="DIR",
                   help="folder written by `interpret` or `interpret-summary`: ranked sequences, motifs and logos "
                        "(optional)")
    p.add_argument("--models", nargs="+", type=Path, default=[], metavar="MODEL_DIR",
                   help="the fold models written by `train` (model folders, or a folder of them): their seeded "
                        "k-mers and stored public clones (optional)")
    p.add_argument("--config", type=Path, help="the workflow configuration (the workflow's copy, results/RUN/"
                                                 "config.yaml), shown as given and named as the --configfile of the "
                                                 "workflow's predict target for new patients (optional)")
    p.add_argument("--split", type=Path, metavar="CSV",
                   help="the split table the metrics come from (written by `split`): the report says how many folds, "
                        "repertoires and groups (e.g. donors) it held, and what grouping means for the tests "
                        "(optional)")
    p.add_argument("--out", required=True, type=Path,
                   help="HTML file to write, e.g. results/demo/report.html (see --force)")
    _add_force(p, "report (an HTML file written by `report`)")
    p.add_argument("--title", default="deeprc-hopfield report", help="title of the report (default: %(default)s)")
    p.add_argument("--label-column", metavar="COLUMN",
                   help="label whose classes the attended-sequence table counts (default: the store's first label)")
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from deeprc_hopfield.report import write_report

    write_report(args.out, force=args.force, store=args.store, metrics=args.metrics, figures=args.figures,
                 attended=args.attended, config=args.config, title=args.title, label=args.label_column,
                 interpretation=args.interpretation, models=args.models, split=args.split)
    log.info("wrote %s", args.out)
    return 0


# --- check-config -----------------------------------------------------------------------------
def _add_check_config(sub: argparse._SubParsersAction) -> None:
    from deeprc_hopfield.data import CONFIG_SCHEMA_NAME

    p = sub.add_parser(
        "check-config",
        help="check workflow config files as the workflow reads them, naming the line of a YAML mistake",
        description=(
            "Read each workflow config file as `snakemake --configfile FILE` (without --config) reads it, and say in "
            "one line whether the workflow takes it: 'FILE: valid (N settings given; the rest take the schema's "
            "defaults)' (or 'all N settings given'), or what is wrong, with a non-zero exit. It checks that the file "
            "is YAML (a mistake is named by file, line and character: Snakemake's own message for broken YAML, "
            "'Config file is not valid JSON or YAML', names no line), that no key is given twice in one mapping "
            "(which YAML settles silently by keeping the last), every key and value against the workflow's schema "
            f"({CONFIG_SCHEMA_NAME}: the key's path, e.g. $.training.n_updates, and the schema's complaint; for an "
            "unknown key, the known key it is likely a typo of: 'did you mean'), that a run of its own names its "
            "`metadata` and `repertoires`, and that no two settings contradict each other (qc.min_length above "
            "qc.max_length). It reads neither the metadata table nor the repertoire files: `snakemake -n "
            "--configfile FILE` checks those before any job."
        ),
        epilog=_examples(
            "deeprc-hopfield check-config configs/config.yaml configs/cmv_example.yaml",
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a workflow config (YAML), e.g. my.yaml")
    p.set_defaults(func=_run_check_config)


def _run_check_config(args: argparse.Namespace) -> int:
    from deeprc_hopfield.workflow_config import check_config_file

    failed = []
    for path in args.files:
        try:
            given, known = check_config_file(path)
        except DeepRCError as error:  # every file checked before any is refused: one run shows every problem
            failed.append(error)
            continue
        said = (f"all {given} settings given" if given == known else
                f"{given} setting{'' if given == 1 else 's'} given; the rest take the schema's defaults")
        print(f"{path}: valid ({said})")
    if len(failed) > 1:
        raise DeepRCError(f"{len(failed)} of {len(args.files)} config files are not valid:"
                          + "".join(f"\n  {error}" for error in failed))
    if failed:
        raise failed[0]
    return 0


# --- entry point ------------------------------------------------------------------------------
COMMANDS = [_add_ingest, _add_inspect, _add_simulate, _add_train, _add_predict, _add_attend,
            _add_interpret, _add_interpret_summary, _add_split, _add_clones, _add_baselines, _add_evaluate, _add_report,
            _add_check_config]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deeprc-hopfield",
        description="Immune repertoire classification with Hopfield attention pooling (DeepRC).",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_logging_options(parser, argparse.SUPPRESS)
    parser.set_defaults(verbose=False, quiet=False, log=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    for command in sub.choices.values():  # accepted after the command too: `ingest ... -q`
        _add_logging_options(command, argparse.SUPPRESS)
        command.formatter_class = _HelpFormatter  # descriptions wrapped, examples as written
    return parser


def _add_logging_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="log warnings and errors only on the console (--log still gets the whole log)")
    parser.add_argument("--log", type=Path, default=default, help="also write the log to this file (all of it)")


def _setup_logging(verbose: bool, quiet: bool, log_file: Path | None) -> None:
    """Log to stderr (warnings only with `quiet`) and, with `log_file`, the whole log to that file: -q quiets the
    console, not the record."""
    level = logging.DEBUG if verbose else logging.INFO
    console = logging.StreamHandler(sys.stderr)
    if quiet:
        console.setLevel(logging.WARNING)
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)  # as --out makes missing folders
            handlers.append(logging.FileHandler(log_file))
        except OSError as exc:
            raise DeepRCError(f"cannot open the log file: {exc.strerror or exc}", log_file) from None
    logging.basicConfig(level=max(level, logging.INFO), handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(level)  # debug messages of this package only, not of h5py and friends


#: Errors of the machine or of the user's files rather than of this package: one line, no traceback (outputs are
#: written to temporary files and renamed, so nothing half-written is left).
_USER_OS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG}


def main(argv: list[str] | None = None) -> int:
    interrupts.install()  # SIGTERM cleans up temporary files as Ctrl-C does
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # some options' checks import torch: seconds in which a job can be stopped
    except KeyboardInterrupt:
        print("deeprc-hopfield: interrupted; nothing was written", file=sys.stderr)
        return 128 + (interrupts.received() or 2)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _setup_logging(args.verbose, args.quiet, args.log)
        return args.func(args)
    except DeepRCError as exc:
        print(f"deeprc-hopfield {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a file the user cannot read, a full disk: the machine's or the files' state
        if not isinstance(exc, IsADirectoryError) and exc.errno not in _USER_OS_ERRORS:
            raise
        log.debug("what raised it:", exc_info=True)  # with -v, for the rare case that it is the package's fault
        what = f"{exc.filename}: {exc.strerror.lower()}" if exc.filename and exc.strerror else str(exc)
        print(f"deeprc-hopfield {args.command}: error: {what}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = interrupts.kept()
        print(f"deeprc-hopfield {args.command}: interrupted; " + (kept or "nothing was written"), file=sys.stderr)
        return 128 + (interrupts.received() or 2)
