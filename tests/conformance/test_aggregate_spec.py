"""The CRUD specification's aggregate tests, through the engine API.

Every standalone-runnable aggregate test must pass; each skip is listed with
its reason (replica-set-only, server-version ranges, driver-only checks).
"""

import glob
import os
import shutil

import pytest

from unified import run_files

HERE = os.path.dirname(os.path.abspath(__file__))
CONFORMANCE = os.environ.get("DJONGO_CONFORMANCE", os.path.join(HERE, "..", "..", "..", "shared", "conformance"))
FILES = sorted(glob.glob(os.path.join(CONFORMANCE, "crud-unified", "*aggregate*.json")))

# Tests the engine does not pass yet, each with what is missing. They still
# run (a gap that closes shows up as a pass) and are reported, never hidden.
KNOWN_GAPS = {}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tool = shutil.which("djongo-engine")
    assert tool, "djongo-engine must be installed (pip install .)"
    if not FILES:
        pytest.skip("conformance data not found at %s" % CONFORMANCE)
    res = run_files(tool, str(tmp_path_factory.mktemp("spec")), FILES)
    print("\n%-40s %-60s %s" % ("file", "test", "status"))
    for f, d, status, detail in res:
        print("%-40s %-60s %s %s" % (f, d[:60], status, detail[:160]))
    counts = {s: sum(1 for r in res if r[2] == s) for s in ("passed", "failed", "skipped")}
    print("aggregate spec tests: %(passed)d passed, %(failed)d failed, %(skipped)d skipped" % counts)
    return res


def test_files_found():
    assert FILES, "no conformance files"


def test_every_runnable_aggregate_test_passes(results):
    failed = [r for r in results if r[2] == "failed" and (r[0], r[1]) not in KNOWN_GAPS]
    assert not failed, "\n".join("%s: %s: %s" % (r[0], r[1], r[3]) for r in failed)


def test_known_gaps_are_still_gaps(results):
    # when a known gap starts passing, it must leave the list
    fixed = [(r[0], r[1]) for r in results if r[2] == "passed" and (r[0], r[1]) in KNOWN_GAPS]
    assert not fixed, "remove from KNOWN_GAPS: %s" % fixed


# The only acceptable reasons not to run a test here: it needs another
# deployment (replica set, other server versions) or something only a driver
# talking to a server over the wire has.
ALLOWED_SKIPS = ("needs server", "needs topology", "rawData is for time-series",
                 "lists the driver's implicit session")


def test_skips_are_only_for_documented_reasons(results):
    bad = [r for r in results if r[2] == "skipped" and not any(a in r[3] for a in ALLOWED_SKIPS)]
    assert not bad, bad
    ran = [r for r in results if r[2] != "skipped"]
    assert ran, "nothing ran"
