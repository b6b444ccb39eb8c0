"""MongoDB's unified spec tests through pymongo's own runner against a fresh
djongo-server per suite (pymongo_spec.py: the suites, the floors, every
test that does not pass with its reason). Each suite asserts its floor: the
pass percentage of the tests that ran and the number of passes reached, so
a regression -- tests failing, or tests skipping that used to run -- fails
here. docs/spec_tests.md is the same run written as a table
(`python3 tests/wire/pymongo_spec.py --write docs/spec_tests.md`)."""
import pytest

from conftest import Server
from pymongo_spec import SUITES, counts, run_suite, summary
from specdata import show, spec_files


@pytest.mark.parametrize("suite", list(SUITES))
def test_suite_floor(suite, tmp_path, request):
    spec_files("crud", "unified")  # fails, saying how to fetch them, when the sdist is missing
    s = Server(tmp_path / "data", "--setParameter", "enableTestCommands=1")
    try:
        rows = run_suite(suite, s, str(tmp_path))
    finally:
        assert s.stop() == 0, "djongo-server did not stop cleanly on SIGTERM"
    show(request, summary("%s through pymongo's runner" % suite, rows))
    c = counts(rows)
    _, pct_floor, pass_floor = SUITES[suite]
    assert c["passed"] >= pass_floor, "%s: %d passed, the floor is %d" % (suite, c["passed"], pass_floor)
    assert c["pct"] >= pct_floor, "%s: %.1f%% of the tests that ran pass, the floor is %d%%" % (
        suite, c["pct"], pct_floor)
