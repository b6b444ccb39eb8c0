"""The CRUD specification's aggregate tests, through the engine API.

The files: crud/unified/*aggregate*.json of MongoDB's specification tests,
from pymongo's sdist (specdata.py; scripts/deps.sh fetches it).

Every standalone-runnable aggregate test must pass; each skip is listed with
its reason (replica-set-only, server-version ranges, driver-only checks).
"""

import os
import shutil

import pytest

from specdata import show, spec_files, spec_root
from unified import run_files


def aggregate_files():
    return [f for f in spec_files("crud", "unified") if "aggregate" in os.path.basename(f)]


# Tests the engine does not pass yet, each with what is missing. They still
# run (a gap that closes shows up as a pass) and are reported, never hidden.
KNOWN_GAPS = {}


@pytest.fixture(scope="module")
def results(tmp_path_factory, request):
    tool = shutil.which("djongo-engine")
    assert tool, "djongo-engine must be installed (pip install .)"
    res = run_files(tool, str(tmp_path_factory.mktemp("spec")), aggregate_files())
    counts = {s: sum(1 for r in res if r[2] == s) for s in ("passed", "failed", "skipped")}
    lines = ["aggregate spec tests through the engine API (%s): %d passed, %d failed, %d skipped"
             % (spec_root(), counts["passed"], counts["failed"], counts["skipped"])]
    lines += ["  %s %s: %s -- %s" % (status, f, d, detail[:160])
              for f, d, status, detail in res if status != "passed"]
    show(request, "\n".join(lines))
    return res


def test_files_found():
    assert aggregate_files(), "no aggregate files among the CRUD spec tests"


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
