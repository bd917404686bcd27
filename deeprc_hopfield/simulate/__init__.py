"""Simulated cohorts with known truth: OLGA backgrounds, implanted motifs, public clones (exact, or as
rough as real cohorts': families of variants, noised V calls, drawn from a list) and receptors of a
signal pool.

Use :func:`simulate` with a :class:`SimulationSettings`; the CLI is `deeprc-hopfield simulate`.
"""

from deeprc_hopfield.simulate.background import CHAIN_MODELS, Background, BackgroundModel, background_model
from deeprc_hopfield.simulate.cohort import TRUTH_COLUMNS, simulate
from deeprc_hopfield.simulate.public import PublicClones, chance_public
from deeprc_hopfield.simulate.settings import (FORMATS, SHARING, SimulationSettings, max_motif_length, parse_motifs,
                                               validate)
from deeprc_hopfield.simulate.signal_pool import SignalPool, read_receptor_list

__all__ = ["CHAIN_MODELS", "FORMATS", "SHARING", "TRUTH_COLUMNS", "Background", "BackgroundModel", "PublicClones",
           "SignalPool", "SimulationSettings", "background_model", "chance_public", "max_motif_length", "parse_motifs",
           "read_receptor_list", "simulate", "validate"]
