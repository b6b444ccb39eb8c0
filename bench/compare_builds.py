"""Old build vs new build, side by side in one run.

Runs the C benchmarks (engine_vs_sqlite, agg_vs_sqlite, and sql_compile over
the SQL of tests/sql/golden) of two builds in
alternating rounds on the same machine and reports, per workload, the median
of each build's engine figure and their ratio. SQLite is measured in every
round of both builds too: its old/new ratio shows how much the machine itself
drifted between the rounds, so a change in the engine ratio can be read
against it.

    python3 bench/compare_builds.py OLD_BUILD_DIR NEW_BUILD_DIR [--rounds R] [--markdown FILE]
"""
import argparse
import json
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


def golden_corpus(path):
    """The golden cases' statements with their parameters, as sql_compile reads them."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    gdir = os.path.join(root, "tests", "sql", "golden")
    out = []
    for name in sorted(os.listdir(gdir)):
        sql = None
        for line in open(os.path.join(gdir, name)):
            if line.startswith("sql "):
                if sql is not None:
                    out.append([sql, []])
                sql = line[4:].rstrip("\n")
            elif line.startswith("params ") and sql is not None:
                out.append([sql, json.loads(line[7:])])
                sql = None
        if sql is not None:
            out.append([sql, []])
    with open(path, "w") as f:
        for item in out:
            f.write(json.dumps(item) + "\n")
    return len(out)


def compile_run(build, corpus):
    """Median over the statements of sql_compile's per-statement medians (ns)."""
    out = subprocess.run([os.path.join(build, "bench", "sql_compile"), corpus, "21"], check=True, capture_output=True,
                         text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    ok = [r for r in rows if r.get("ok")]
    return {"cold": (statistics.median(r["cold_ns"] for r in ok), 0.0),
            "cached": (statistics.median(r["cached_ns"] for r in ok), 0.0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--markdown")
    ap.add_argument("--labels", nargs=2, metavar=("OLD", "NEW"), help="names of the builds in the table's title")
    a = ap.parse_args()
    a.old, a.new = os.path.abspath(a.old), os.path.abspath(a.new)  # the programs run in a scratch directory
    old_name, new_name = a.labels or (a.old, a.new)
    lines = [f"Old build (`{old_name}`) vs new build (`{new_name}`), {a.rounds} alternating rounds, medians.",
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
            fmt = ".0f" if unit == "ops/s" else ".4f"
            lines.append(f"| {program} | {w} | {unit} | {med['old'][0]:{fmt}} | {med['new'][0]:{fmt}} | "
                         f"{med['new'][0] / med['old'][0]:.2f} | {med['new'][1] / med['old'][1]:.2f} |")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "golden.jsonl")
        n = golden_corpus(corpus)
        samples = {"old": [], "new": []}
        for _ in range(a.rounds):
            for side in ("old", "new"):
                samples[side].append(compile_run(getattr(a, side), corpus))
        for w in ("cold", "cached"):
            med = {side: statistics.median(r[w][0] for r in samples[side]) for side in samples}
            lines.append(f"| sql_compile ({n} golden statements) | {w} | ns/statement | {med['old']:.0f} | "
                         f"{med['new']:.0f} | {med['new'] / med['old']:.2f} | |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
