#!/bin/bash
# One training fold of a simulated cohort shaped as benchmarks/cohort_scale.py simulates it (log-normal sizes,
# spread 0.77, seed 0, one 0.1% motif and 20 public clones), in a fresh process under /usr/bin/time -v (peak RSS,
# seconds), with its own pgen cache; the cohort, store and 5-fold split are made in WORK when missing.
# Usage: train_fold.sh WORK N_REPERTOIRES MEAN_SIZE TAG [PACKAGE_ROOT]
# writes WORK/time_fold0_TAG.txt, WORK/train_fold0_TAG.log and WORK/model_fold0_TAG; PACKAGE_ROOT (a folder
# holding deeprc_hopfield, e.g. a clone of an older commit) is imported in place of the installed package.
set -euo pipefail
WORK=$1 N=$2 SIZE=$3 TAG=$4 ROOT=${5:-}
BIN=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin
cd "$WORK"
if [ ! -f cohort.h5 ]; then
  "$BIN/deeprc-hopfield" simulate --out cohort --n-repertoires "$N" --sequences-per-repertoire "$SIZE" \
    --size-spread 0.77 --seed 0 --witness-rate 0.001 --motifs SA.FY --threads 2 --public-clones 20 \
    --public-rate 0.3 --no-nucleotides
  "$BIN/deeprc-hopfield" ingest --metadata cohort/metadata.csv --repertoires cohort/repertoires --out cohort.h5 \
    --threads 2
fi
[ -f split.csv ] || "$BIN/deeprc-hopfield" split --store cohort.h5 --out split.csv --folds 5 --seed 0
rm -rf "pgen_$TAG"
PYTHONPATH=$ROOT /usr/bin/time -v -o "time_fold0_$TAG.txt" "$BIN/deeprc-hopfield" train --store cohort.h5 \
  --split split.csv --fold 0 --out "model_fold0_$TAG" --force --threads 2 --pgen-cache "pgen_$TAG" \
  --log "train_fold0_$TAG.log"
