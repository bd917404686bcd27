import re, sys, glob, datetime
def t(s): return datetime.datetime.strptime(s, "%H:%M:%S")
for f in sorted(glob.glob(sys.argv[1] + "/quarter_s23_ab_[AB]_*.log" if len(sys.argv) > 1 else "/tmp/s23/ab_*.log")):
    text = open(f).read()
    el = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    hwm = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    starts = re.findall(r"^(\d\d:\d\d:\d\d) DEBUG clone rules: \d+ clones \(of \d+ V codes\)", text, re.M)
    ends = re.findall(r"^(\d\d:\d\d:\d\d) INFO clones: every repertoire, .*1 substitution", text, re.M)
    rules = [(t(e) - t(s)).seconds for s, e in zip(starts, ends)]
    print(f.split("/")[-1], el.group(1) if el else "?", f"{int(hwm.group(1))/2**20:.2f} GB" if hwm else "?", rules, sum(rules))
