#!/bin/bash
set -euo pipefail
export PYTHONPATH=/tmp/snap5
cd /tmp/q
/usr/bin/time -v -o time_fold0_r.txt /work/main/.venv/bin/deeprc-hopfield train --store store.h5 --split split.csv --fold 0 \
  --out model_fold0_r --force --threads 2 --pgen-cache /tmp/q/pgen_r --log train_fold0_r.log
