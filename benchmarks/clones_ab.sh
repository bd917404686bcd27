#!/bin/bash
# The cohort's clones job (`deeprc-hopfield clones`), old code against new, in THREADS threads each (default "1 2"),
# on a cohort that benchmarks/cohort_scale.py ran (its workflow folder: results/cohort_scale/{cohort.h5,split.csv,
# train.yaml}). Each way runs RUNS times, alternating, in a fresh process importing the package from OLD_ROOT or
# NEW_ROOT (folders holding deeprc_hopfield, e.g. clones of two commits), under /usr/bin/time (wall s, CPU s, peak
# RSS, GB = KB / 10^6). Prints each run's figures and the file's digest (benchmarks/h5_digest.py): the same digest,
# the same clones.
# With RATE, each run is recorded by py-spy (RATE samples a second, every thread; OUT/<way>_t<threads>_r<run>.raw)
# for benchmarks/thread_busy.py, which says how long the main thread was busy. OLD_ROOT "-": the new code only.
# Usage: clones_ab.sh WORKFLOW_DIR OLD_ROOT NEW_ROOT OUT [RUNS] [THREADS] [RATE]
set -euo pipefail
DIR=$1 OLD=$2 NEW=$3 OUT=$4 RUNS=${5:-2} THREADS=${6:-"1 2"} RATE=${7:-}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=$HERE/../.venv/bin/python
R=results/cohort_scale
mkdir -p "$OUT"
cd "$DIR"
for run in $(seq "$RUNS"); do
  for threads in $THREADS; do
    for way in old new; do
      root=$OLD; [ $way = new ] && root=$NEW
      [ "$root" = - ] && continue
      name=${way}_t${threads}_r$run
      spy=()
      [ -n "$RATE" ] && spy=("$HERE/../.venv/bin/py-spy" record -r "$RATE" --threads -f raw -o "$OUT/$name.raw" --)
      rm -f "$OUT/$way.h5"  # (no --force: code before 61cbb42 does not know it)
      PYTHONPATH=$root /usr/bin/time -o "$OUT/$name.time" -f "%e %U %S %M" "${spy[@]}" "$PY" -m deeprc_hopfield \
        clones --store $R/cohort.h5 --split $R/split.csv --config $R/train.yaml --label-column label --seed 0 \
        --out "$OUT/$way.h5" --threads "$threads" > "$OUT/$name.log" 2>&1
      read -r wall user sys rss < "$OUT/$name.time"
      printf "%s threads %s run %s: %s s wall, %.1f s CPU, %.2f GB, digest %s\n" "$way" "$threads" "$run" "$wall" \
        "$(echo "$user + $sys" | bc)" "$(echo "scale=3; $rss / 1000000" | bc)" "$("$PY" "$HERE/h5_digest.py" "$OUT/$way.h5")"
    done
  done
done
