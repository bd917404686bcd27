#!/bin/bash
# A/B: the quarter clones file, blocks counted in one thread (HEAD~1 snapshot) vs the job's 2 threads (HEAD)
cd /tmp/exp15
for run in A B A B; do
  if [ $run = A ]; then PP=/tmp/snapA; else PP=/work/main; fi
  rm -f /tmp/s23/ab_$run.h5
  PYTHONPATH=$PP /usr/bin/time -v /work/main/.venv/bin/python -m deeprc_hopfield -v clones --store cohort.h5 --split split.csv --out /tmp/s23/ab_$run.h5 --label-column label --threads 2 > /tmp/s23/ab_${run}_$(date +%H%M%S).log 2>&1
  /work/main/.venv/bin/python /tmp/s23/h5sha.py /tmp/s23/ab_$run.h5
done
