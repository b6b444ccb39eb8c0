"""Django 5.2's own test suite on djongo, compared with SQLite, per app.

    python3 tests/django_suite/run_suite.py [APP ...] [--out docs/django-suite.md] [--timeout SECONDS]

Downloads Django's sdist (which ships tests/) for the installed Django
version into ~/.cache/djongo-django-suite, runs each app's tests unmodified
twice -- with Django's test_sqlite settings and with test_djongo (the
embedded engine) -- reads every test's outcome from the verbose output, and
writes a table: per app, the tests that pass on SQLite and how many of those
pass on djongo. That ratio is the measure issues 7 and 17 set.

Without APPs it runs every app of Django's tests/ as runtests.py finds them
(a directory with an __init__.py, minus runtests.py's SUBDIRS_TO_SKIP),
except gis_tests (GeoDjango needs a spatial backend) and postgres_tests
(django.contrib.postgres). Tests written for SQLite alone (a module or class
named for SQLite, e.g. backends.sqlite, or skipped on djongo with a reason
that names SQLite) are counted apart: they pass on SQLite because they test
SQLite itself, and are not in the ratio. So are the tests djongo skips
because it has a feature SQLite lacks ("Database has feature(s) ...":
Django's skipIfDBFeature; they check what a backend without it does).

    python3 tests/django_suite/run_suite.py --transport server [APP ...] [--logs DIR]

runs the djongo side over the wire instead: for each app, two djongo-servers
(the `djongo-server` on PATH, or $DJONGO_SERVER), each on a free port over a
data directory of its own in the app's temporary directory, and Django's two
databases ("default", "other") with HOST 'mongodb://127.0.0.1:PORT/' -- the
libmongoc transport, as a deployment on MongoDB uses it. Two servers, as the
embedded run has two data directories: a TestCase holds a transaction on
each database at once, and djongo-server lets one transaction write at a
time over its data directory (so the run is single-process: no --parallel).
The servers run with --txn-lifetime 86400: a TestCase class keeps its
transaction open for all its tests, longer than mongod's 60 s
transactionLifetimeLimitSeconds. The table's title and the log names say
"server" (APP.server.log); --compare LOGS (an embedded run's --logs) lists,
test by test, the outcomes that differ between the two runs.

    python3 tests/django_suite/run_suite.py --from-logs DIR [--commit C]

writes the table again from a run's logs (DIR/APP.log, DIR/APP.sqlite.log)
without running anything.
"""
import argparse
import collections
import contextlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

import django

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "djongo-django-suite"

# not measured: GeoDjango's tests need a spatial backend, postgres_tests
# django.contrib.postgres; runtests.py itself skips these two
EXCLUDED = {"gis_tests", "postgres_tests"}
RUNTESTS_SKIPS = {"import_error_package", "test_runner_apps"}

# (a libmongoc log line -- "2026/12/04 18:11:10.0572: [pid]:  WARNING: mongoc:
# ..." on stderr -- may come between a test's " ... " and its outcome: over
# djongo-server an abortTransaction the server answers NoSuchTransaction)
LINE = re.compile(r"^(test\w*) \(([\w.]+)\)(?:\n.*?)? \.\.\. (?:\d{4}/\d\d/\d\d [^\n]*\n)*"
                  r"(ok|FAIL|ERROR|skipped|expected failure|unexpected success)(?: '([^'\n]*)'| \"([^\"\n]*)\")?",
                  re.M | re.S)
# a test for SQLite itself: its module or class is named for SQLite
# (backends.sqlite.tests, ...), or djongo skips it because it is not SQLite
# ("SQLite specific", "Test only for SQLite", ...)
SQLITE_NAME = re.compile(r"(^|\.|_)sqlite", re.I)
SQLITE_REASON = re.compile(r"sqlite", re.I)


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


def all_apps(tests):
    """Every test app runtests.py would run, minus EXCLUDED, sorted."""
    return sorted(d.name for d in tests.iterdir()
                  if d.is_dir() and "." not in d.name and (d / "__init__.py").exists()
                  and d.name not in RUNTESTS_SKIPS | EXCLUDED)


def sqlite_only(test, reason):
    """Whether a test passing on SQLite is one of SQLite's own (not counted)."""
    where = test.rsplit(".", 1)[0]
    return bool(SQLITE_NAME.search(where) or (reason and SQLITE_REASON.search(reason)))


def has_feature_skip(reason):
    """Whether djongo skipped a test for having a feature (skipIfDBFeature)."""
    return bool(reason and reason.startswith("Database has feature(s)"))


def parse(out):
    """{test id: outcome} and {test id: skip reason} of a verbose run's output."""
    results, reasons = {}, {}
    for m in LINE.finditer(out):
        name, where, outcome, quoted, dquoted = m.groups()
        reason = quoted or dquoted  # unittest writes the reason's repr()
        test = "%s.%s" % (where, name) if not where.endswith(name) else where
        results[test] = outcome
        if reason:
            reasons[test] = reason
    return results, reasons


@contextlib.contextmanager
def server(dbpath, log):
    """A djongo-server over `dbpath` on a free port, its stderr to `log`;
    yields its URI and stops it with SIGTERM (its exit status noted in the log)."""
    tool = os.environ.get("DJONGO_SERVER") or shutil.which("djongo-server")
    if not tool:
        sys.exit("--transport server: djongo-server is not on PATH (pip install . puts it there) nor in $DJONGO_SERVER")
    with open(log, "w") as err:
        proc = subprocess.Popen([tool, "--dbpath", str(dbpath), "--port", "0", "--nosync", "--txn-lifetime", "86400"],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            line = proc.stdout.readline()
            if not line.startswith("djongo-server listening on port "):
                raise RuntimeError("djongo-server did not start: %r (see %s)" % (line, log))
            yield "mongodb://127.0.0.1:%d/" % int(line.split()[-1])
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            err.write("\ndjongo-server exited with status %s\n" % proc.returncode)


def run_app(tests, app, settings, timeout, transport="embedded"):
    """The output of one app's run under one settings module (over two
    djongo-servers when `transport` is "server": their stderr follows)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(tests)]))
    with tempfile.TemporaryDirectory(prefix="djongo-suite-") as data, contextlib.ExitStack() as stack:
        env["DJONGO_SUITE_DATA"] = data
        if transport == "server":
            for alias in ("default", "other"):
                env["DJONGO_SUITE_URI_" + alias.upper()] = stack.enter_context(
                    server(pathlib.Path(data) / alias, pathlib.Path(data) / (alias + ".server.log")))
        args = [sys.executable, "runtests.py", "--settings", settings, "-v", "2", app]
        if transport == "server":
            args.append("--parallel=1")  # runtests.py's default is a process per core
        try:
            p = subprocess.run(args, cwd=tests, env=env, capture_output=True, text=True, timeout=timeout)
            out = p.stdout + p.stderr
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode() + (e.stderr or b"").decode() if isinstance(e.stdout, bytes) else \
                (e.stdout or "") + (e.stderr or "")
        stack.close()  # the servers stopped: their logs are complete
        if transport == "server":
            for alias in ("default", "other"):
                out += "\n--- djongo-server (%s) stderr ---\n" % alias
                out += (pathlib.Path(data) / (alias + ".server.log")).read_text(errors="replace")
    return out


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(tests, app, timeout, logs, from_logs=False, transport="embedded"):
    """One app on SQLite and on djongo (run, or read from the logs of a
    run): its row of the table. Over the server, the SQLite side is read
    from the logs when an embedded run left it there."""
    t0 = time.time()
    name = "%s.log" % app if transport == "embedded" else "%s.%s.log" % (app, transport)
    lite_log = pathlib.Path(logs) / ("%s.sqlite.log" % app) if logs else None
    if from_logs:
        lite_out = lite_log.read_text()
        out = (pathlib.Path(logs) / name).read_text()
    else:
        if transport != "embedded" and lite_log and lite_log.exists():
            lite_out = lite_log.read_text()
        else:
            lite_out = run_app(tests, app, "test_sqlite", timeout)
        out = run_app(tests, app, "test_djongo", timeout, transport)
        if logs:
            pathlib.Path(logs).mkdir(parents=True, exist_ok=True)
            (pathlib.Path(logs) / name).write_text(out)
            lite_log.write_text(lite_out)
    lite, _ = parse(lite_out)
    djo, reasons = parse(out)
    passing = {t for t, o in lite.items() if o in ("ok", "expected failure")}
    own = {t for t in passing if sqlite_only(t, reasons.get(t))}
    has = {t for t in passing - own if djo.get(t) == "skipped" and has_feature_skip(reasons.get(t))}
    counted = passing - own - has
    both = {t for t in counted if djo.get(t) in ("ok", "expected failure")}
    c = collections.Counter(djo.values())
    return dict(app=app, sqlite=len(counted), djongo=len(both), own=len(own), has=len(has), ran=len(djo),
                failed=c["FAIL"], errors=c["ERROR"], skipped=c["skipped"], secs=time.time() - t0,
                lost=sorted(counted - both))


def write_table(path, rows, tot, everything, commit, transport="embedded"):
    pct = 100.0 * tot["djongo"] / tot["sqlite"] if tot["sqlite"] else 0.0
    scope = ("every app of Django's tests/ (%d) except gis_tests and postgres_tests" % len(rows)) if everything \
        else "%d apps chosen on the command line" % len(rows)
    where = "embedded engine" if transport == "embedded" else "djongo-server, over libmongoc"
    lines = ["# Django %s's test suite on djongo (%s)" % (django.get_version(), where), "",
             ("Generated by `bash scripts/django_suite.sh` (tests/django_suite/run_suite.py): each app's tests,"
              if transport == "embedded" else
              "Generated by `python3 tests/django_suite/run_suite.py --transport server` (two djongo-servers): each app's tests,"),
             "unmodified, with Django's SQLite settings and with `tests/django_suite/test_djongo.py`, in the same run.",
             "\"Pass on djongo\" counts the tests that pass on SQLite and also pass on djongo. Tests of SQLite",
             "itself (backends.sqlite and the like: a module or class named for SQLite, or skipped on djongo for",
             "not being SQLite) are in the \"SQLite's own\" column, and tests djongo skips because it has a",
             "feature SQLite lacks (\"Database has feature(s) ...\": they check a backend without it) in the",
             "\"for a feature djongo has\" column; neither is in the ratio.",
             "Measured %s at commit %s over %s." % (time.strftime("%Y-%m-%d", time.gmtime()), commit, scope),
             "",
             "**Total: %d of the %d tests that pass on SQLite pass on djongo (%.1f%%).**" % (
                 tot["djongo"], tot["sqlite"], pct), "",
             "| app | pass on SQLite | of those, pass on djongo | % | SQLite's own | for a feature djongo has "
             "| djongo failures | djongo errors | djongo skips |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = 100.0 * r["djongo"] / r["sqlite"] if r["sqlite"] else 100.0
        lines.append("| %s | %d | %d | %.1f | %d | %d | %d | %d | %d |" % (
            r["app"], r["sqlite"], r["djongo"], p, r["own"], r["has"], r["failed"], r["errors"], r["skipped"]))
    lines.append("| **total** | **%d** | **%d** | **%.1f** | %d | %d | %d | %d | %d |" % (
        tot["sqlite"], tot["djongo"], pct, tot["own"], tot["has"], tot["failed"], tot["errors"], tot["skipped"]))
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_text("\n".join(lines) + "\n")


def differences(embedded_logs, logs, apps, transport):
    """'test: embedded outcome -> this run's outcome' for every test whose
    outcome differs between an embedded run's logs and this run's (a test
    missing from one side: 'absent')."""
    lines = []
    for app in apps:
        emb, _ = parse((pathlib.Path(embedded_logs) / ("%s.log" % app)).read_text())
        this, _ = parse((pathlib.Path(logs) / ("%s.%s.log" % (app, transport))).read_text())
        for t in sorted(set(emb) | set(this)):
            if emb.get(t) != this.get(t):
                lines.append("%s: %s -> %s" % (t, emb.get(t, "absent"), this.get(t, "absent")))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("apps", nargs="*", help="apps to run (default: all of Django's test apps but gis/postgres)")
    ap.add_argument("--out", default=None, help="table file (default: docs/django-suite.md for all apps, "
                                              "var/django-suite/subset.md for a few, so a partial run never "
                                              "replaces the published table)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--logs", default=None, help="directory for each run's full output (APP.log on djongo, "
                                                 "APP.sqlite.log on SQLite) and lost.txt: the tests lost on djongo")
    ap.add_argument("--from-logs", default=None, help="a --logs directory of an earlier run: the table from its "
                                                      "logs, nothing run (all the apps it has, or APPs)")
    ap.add_argument("--commit", default=None, help="the commit the logs' run measured (--from-logs)")
    ap.add_argument("--transport", choices=("embedded", "server"), default="embedded",
                    help="djongo's side on the embedded engine (default) or over two djongo-servers (libmongoc)")
    ap.add_argument("--compare", default=None, help="with --transport server and --logs: a --logs directory of an "
                                                    "embedded run (may be the same one); the tests whose outcome "
                                                    "differs go to LOGS/differences.txt")
    a = ap.parse_args()
    if a.compare and not (a.logs or a.from_logs):
        ap.error("--compare needs --logs (or --from-logs): it reads this run's logs")
    tests = django_tests()
    commit = a.commit or git_commit()  # the code measured: HEAD when the run starts
    everything = not a.apps
    apps = a.apps or all_apps(tests)
    if a.from_logs:
        a.logs = a.from_logs
        suffix = ".log" if a.transport == "embedded" else ".%s.log" % a.transport
        have = {p.name[:-len(suffix)] for p in pathlib.Path(a.logs).glob("*" + suffix)
                if "." not in p.name[:-len(suffix)]}
        apps = [app for app in apps if app in have]
        everything = everything and len(apps) == len(all_apps(tests))
    elif a.logs:
        pathlib.Path(a.logs).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(a.logs) / "commit.txt").write_text(commit + "\n")
    if a.out is None:
        a.out = str(ROOT / "docs" / "django-suite.md") if everything and a.transport == "embedded" \
            else str(ROOT / "var" / "django-suite" / ("subset.md" if a.transport == "embedded" else "server.md"))
    rows, tot = [], collections.Counter()
    for app in apps:
        row = measure(tests, app, a.timeout, a.logs, from_logs=bool(a.from_logs), transport=a.transport)
        rows.append(row)
        for k in ("sqlite", "djongo", "own", "has", "ran", "failed", "errors", "skipped"):
            tot[k] += row[k]
        pct = 100.0 * row["djongo"] / row["sqlite"] if row["sqlite"] else 100.0
        print("%-26s %5d pass on SQLite, %5d of them on djongo (%5.1f%%), %d SQLite's own, %d for a feature "
              "djongo has; djongo: %d failed, %d errors, %d skipped [%.0fs]" % (
                  app, row["sqlite"], row["djongo"], pct, row["own"], row["has"], row["failed"], row["errors"],
                  row["skipped"], row["secs"]), flush=True)
    if a.logs:
        (pathlib.Path(a.logs) / "lost.txt").write_text("".join("%s\n" % t for r in rows for t in r["lost"]))
    write_table(a.out, rows, tot, everything, commit, a.transport)
    if a.compare:
        lines = differences(a.compare, a.logs, apps, a.transport)
        (pathlib.Path(a.logs) / "differences.txt").write_text("".join(l + "\n" for l in lines))
        print("%d tests differ between the embedded run (%s) and this one" % (len(lines), a.compare))
    pct = 100.0 * tot["djongo"] / tot["sqlite"] if tot["sqlite"] else 0.0
    print("total: %d of the %d tests that pass on SQLite pass on djongo (%.1f%%), %d SQLite's own and %d for a "
          "feature djongo has apart; table in %s" % (tot["djongo"], tot["sqlite"], pct, tot["own"], tot["has"], a.out))


if __name__ == "__main__":
    main()
