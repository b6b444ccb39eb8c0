"""MongoDB's CRUD and transactions specification tests (unified format, from
../shared/conformance) through pymongo against a fresh djongo-server.
Prints each file's pass/fail/skip and the totals; every skip has its reason
(unified_runner.py). Floors asserted: issue 4's targets, 98% of the
runnable CRUD tests and 90% of the transaction tests."""
import os
import pathlib

import pytest

from conftest import Server
from unified_runner import report, run_files

CONFORMANCE = pathlib.Path(os.environ.get("DJONGO_CONFORMANCE")
                           or pathlib.Path(__file__).resolve().parents[3] / "shared" / "conformance")


def run(tmp_path, name, floor):
    d = CONFORMANCE / name
    if not d.is_dir():
        pytest.fail("conformance data missing: %s (the repository's sibling ../shared)" % d)
    s = Server(tmp_path / "data", "--txn-lifetime", "3")
    try:
        results = run_files(s.uri, sorted(str(p) for p in d.glob("*.json")))
    finally:
        assert s.stop() == 0
    text, pct, tot = report(results, "%s through pymongo against djongo-server" % name)
    print(text)
    for f, rows in sorted(results.items()):
        for desc, verdict, reason in rows:
            if verdict != "pass":
                print("  %s %s: %s -- %s" % (verdict, f, desc, reason[:160]))
    assert tot["pass"] > 0
    assert pct >= floor, text


def test_crud_unified(tmp_path):
    run(tmp_path, "crud-unified", 98.0)


def test_transactions_unified(tmp_path):
    run(tmp_path, "transactions-unified", 90.0)
