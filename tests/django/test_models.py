"""djongo.models' tests (docfields_tests.py), those of Django's own
JSONField (jsonfield_tests.py), of joins and subqueries against SQLite
(relations_tests.py), of GeneratedField (generated_tests.py) and of
collations (collation_tests.py) against SQLite, and the settings surface
(surface_tests.py: SCHEMA_VALIDATION, bulk writes), DateTimeField to the
microsecond against SQLite (datetime_us_tests.py), each suite in a pytest
process of its own: they configure Django's settings for their app
(tests/django/docfields, tests/django/jsonapp, tests/django/relapp,
tests/django/genapp, tests/django/collapp, tests/django/dtusapp) at import, which would clash with the other modules
that configure Django differently in the same process (tests/sql's corpus).
Every test's result is printed; any failure fails the suite's test."""
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


@pytest.mark.parametrize("suite", ["docfields_tests.py", "jsonfield_tests.py", "relations_tests.py", "generated_tests.py",
                                   "collation_tests.py", "surface_tests.py", "datetime_us_tests.py"])
def test_suite(suite):
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(HERE / suite)],
                       capture_output=True, text=True, timeout=600, cwd=HERE)
    print(p.stdout[-20000:])
    assert p.returncode == 0, p.stdout[-20000:] + p.stderr[-5000:]
    assert " passed" in p.stdout.splitlines()[-1]
