"""The sha256 (first 16 hex digits) of every dataset of an HDF5 file, by name, in the file's order: two clones files
(`deeprc-hopfield clones`) made by different code hold the same clones exactly when these agree; two stores
(`deeprc-hopfield ingest`) of the same files hold the same data (attributes, such as the creation time, are left out;
string datasets are hashed by their values).

    python benchmarks/h5_digest.py FILE.h5
"""

from __future__ import annotations

import hashlib
import sys

import h5py


def h5_digest(path: str) -> str:
    digest = hashlib.sha256()

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            digest.update(name.encode())
            values = item[()]
            if getattr(values, "dtype", None) is not None and values.dtype.kind == "O":  # strings: their bytes
                digest.update(b"\0".join(v if isinstance(v, bytes) else str(v).encode() for v in values.ravel()))
            else:
                digest.update(values.tobytes() if hasattr(values, "tobytes") else bytes(values))

    with h5py.File(path, "r") as h5:
        h5.visititems(visit)
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    print(h5_digest(sys.argv[1]))
