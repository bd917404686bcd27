#!/bin/bash
# Training fold 0 of a quarter-size cohort before and after counting positive carriers only (session 15):
# the cohort as benchmarks/cohort_scale.py --scale 0.25 simulates it (mean size 67,249 here), one store, one
# split; each fold trained in a fresh process under /usr/bin/time -v, one after the other, each with its own
# pgen cache. Usage: positives.sh WORK BEFORE_CLONE AFTER_CLONE
set -euo pipefail
WORK=$1 BEFORE=$2 AFTER=$3
BIN=/work/main/.venv/bin
cd "$WORK"
if [ ! -f cohort.h5 ]; then
  $BIN/deeprc-hopfield simulate --out cohort --n-repertoires 196 --sequences-per-repertoire 67249 --size-spread 0.77 \
    --seed 0 --witness-rate 0.001 --motifs SA.FY --threads 2 --public-clones 20 --public-rate 0.3 --no-nucleotides
  $BIN/deeprc-hopfield ingest --metadata cohort/metadata.csv --repertoires cohort/repertoires --out cohort.h5 --threads 2
fi
[ -f split.csv ] || $BIN/deeprc-hopfield split --store cohort.h5 --out split.csv --folds 5 --seed 0
for which in before after; do
  root=$BEFORE; [ $which = after ] && root=$AFTER
  rm -rf pgen_$which
  PYTHONPATH=$root /usr/bin/time -v -o time_fold0_s15_$which.txt $BIN/deeprc-hopfield train --store cohort.h5 \
    --split split.csv --fold 0 --out model_fold0_$which --force --threads 2 --pgen-cache pgen_$which \
    --log train_fold0_s15_$which.log
done
