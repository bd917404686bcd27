#!/bin/bash
# Full-size cohort (cohort_scale.py defaults: 786 repertoires, median 200,000, sigma 0.77) as a store.
set -e
B=/work/main/.venv/bin
cd /work/exp_full
/usr/bin/time -v $B/deeprc-hopfield simulate --out cohort --n-repertoires 786 --sequences-per-repertoire 269020 --size-spread 0.77 --seed 0 --witness-rate 0.001 --motifs SA.FY --threads 2 --public-clones 20 --public-rate 0.3 --no-nucleotides > simulate.log 2>&1
/usr/bin/time -v $B/deeprc-hopfield ingest --metadata cohort/metadata.csv --repertoires cohort/repertoires --out cohort.h5 --threads 2 > ingest.log 2>&1
$B/deeprc-hopfield split --store cohort.h5 --out split.csv --folds 5 --seed 0 > split.log 2>&1
echo done > store.done
