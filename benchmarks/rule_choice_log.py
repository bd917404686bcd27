"""The clone memory's rule choice in a training log, split into OLGA's share and the rest.

A training fold's log times its rule choice (from the line that reads the clones file to `fitting the public-clone
test: 6/6 rules`) and, for each rule, the pgen values read from the cache before OLGA computes the others. Each
rule's span from that `values read` line to its `fitting` line is counted as OLGA's (it also holds the end of that
rule's fit, so the rest is if anything understated). Prints, per log: the rule choice's minutes, OLGA's, the values
OLGA computed, and the rest: the part that the code's speed decides, comparable across folds whose pgen cache
differs.

    python benchmarks/rule_choice_log.py results/<run>/../logs/<run>/train/fold0.log [more logs]
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

READ = re.compile(r"pgen \(\w+ \w+\): (\d+) of (\d+) new values read")


def clock(line: str) -> datetime:
    return datetime.strptime(line[:8], "%H:%M:%S")


def rule_choice(log: Path) -> dict[str, float]:
    """Minutes of the first rule choice in `log`, OLGA's share of them and the values it computed."""
    start = last_read = None
    olga = computed = 0.0
    for line in log.read_text().splitlines():
        if "are read from" in line and start is None:
            start = clock(line)
        if (match := READ.search(line)) is not None:
            last_read, computed = clock(line), computed + int(match.group(2)) - int(match.group(1))
        if "fitting the public-clone test" in line:
            if last_read is not None:
                olga, last_read = olga + (clock(line) - last_read).total_seconds(), None
            if re.search(r": (\d+)/\1 rules", line):
                total = (clock(line) - start).total_seconds()
                return {"minutes": total / 60, "olga_minutes": olga / 60, "olga_values": computed,
                        "rest_minutes": (total - olga) / 60}
    raise SystemExit(f"{log}: no finished rule choice")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", type=Path)
    for log in parser.parse_args().logs:
        r = rule_choice(log)
        print(f"{log}: rule choice {r['minutes']:.1f} min, OLGA {r['olga_minutes']:.1f} min "
              f"({r['olga_values']:.0f} values computed), the rest {r['rest_minutes']:.1f} min")


if __name__ == "__main__":
    main()
