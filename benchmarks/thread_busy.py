"""How long each thread of a job was busy, from a py-spy recording.

Made by ``py-spy record --threads -r RATE -f raw -o FILE --pid PID`` (FILE may be gzipped): the main thread's
busy seconds bound what more threads can take off a job (what it does alone), and its stages below a function
(`--under`) say where that time goes.

    python benchmarks/thread_busy.py FILE --rate RATE [--under each_part_clones] [--depth 2]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import re

_THREAD = re.compile(r"thread \(\d+\): (.*)")


def busy(path: str, under: str, depth: int) -> tuple[collections.Counter, collections.Counter]:
    """(samples per thread name, the main thread's samples per call path below `under`, up to `depth` calls)."""
    threads, stages = collections.Counter(), collections.Counter()
    for line in (gzip.open(path, "rt") if path.endswith(".gz") else open(path)):
        stack, _, n = line.rstrip().rpartition(" ")
        frames = stack.split(";")
        match = _THREAD.match(frames[0])
        name = re.sub(r"_\d+$", "", match.group(1)) if match else frames[0]  # a pool's threads together
        threads[name] += int(n)
        if name != "MainThread":
            continue
        calls = [f"{f.split(' (')[0]}:{f.rsplit(':', 1)[-1].rstrip(')')}" for f in frames[1:]]
        names = [c.split(":")[0] for c in calls]
        if under in names:
            below = calls[names.index(under) + 1:]
            for d in range(1, min(depth, len(below)) + 1):
                stages[tuple(below[:d])] += int(n)
    return threads, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording")
    parser.add_argument("--rate", type=float, required=True, help="py-spy's samples per second (-r)")
    parser.add_argument("--under", default="each_part_clones", help="the function whose stages to list")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    args = parser.parse_args()
    threads, stages = busy(args.recording, args.under, args.depth)
    for name, n in threads.most_common():
        print(f"{name}: {n / args.rate:.1f} s busy")
    print(f"main thread's stages below {args.under}:")
    for path in sorted(stages):
        if stages[path] / args.rate >= args.min_seconds:
            print(f"{stages[path] / args.rate:9.1f} s {'  ' * len(path)}{path[-1]}")


if __name__ == "__main__":
    main()
