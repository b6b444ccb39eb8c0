"""Writes tests/sql/golden/django.test: the SQL Django 5.2 emits for
tests/sql/django_corpus.py, each statement with the MongoDB commands the
compiler gives now (or its refusal).

    python3 scripts/capture_django_sql.py        (after ninja -C build)

The rows these commands return are checked against SQLite by
tests/sql/test_django_corpus.py; this file pins the translations, so a change
to the compiler shows as a diff here. Review the diff before committing it.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "sql"))
import django_corpus  # noqa: E402

seen, lines = set(), ["# The SQL Django 5.2 emits for tests/sql/django_corpus.py (regenerate with",
                      "# scripts/capture_django_sql.py); rows checked against SQLite by test_django_corpus.py."]
for sql, params in django_corpus.capture():
    if sql.split(None, 1)[0].upper() in ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "PRAGMA"):
        continue
    key = (sql, json.dumps(params, default=str))
    if key in seen or "\n" in sql:
        continue
    seen.add(key)
    lines.append("sql " + sql)
    if params:
        lines.append("params " + json.dumps(params, default=str))
with tempfile.NamedTemporaryFile("w", suffix=".in", delete=False) as f:
    f.write("\n".join(lines) + "\n")
out = subprocess.check_output([os.path.join(ROOT, "build", "tests", "sql", "run_golden"), "--print", f.name], text=True)
os.unlink(f.name)
open(os.path.join(ROOT, "tests", "sql", "golden", "django.test"), "w").write(out)
print("django.test: %d statements" % len(seen))
