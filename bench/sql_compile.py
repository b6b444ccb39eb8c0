"""Compile time per SQL statement: djongo's C compiler vs the original djongo.

    python3 bench/sql_compile.py OUT.md

The statements are the SQL Django 5.2 emits for tests/sql/django_corpus.py
(captured now, with their parameters). Ours: build/bench/sql_compile, cold
(parse + compile) and cached (plan cache hit + bind). The original: PyPI
djongo 1.3.6 with sqlparse 0.2.4 in its own virtualenv (bench/.oldenv),
fed the same SQL: Query(...) plus building the find/aggregate arguments
(_get_cursor with a stub collection, no I/O) -- translation only, the same
work as ours. The original executes INSERT/UPDATE/DELETE/DDL while it
translates them, so the comparison covers the SELECTs; the table counts the
statements each side translates. Medians of repeated runs, one machine, one
run.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLDENV = os.path.join(ROOT, "bench", ".oldenv")

OLD_RUNNER = r'''
import json, sys, time, statistics, logging
logging.disable(logging.CRITICAL)
import django
from django.conf import settings
settings.configure()
import djongo.base  # noqa: F401 -- its modules import each other; base first, as Django loads it
from djongo.sql2mongo.query import Query

class Coll:
    def aggregate(self, pipeline, *a, **k): return []
    def find(self, *a, **k): return []
class DB:
    def __getitem__(self, name): return Coll()
class Props:
    enforce_schema = False

repeat = int(sys.argv[2])
for i, line in enumerate(open(sys.argv[1])):
    sql, params = json.loads(line)
    out = {"i": i, "ok": False, "ns": 0}
    def once():
        q = Query(None, DB(), Props(), sql, params)
        q._query._get_cursor()
    try:
        once()
        out["ok"] = True
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter_ns(); once(); ts.append(time.perf_counter_ns() - t0)
        out["ns"] = statistics.median(ts)
    except Exception as e:
        out["error"] = type(e).__name__
    print(json.dumps(out), flush=True)
'''


def ensure_oldenv():
    py = os.path.join(OLDENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", OLDENV])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "djongo==1.3.6", "sqlparse==0.2.4", "pytz"])
    return py


def main(out_md):
    sys.path.insert(0, os.path.join(ROOT, "tests", "sql"))
    import django_corpus

    stmts = [(s, p) for s, p in django_corpus.capture() if s.lstrip().upper().startswith("SELECT")]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for s, p in stmts:
            f.write(json.dumps([s, p], default=str) + "\n")
        corpus = f.name
    ours = [json.loads(l) for l in subprocess.check_output(
        [os.path.join(ROOT, "build", "bench", "sql_compile"), corpus, "101"], text=True).splitlines()]
    old_py = ensure_oldenv()
    runner = os.path.join(tempfile.gettempdir(), "djongo_old_runner.py")
    open(runner, "w").write(OLD_RUNNER)
    old = [json.loads(l) for l in subprocess.check_output([old_py, runner, corpus, "21"], text=True).splitlines()]
    os.unlink(corpus)

    both = [i for i in range(len(stmts)) if ours[i]["ok"] and old[i]["ok"]]
    ours_cold = [ours[i]["cold_ns"] for i in both]
    ours_cached = [ours[i]["cached_ns"] for i in both]
    old_ns = [old[i]["ns"] for i in both]
    ratio_cold = sum(old_ns) / sum(ours_cold)
    ratio_cached = sum(old_ns) / sum(ours_cached)
    all_cached = [o["cached_ns"] for o in ours if o["ok"]]
    all_cold = [o["cold_ns"] for o in ours if o["ok"]]
    us = lambda ns: "%.2f" % (ns / 1000)
    lines = [
        "# SQL compile time per statement: djongo (C) vs the original djongo 1.3.6",
        "",
        "Statements: the %d SELECTs Django 5.2 emits for `tests/sql/django_corpus.py`. "
        "Times are medians per statement (µs); one run, one machine, measured together by "
        "`bench/sql_compile.py`." % len(stmts),
        "",
        "| | translated | median | p90 | total over the common statements |",
        "|---|---|---|---|---|",
        "| original djongo 1.3.6 (sqlparse 0.2.4) | %d / %d | %s | %s | %s |" % (
            sum(o["ok"] for o in old), len(stmts), us(statistics.median(old_ns)),
            us(sorted(old_ns)[int(len(old_ns) * 0.9)]), us(sum(old_ns))),
        "| djongo C compiler, cold (parse + compile) | %d / %d | %s | %s | %s |" % (
            sum(o["ok"] for o in ours), len(stmts), us(statistics.median(ours_cold)),
            us(sorted(ours_cold)[int(len(ours_cold) * 0.9)]), us(sum(ours_cold))),
        "| djongo C compiler, cached plan (+ bind) | | %s | %s | %s |" % (
            us(statistics.median(ours_cached)), us(sorted(ours_cached)[int(len(ours_cached) * 0.9)]),
            us(sum(ours_cached))),
        "",
        "Over the %d statements both translate: the C compiler is **%.0f×** faster cold and "
        "**%.0f×** faster with a cached plan. Over all %d it translates: median cold %s µs, "
        "median cached %s µs." % (len(both), ratio_cold, ratio_cached, len(all_cold),
                                  us(statistics.median(all_cold)), us(statistics.median(all_cached))),
        "",
        "The original's failures are its own (SQLDecodeError and friends on SQL it cannot parse); "
        "a cached plan's time is binding the parameters and building the command BSON.",
    ]
    open(out_md, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bench", "results", "sql_compile.md"))
