#!/bin/bash
# Training fold 0 of a half-size cohort (session 16: 393 repertoires, mean size 134,506, as
# benchmarks/cohort_scale.py --scale 0.5 would simulate it). Usage: run.sh WORK [TAG] [PACKAGE_ROOT]
exec "$(dirname "$0")/../../train_fold.sh" "$1" 393 134506 "${2:-s16}" "${3:-}"
