"""clone_collection.py with the join forced into several key parts and groups (quarter store)."""
import runpy, sys
sys.path.insert(0, "/tmp/snap_s19e")
import deeprc_hopfield.neighbours as n
n.KEYS_PER_PART, n.CORES_PER_GROUP = 1 << 22, 1 << 19
import deeprc_hopfield.clone_rules as c
import functools
c.each_cohort_clones = functools.partial(c.each_cohort_clones, keys_per_pass=1 << 24)
sys.argv = ["clone_collection.py"] + sys.argv[1:]
runpy.run_path("/work/main/benchmarks/clone_collection.py", run_name="__main__")
