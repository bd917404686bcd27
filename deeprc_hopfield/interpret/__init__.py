"""Interpretation of a trained model: which sequences, motifs and residues drive the positive call.

- :mod:`.ranking`: one cohort-level ranking of sequences by the attention the model gives them in
  positive against negative repertoires.
- :mod:`.motifs`: gapped k-mer motifs enriched among the top-ranked sequences.
- :mod:`.contributions`: per-residue integrated gradients (Captum) of the top sequences.
- :mod:`.logos`: sequence logos of the motifs and of the contributions (logomaker).
- :mod:`.run`: the `interpret` and `interpret-summary` commands, writing one output folder.
"""

from deeprc_hopfield.interpret.run import InterpretError, interpret, summarise

__all__ = ["InterpretError", "interpret", "summarise"]
