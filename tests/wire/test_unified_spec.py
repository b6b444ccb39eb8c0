"""MongoDB's CRUD and transactions specification tests (unified format)
through pymongo against a fresh djongo-server. The files come from pymongo's
sdist (tests/conformance/specdata.py; scripts/deps.sh fetches it); missing
files fail these tests. Prints each file's pass/fail/skip, every test that
did not pass with its reason (unified_runner.py), and the totals. Floors
asserted: issue 4's targets, 98% of the runnable CRUD tests and 90% of the
transaction tests."""
from conftest import Server
from unified_runner import report, run_files
from specdata import show, spec_files  # tests/conformance, on sys.path through unified_runner


def run(tmp_path, request, parts, floor):
    files = spec_files(*parts)
    s = Server(tmp_path / "data", "--txn-lifetime", "3")
    try:
        results = run_files(s.uri, files)
    finally:
        assert s.stop() == 0
    text, pct, tot = report(results, "%s through pymongo against djongo-server (%s)"
                            % ("/".join(parts), files[0].rsplit("/", 1)[0]))
    lines = [text]
    for f, rows in sorted(results.items()):
        for desc, verdict, reason in rows:
            if verdict != "pass":
                lines.append("  %s %s: %s -- %s" % (verdict, f, desc, reason[:160]))
    show(request, "\n".join(lines))
    assert tot["pass"] > 0
    assert pct >= floor, text


def test_crud_unified(tmp_path, request):
    run(tmp_path, request, ("crud", "unified"), 98.0)


def test_transactions_unified(tmp_path, request):
    run(tmp_path, request, ("transactions", "unified"), 90.0)
