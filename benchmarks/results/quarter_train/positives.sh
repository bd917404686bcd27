#!/bin/bash
# Training fold 0 of a quarter-size cohort before and after counting positive carriers only (session 15): the
# cohort as benchmarks/cohort_scale.py --scale 0.25 simulates it (mean size 67,249 here), one store, one split;
# each fold trained in a fresh process, one after the other. Usage: positives.sh WORK BEFORE_CLONE AFTER_CLONE
set -euo pipefail
for which in before after; do
  root=$2; [ "$which" = after ] && root=$3
  "$(dirname "$0")/../../train_fold.sh" "$1" 196 67249 "s15_$which" "$root"
done
