"""Old build vs new build, side by side in one run.

Runs the C benchmarks (engine_vs_sqlite, agg_vs_sqlite) of two builds in
alternating rounds on the same machine and reports, per workload, the median
of each build's engine figure and their ratio. SQLite is measured in every
round of both builds too: its old/new ratio shows how much the machine itself
drifted between the rounds, so a change in the engine ratio can be read
against it.

    python3 bench/compare_builds.py OLD_BUILD_DIR NEW_BUILD_DIR [--rounds R] [--markdown FILE]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

PROGRAMS = [
    # (program, arguments, unit, higher is better)
    ("engine_vs_sqlite", [os.environ.get("N", "100000")], "ops/s", True),
    ("agg_vs_sqlite", [os.environ.get("N_AGG", "100000")], "s", False),
]
ROW = re.compile(r"^\| (\w+) \| ([0-9.]+) \| ([0-9.]+) \|")


def run(build, program, args):
    """One run of a benchmark: {workload: (engine, sqlite)} from its table."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([os.path.join(build, "bench", program), *args], cwd=tmp, check=True,
                             capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    if not rows:
        sys.exit(f"compare_builds: no table from {program} in {build}")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--markdown")
    a = ap.parse_args()
    lines = [f"Old build (`{a.old}`) vs new build (`{a.new}`), {a.rounds} alternating rounds, medians.",
             "new/old > 1 is better for ops/s and worse for seconds; SQLite's column shows the machine's drift.", "",
             "| benchmark | workload | unit | old engine | new engine | new/old | SQLite new/old |",
             "|---|---|---|---:|---:|---:|---:|"]
    for program, args, unit, _ in PROGRAMS:
        samples = {"old": [], "new": []}
        for _ in range(a.rounds):
            for side in ("old", "new"):
                samples[side].append(run(getattr(a, side), program, args))
        for w in samples["old"][0]:
            med = {side: (statistics.median(r[w][0] for r in samples[side]),
                          statistics.median(r[w][1] for r in samples[side])) for side in samples}
            lines.append(f"| {program} | {w} | {unit} | {med['old'][0]:.4g} | {med['new'][0]:.4g} | "
                         f"{med['new'][0] / med['old'][0]:.2f} | {med['new'][1] / med['old'][1]:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
