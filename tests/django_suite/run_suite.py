"""Django 5.2's own test suite on djongo, compared with SQLite, per app.

    python3 tests/django_suite/run_suite.py [APP ...] [--out docs/django-suite.md] [--timeout SECONDS]

Downloads Django's sdist (which ships tests/) for the installed Django
version into ~/.cache/djongo-django-suite, runs each app's tests unmodified
twice -- with Django's test_sqlite settings and with test_djongo (the
embedded engine) -- reads every test's outcome from the verbose output, and
writes a table: per app, the tests that pass on SQLite and how many of those
pass on djongo. That ratio is the measure issue 7 sets (>= 85%).
"""
import argparse
import collections
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile
import time

import django

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "djongo-django-suite"

APPS = ("basic lookup queries aggregation aggregation_regress annotations expressions expressions_case db_functions "
        "model_fields ordering update delete select_related many_to_one many_to_many one_to_one m2m_through "
        "prefetch_related bulk_create get_or_create custom_pk model_inheritance defer transactions auth_tests "
        "admin_views admin_changelist sessions_tests contenttypes_tests migrations schema introspection inspectdb "
        "raw_query fixtures serializers").split()

LINE = re.compile(r"^(test\w*) \(([\w.]+)\)(?:\n.*?)? \.\.\. (ok|FAIL|ERROR|skipped|expected failure|unexpected success)",
                  re.M | re.S)


def django_tests():
    version = django.get_version()
    tests = CACHE / ("django-%s" % version) / "tests"
    if tests.is_dir():
        return tests
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    "django==%s" % version, "-d", str(CACHE)], check=True)
    with tarfile.open(CACHE / ("django-%s.tar.gz" % version)) as tar:
        tar.extractall(CACHE, filter="data")
    return tests


def run_app(tests, app, settings, timeout):
    """{test id: outcome} for one app under one settings module."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(tests)]))
    with tempfile.TemporaryDirectory(prefix="djongo-suite-") as data:
        env["DJONGO_SUITE_DATA"] = data
        args = [sys.executable, "runtests.py", "--settings", settings, "-v", "2", app]
        try:
            p = subprocess.run(args, cwd=tests, env=env, capture_output=True, text=True, timeout=timeout)
            out = p.stdout + p.stderr
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode() + (e.stderr or b"").decode() if isinstance(e.stdout, bytes) else \
                (e.stdout or "") + (e.stderr or "")
    results = {}
    for m in LINE.finditer(out):
        name, where, outcome = m.groups()
        results["%s.%s" % (where, name) if not where.endswith(name) else where] = outcome
    return results, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("apps", nargs="*", default=APPS)
    ap.add_argument("--out", default=None, help="table file (default: docs/django-suite.md for the full list of "
                                              "apps, var/django-suite/subset.md for a few, so a partial run never "
                                              "replaces the published table)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--logs", default=None, help="directory for each run's full output")
    a = ap.parse_args()
    if a.out is None:
        a.out = str(ROOT / "docs" / "django-suite.md") if a.apps == APPS else str(ROOT / "var" / "django-suite" / "subset.md")
    tests = django_tests()
    rows, tot = [], collections.Counter()
    for app in a.apps:
        t0 = time.time()
        lite, _ = run_app(tests, app, "test_sqlite", a.timeout)
        djo, out = run_app(tests, app, "test_djongo", a.timeout)
        if a.logs:
            pathlib.Path(a.logs).mkdir(parents=True, exist_ok=True)
            (pathlib.Path(a.logs) / ("%s.log" % app)).write_text(out)
        passing = {t for t, o in lite.items() if o in ("ok", "expected failure")}
        both = {t for t in passing if djo.get(t) in ("ok", "expected failure")}
        c = collections.Counter(djo.values())
        row = dict(app=app, sqlite=len(passing), djongo=len(both), ran=len(djo), failed=c["FAIL"], errors=c["ERROR"],
                   skipped=c["skipped"], secs=time.time() - t0)
        rows.append(row)
        for k in ("sqlite", "djongo", "ran", "failed", "errors", "skipped"):
            tot[k] += row[k]
        pct = 100.0 * row["djongo"] / row["sqlite"] if row["sqlite"] else 0.0
        print("%-22s %5d pass on SQLite, %5d of them on djongo (%5.1f%%); djongo: %d failed, %d errors, %d skipped "
              "[%.0fs]" % (app, row["sqlite"], row["djongo"], pct, row["failed"], row["errors"], row["skipped"],
                           row["secs"]), flush=True)
    pct = 100.0 * tot["djongo"] / tot["sqlite"] if tot["sqlite"] else 0.0
    lines = ["# Django %s's test suite on djongo (embedded engine)" % django.get_version(), "",
             "Generated by `bash scripts/django_suite.sh` (tests/django_suite/run_suite.py): each app's tests,",
             "unmodified, with Django's SQLite settings and with `tests/django_suite/test_djongo.py`.",
             "\"Pass on djongo\" counts the tests that pass on SQLite and also pass on djongo.", "",
             "| app | pass on SQLite | of those, pass on djongo | % | djongo failures | djongo errors | djongo skips |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = 100.0 * r["djongo"] / r["sqlite"] if r["sqlite"] else 0.0
        lines.append("| %s | %d | %d | %.1f | %d | %d | %d |" % (r["app"], r["sqlite"], r["djongo"], p, r["failed"],
                                                                  r["errors"], r["skipped"]))
    lines.append("| **total** | **%d** | **%d** | **%.1f** | %d | %d | %d |" % (
        tot["sqlite"], tot["djongo"], pct, tot["failed"], tot["errors"], tot["skipped"]))
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(a.out).write_text("\n".join(lines) + "\n")
    print("total: %d of the %d tests that pass on SQLite pass on djongo (%.1f%%); table in %s" % (
        tot["djongo"], tot["sqlite"], pct, a.out))


if __name__ == "__main__":
    main()
