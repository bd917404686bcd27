"""A human-readable summary of a repertoire store (`deeprc-hopfield inspect`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeprc_hopfield.qc import DROP_REASONS, QC_COLUMNS
from deeprc_hopfield.errors import StoreError
from deeprc_hopfield.store import RepertoireStore


def summarise(path: str | Path, per_repertoire: bool = False) -> str:
    """Repertoires, sequences, label balance, QC summary and provenance of a store, as text."""
    try:
        return _summary(path, per_repertoire)
    except (KeyError, OSError) as exc:  # a store whose groups were removed or damaged after writing
        raise StoreError(f"damaged store: {exc}", path) from None


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
            f"genes        {len(store.v_genes)} V, {len(store.j_genes)} J",
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
            f"  sequences without V gene {total['v_missing']:,}, without J gene {total['j_missing']:,}",
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
        if per_repertoire:
            lines += ["", qc[list(QC_COLUMNS)].to_string()]
        return "\n".join(lines)
