"""Interpretation of a trained model: which sequences, motifs and residues drive the positive call.

- :mod:`.ranking`: one cohort-level ranking of sequences by the attention the model gives them in
  positive against negative repertoires.
- :mod:`.motifs`: gapped k-mer motifs enriched among the positive repertoires' most-attended sequences.
- :mod:`.contributions`: per-residue integrated gradients (Captum) of the top sequences.
- :mod:`.logos`: sequence logos of the motifs and of the contributions (logomaker).
- :mod:`.run`: the `interpret` and `interpret-summary` commands, writing one output folder, and
  :func:`read_interpretation`, which reads such a folder back.
"""

from deeprc_hopfield.interpret.run import InterpretError, Interpretation, interpret, read_interpretation, summarise

__all__ = ["InterpretError", "Interpretation", "interpret", "read_interpretation", "summarise"]
