#!/bin/bash
# A/B at quarter size: the baselines' public-clone test from the clones file, f325412 (A: every rule of every
# repertoire held, scipy sums) vs HEAD (B: each rule of a fold's rows read as fitted, counts in place)
cd /tmp/exp15
for run in A B A B; do
  if [ $run = A ]; then PP=/tmp/snapA; else PP=/work/main; fi
  out=/tmp/s24/bl_$run
  rm -rf $out
  OMP_NUM_THREADS=1 PYTHONPATH=$PP nice -n 19 /usr/bin/time -v /work/main/.venv/bin/python -m deeprc_hopfield -v baselines --store cohort.h5 --split split.csv --out $out --methods public_clones --clones /tmp/s23/ab_B.h5 --label-column label --threads 1 --pgen-cache /tmp/s24/pgen > /tmp/s24/bl_${run}_$(date +%H%M%S).log 2>&1
  md5sum $out/public_clones_predictions.csv
done
