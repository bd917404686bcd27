#!/bin/bash
cd /tmp/exp15
rm -f /tmp/s24/q_clones.h5
OMP_NUM_THREADS=2 nice -n 19 /usr/bin/time -v /work/main/.venv/bin/python -m deeprc_hopfield -v clones --store cohort.h5 --split split.csv --out /tmp/s24/q_clones.h5 --label-column label --threads 2 > /tmp/s24/q_clones_$(git -C /work/main rev-parse --short HEAD).log 2>&1
/work/main/.venv/bin/python /work/main/benchmarks/h5_digest.py /tmp/s24/q_clones.h5
