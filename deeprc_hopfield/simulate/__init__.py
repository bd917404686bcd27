"""Simulated cohorts with known truth: OLGA backgrounds, implanted motifs and public clones.

Use :func:`simulate` with a :class:`SimulationSettings`; the CLI is `deeprc-hopfield simulate`.
"""

from deeprc_hopfield.simulate.background import CHAIN_MODELS, Background, BackgroundModel, background_model
from deeprc_hopfield.simulate.cohort import TRUTH_COLUMNS, simulate
from deeprc_hopfield.simulate.settings import FORMATS, SimulationSettings, max_motif_length, parse_motifs, validate

__all__ = ["CHAIN_MODELS", "FORMATS", "TRUTH_COLUMNS", "Background", "BackgroundModel", "SimulationSettings",
           "background_model", "max_motif_length", "parse_motifs", "simulate", "validate"]
