"""A small cohort of every input shape the readers meet, for comparing the stores that two versions of `ingest` make
(`benchmarks/h5_digest.py` of each): the test suite's hand-written files of each format (`tests/test_readers.py`
CASES; two copies each, plain and gzip), an immunoSEQ file with lower-case, padded and unresolved entries, and the
first 20 demo repertoires; a metadata table with a two-class label.

    python benchmarks/reader_cases_cohort.py OUT_FOLDER    # then OUT_FOLDER/metadata.csv, OUT_FOLDER/files/
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_readers import CASES, write  # noqa: E402  (the suite's reader cases)


def main() -> None:
    out = Path(sys.argv[1])
    files = out / "files"
    files.mkdir(parents=True, exist_ok=True)
    names = []
    for gz in (False, True):
        for case, (_, rows, sep, _) in CASES.items():
            for copy in range(2):
                names.append(f"{case}_{copy}.{'csv' if sep == ',' else 'tsv'}{'.gz' if gz else ''}")
                write(files / names[-1], rows, sep, gz)
    names.append("messy.tsv")
    write(files / names[-1], [["amino_acid", "frame_type", "templates", "v_gene", "j_gene"],
                              [" casslgqayeqyf ", "In", "3", "TCRBV05-01*01", "TCRBJ02-07*01"],
                              ["CASSLGQAYEQYF", "In", "4", "TCRBV05-01", "TCRBJ02-07"],
                              ["CASSPTEQYF", "In", "NA", "unresolved", "TCRBJ02-07"]])
    for path in sorted((ROOT / "data" / "demo" / "repertoires").iterdir())[:20]:
        shutil.copy(path, files / path.name)
        names.append(path.name)
    rows = [f"S{i},{name},{'yes' if i % 2 else 'no'}" for i, name in enumerate(names)]
    (out / "metadata.csv").write_text("subject_id,filename,label\n" + "\n".join(rows) + "\n")
    print(f"{len(names)} files in {files}")


if __name__ == "__main__":
    main()
