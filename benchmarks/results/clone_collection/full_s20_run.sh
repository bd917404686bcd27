#!/bin/bash
# Full-size clone collection as training makes it (FitCandidates of all rows), with a memory watchdog at 20 GB.
cd /work/exp_full
/work/main/.venv/bin/python /work/main/benchmarks/clone_collection.py --store cohort.h5 --min-carriers auto --positives --fit-candidates --rss-every 10 --steps --package-root /tmp/snap20e > full_s20.log 2>&1 &
PID=$!
while kill -0 $PID 2>/dev/null; do
  rss=$(awk '/VmRSS/{print $2}' /proc/$PID/status 2>/dev/null)
  if [ -n "$rss" ] && [ "$rss" -gt 20000000 ]; then kill $PID; echo "watchdog: killed at VmRSS ${rss} kB $(date +%T)" >> full_s20.log; fi
  sleep 5
done
