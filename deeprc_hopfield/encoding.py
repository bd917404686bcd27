"""Amino-acid alphabet and vectorised encoding of CDR3 strings into small integer codes.

Code 0 is reserved for padding; the 20 standard amino acids are 1..20 in alphabetical order of
their one-letter symbols. Encoding works on whole arrays of strings at once (one `bytes` buffer and
a lookup table), never on characters in a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
PAD_CODE = 0
N_CODES = len(AMINO_ACIDS) + 1  # including padding

_INVALID = 255
_ENCODE_LUT = np.full(256, _INVALID, dtype=np.uint8)
for _code, _aa in enumerate(AMINO_ACIDS, start=1):
    _ENCODE_LUT[ord(_aa)] = _code
_NEEDS_CLEANING = np.zeros(256, dtype=bool)  # lower-case letters and white space
_NEEDS_CLEANING[[*range(ord("a"), ord("z") + 1), *b" \t\r\n"]] = True
_DECODE_LUT = np.frombuffer(b"-" + AMINO_ACIDS.encode(), dtype=np.uint8)


def _join(sequences: np.ndarray | list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All sequences as one uint8 buffer of ASCII bytes (a non-ASCII letter becomes '?'), plus each
    sequence's length."""
    seqs = list(sequences)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    buffer = np.frombuffer("".join(seqs).encode("ascii", errors="replace"), dtype=np.uint8)
    return buffer, lengths


@dataclass(frozen=True, eq=False)
class JoinedSequences:
    """A column of sequences joined once into one byte buffer, which both the CDR3 anchors check and
    quality control read (so a file's sequences are joined once between reading and the store).

    values: object (n,), the sequences with "" where missing; buffer: uint8, their ASCII bytes
    concatenated; lengths: int64 (n,).
    """

    values: np.ndarray
    buffer: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, column: pd.Series | np.ndarray) -> "JoinedSequences":
        """Join a column (missing values become ""; anything not a string is read as its text)."""
        values = np.asarray(column, dtype=object).copy()
        values[pd.isna(values)] = ""
        try:
            buffer, lengths = _join(values)
        except TypeError:  # a number among the sequences: join their text
            values = np.array([str(v) for v in values], dtype=object)
            buffer, lengths = _join(values)
        for array in (values, lengths):
            array.setflags(write=False)  # shared by the anchors check and QC: neither may change it
        return cls(values, buffer, lengths)

    def cleaned(self) -> "JoinedSequences":
        """The same sequences with white space around them removed and letters upper-cased."""
        return JoinedSequences.of(np.array([v.strip().upper() for v in self.values], dtype=object))


def residue_flags(sequences: np.ndarray | list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Per sequence: does it contain a stop codon (`*`), does it contain any other non-standard letter.

    Parameters
    ----------
    sequences
        Non-empty strings.

    Returns
    -------
    has_stop, has_nonstandard, lengths, needs_cleaning
        Boolean arrays of shape (n,), the int64 lengths, and whether any sequence has lower-case
        letters or white space (then `strip().upper()` first gives the true answer).
    """
    buffer, lengths = _join(sequences)
    if len(lengths) == 0:
        empty = np.zeros(0, dtype=bool)
        return empty, empty, lengths, False
    if np.any(lengths == 0):
        raise ValueError("residue_flags needs non-empty sequences")
    needs_cleaning = bool(np.any(_NEEDS_CLEANING[buffer]))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    stop = buffer == ord("*")
    flags = stop.view(np.uint8) | (((_ENCODE_LUT[buffer] == _INVALID) & ~stop).view(np.uint8) << 1)
    per_sequence = np.bitwise_or.reduceat(flags, starts)  # bit 0: a stop codon, bit 1: another letter
    return (per_sequence & 1) > 0, (per_sequence & 2) > 0, lengths, needs_cleaning


def encode(sequences: np.ndarray | list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode valid amino-acid strings as concatenated codes.

    Returns
    -------
    codes
        uint8 array of shape (sum of lengths,), values 1..20.
    lengths
        int64 array of shape (n,).
    """
    buffer, lengths = _join(sequences)
    codes = _ENCODE_LUT[buffer]
    if np.any(codes == _INVALID):
        raise ValueError("encode() got a non-standard amino-acid letter; run quality control first")
    return codes, lengths


def decode(codes: np.ndarray, lengths: np.ndarray) -> list[str]:
    """Inverse of :func:`encode`: concatenated codes and lengths back to strings."""
    text = _DECODE_LUT[np.asarray(codes, dtype=np.uint8)].tobytes().decode("ascii")
    ends = np.cumsum(lengths)
    starts = ends - lengths
    return [text[s:e] for s, e in zip(starts.tolist(), ends.tolist())]
