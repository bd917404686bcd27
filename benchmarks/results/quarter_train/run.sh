#!/bin/bash
# Quarter-size cohort (as benchmarks/cohort_scale.py --scale 0.25 simulates it): train folds 0 and 1 one after
# the other with a shared pgen cache; peak RSS and seconds of each from /usr/bin/time -v.
set -euo pipefail
SNAP=$1
BIN=/work/main/.venv/bin
export PYTHONPATH=$SNAP
cd /tmp/q
if [ ! -f store.h5 ]; then
  $BIN/deeprc-hopfield simulate --out cohort --n-repertoires 196 --sequences-per-repertoire 67253 --size-spread 0.77 \
    --seed 0 --witness-rate 0.001 --motifs SA.FY --threads 2 --public-clones 20 --public-rate 0.3 --no-nucleotides
  $BIN/deeprc-hopfield ingest --metadata cohort/metadata.csv --repertoires cohort/repertoires --out store.h5 --threads 2
  $BIN/deeprc-hopfield split --store store.h5 --out split.csv --folds 5 --seed 0
fi
for fold in 0 1; do
  /usr/bin/time -v -o time_fold$fold.txt $BIN/deeprc-hopfield train --store store.h5 --split split.csv --fold $fold \
    --out model_fold$fold --force --threads 2 --pgen-cache /tmp/q/pgen --log train_fold$fold.log
done
