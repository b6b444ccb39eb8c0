"""Replays the SQL Django 5.2 emits (django_corpus.py) on SQLite and on the
embedded engine, statement by statement, in order.

A statement either
  - translates, and then a SELECT returns the same rows as SQLite and a
    write changes the same data (checked by the SELECTs that follow), or
  - is refused by the compiler (DJ_DOMAIN_SQL: a syntax outside our dialect,
    or NotSupported naming the construct).
Anything else -- different rows, a server error SQLite did not have, a
crash -- fails the test. The counts are printed (pytest -s) and the refused
statements listed with their reasons, so the coverage is visible.

Once a write is refused, the two databases differ; the rows that depend on
it can no longer be compared, so the replay stops comparing rows from that
point on (and says so) but keeps checking that nothing crashes.
"""
import collections
import json
import re
import os
import shutil
import subprocess

import pytest

pytest.importorskip("django", reason="Django 5.2 is installed by scripts/deps.sh")

from bson import json_util  # noqa: E402

import django_corpus  # noqa: E402
from test_exec_vs_sqlite import norm_rows  # noqa: E402

# DJONGO_SQL: a given build's binary (scripts/test.sh passes the ASan one); else the installed one
TOOL = os.environ.get("DJONGO_SQL") or shutil.which("djongo-sql")
DJ_DOMAIN_SQL = 1001


def top_level_order_by(sql):
    depth, out = 0, []
    for ch in sql:
        depth += ch == "("
        if depth == 0:
            out.append(ch)
        depth -= ch == ")"
    return " ORDER BY " in "".join(out)


def replay(engine_dir):
    from django.db import connections

    statements = django_corpus.capture()
    ref = connections.create_connection("default")  # a second, empty in-memory SQLite
    ref.ensure_connection()
    ref.connection.execute("PRAGMA case_sensitive_like = ON")  # our LIKE's meaning
    cur = ref.cursor()
    proc = subprocess.Popen([TOOL, "--host", str(engine_dir), "--db", "corpus", "--create", "--batch"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    report = collections.Counter()
    refused, mismatches = [], []
    diverged_at = None
    try:
        for i, (sql, params) in enumerate(statements):
            first = sql.lstrip().split(None, 1)[0].upper()
            if first in ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "PRAGMA"):
                # atomic blocks are the driver's (sessions, issue 6); PRAGMA is
                # SQLite's own: our backend's schema editor sends neither here
                report["skipped (transaction control, PRAGMA)"] += 1
                continue
            is_select = first == "SELECT"
            try:
                cur.execute(sql, params)
                want = cur.fetchall() if is_select else None
                ref_error = None
            except Exception as exc:  # noqa: BLE001 -- the reference's failure is data
                want, ref_error = None, exc
            proc.stdin.write(json.dumps([sql, params], default=str) + "\n")
            proc.stdin.flush()
            res = json_util.loads(proc.stdout.readline())
            if "error" in res:
                err = res["error"]
                if err["domain"] == DJ_DOMAIN_SQL:
                    report["refused"] += 1
                    refused.append((sql, err["message"]))
                    if not is_select and diverged_at is None:
                        diverged_at = i
                elif ref_error is not None:
                    report["both failed"] += 1
                else:
                    report["engine error"] += 1
                    mismatches.append((sql, params, "engine error: %s" % err["message"]))
                continue
            if ref_error is not None:
                report["reference failed"] += 1
                mismatches.append((sql, params, "SQLite failed (%s), the engine did not" % ref_error))
                continue
            report["translated"] += 1
            if not is_select:
                continue
            if diverged_at is not None:
                report["not compared (after a refused write)"] += 1
                continue
            got, exp = norm_rows(res["rows"]), norm_rows(want)
            same = got == exp if top_level_order_by(sql) else collections.Counter(got) == collections.Counter(exp)
            if same:
                report["rows equal"] += 1
            else:
                mismatches.append((sql, params, "rows differ:\n  sqlite %r\n  engine %r" % (exp, got)))
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        ref.close()
    report["statements"] = len(statements)
    return report, refused, mismatches, diverged_at


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    if TOOL is None:
        pytest.fail("djongo-sql is not installed (pip install . puts it on PATH)")
    return replay(tmp_path_factory.mktemp("corpus"))


def test_no_wrong_rows_and_no_crashes(result):
    report, refused, mismatches, diverged_at = result
    print("\nDjango SQL corpus:", dict(report))
    reasons = collections.Counter(re.sub(r" \(at offset \d+\)| at offset \d+", "", m) for _, m in refused)
    for reason, n in reasons.most_common():
        print("  refused %3d x %s" % (n, reason))
    assert not mismatches, "\n\n".join("%s %r\n%s" % m for m in mismatches[:10])


def test_most_of_the_corpus_translates(result):
    report, _, _, _ = result
    # A floor, raised as the compiler grows: a change that makes the compiler
    # refuse what it translated before fails here.
    considered = report["statements"] - report["skipped (transaction control, PRAGMA)"]
    assert report["translated"] >= 0.98 * considered, dict(report)
