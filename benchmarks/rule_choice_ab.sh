#!/bin/bash
# The public-clone rule choice of fold 0, old code against new, on a cohort that benchmarks/cohort_scale.py ran
# (its workflow folder: results/cohort_scale/{cohort.h5,split.csv,train.yaml,clones.h5}): the baselines' fold-0 job
# (`baselines --fold 0`, both methods) whole, and a training fold 0 up to its clone memory's choice (the process is
# stopped at the line that follows it). Each way runs RUNS times, alternating, in a fresh process importing the
# package from OLD_ROOT or NEW_ROOT (folders holding deeprc_hopfield, e.g. clones of two commits), with one pgen
# cache warmed first, so OLGA's time is out of it. Prints each run's seconds and whether the ways agree
# (predictions byte for byte, the memory's rule and clones line for line).
# Usage: rule_choice_ab.sh WORKFLOW_DIR OLD_ROOT NEW_ROOT OUT [RUNS]
set -euo pipefail
DIR=$1 OLD=$2 NEW=$3 OUT=$4 RUNS=${5:-2}
PY=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python
R=results/cohort_scale
mkdir -p "$OUT"
export DEEPRC_HOPFIELD_PGEN_CACHE=$OUT/pgen_cache
cd "$DIR"

baselines() {  # ROOT NAME
  local start
  start=$(date +%s.%N)
  PYTHONPATH=$1 "$PY" -m deeprc_hopfield baselines --store $R/cohort.h5 --split $R/split.csv --fold 0 \
    --out "$OUT/$2" --methods kmer,public_clones --label-column label --seed 0 --clone-keys auto --clone-radius auto \
    --clone-pgen on --clone-pgen-limit 20000 --clones $R/clones.h5 --threads 1 --force > "$OUT/$2.log" 2>&1
  echo "baselines $2: $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
}

memory_choice() {  # ROOT NAME
  rm -rf "$OUT/$2" "$OUT/$2.checkpoint"
  PYTHONPATH=$1 "$PY" -m deeprc_hopfield train --store $R/cohort.h5 --split $R/split.csv --fold 0 \
    --config $R/train.yaml --label-column label --seed 0 --device cpu --out "$OUT/$2" --threads 1 \
    --clones $R/clones.h5 > "$OUT/$2.log" 2>&1 &
  local pid=$!
  until grep -qs "clone memory: evidence" "$OUT/$2.log"; do
    kill -0 $pid 2>/dev/null || { echo "training $2 stopped before its clone memory"; exit 1; }
    sleep 1
  done
  kill $pid; wait $pid 2>/dev/null || true
  echo "clone memory $2: $(grep -o 'clone memory: [0-9].* in [0-9.]* s' "$OUT/$2.log" | grep -o '[0-9.]* s$')"
  grep "clone memory: [0-9]\|clone rule:" "$OUT/$2.log" | sed 's/^[0-9:]* //; s/ in [0-9.]* s//' > "$OUT/$2.choice"
}

baselines "$NEW" warm > /dev/null  # OLGA's values for both jobs' candidates, cached for every run after
memory_choice "$NEW" memory_warm > /dev/null
for run in $(seq "$RUNS"); do
  for way in old new; do
    root=$OLD; [ $way = new ] && root=$NEW
    baselines "$root" "baselines_${way}$run"
    memory_choice "$root" "memory_${way}$run"
  done
done
for run in $(seq "$RUNS"); do
  for f in kmer_predictions.csv public_clones_predictions.csv; do
    cmp -s "$OUT/baselines_old$run/$f" "$OUT/baselines_new$run/$f" || { echo "run $run: $f differs"; exit 1; }
  done
  cmp -s "$OUT/memory_old$run.choice" "$OUT/memory_new$run.choice" || { echo "run $run: the memory differs"; exit 1; }
done
echo "the same predictions and clone memories both ways"
