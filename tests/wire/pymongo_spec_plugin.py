"""A pytest plugin loaded into pymongo's own test run (pymongo_spec.py starts
it as `pytest -p pymongo_spec_plugin` inside pymongo's sdist): keeps only the
unified-format spec tests (classes generated from the JSON files, which
carry TEST_SPEC), deselects the ones named in DJONGO_SPEC_DESELECT (tests
that would only wait out a server-selection timeout for a member a
one-member set does not have), and writes one JSON line per test to
DJONGO_SPEC_RESULTS: its id, outcome, message, the spec file's and the
test's runOnRequirements (pymongo's skip message does not say which
requirement failed; pymongo_spec.py works it out from them)."""
import json
import os

import pytest

_out = None
_deselected = set()


def pytest_configure(config):
    global _out, _deselected
    _out = open(os.environ["DJONGO_SPEC_RESULTS"], "a")
    _deselected = set(filter(None, os.environ.get("DJONGO_SPEC_DESELECT", "").split("\n")))


def pytest_unconfigure(config):
    if _out:
        _out.close()


def _test_spec(item):
    spec = getattr(item.cls, "TEST_SPEC", None)
    if not spec:
        return None, None
    for t in spec.get("tests", []):
        name = "test_{}".format(t["description"].strip(". ").replace(" ", "_").replace(".", "_"))
        if name == item.name:
            return spec, t
    return spec, None


def _record(item, outcome, message):
    spec, test = _test_spec(item)
    _out.write(json.dumps({
        "id": "%s::%s" % (item.cls.__name__, item.name),
        "file": spec.get("description", item.cls.__name__),
        "test": test["description"] if test else item.name,
        "outcome": outcome,
        "message": message,
        "file_requirements": spec.get("runOnRequirements", []),
        "test_requirements": (test or {}).get("runOnRequirements", []),
    }, default=str) + "\n")
    _out.flush()


def pytest_collection_modifyitems(session, config, items):
    keep, drop = [], []
    for item in items:
        if getattr(item.cls, "TEST_SPEC", None) is None:
            drop.append(item)  # pymongo's own (non-spec) tests in the same module
        elif "%s::%s" % (item.cls.__name__, item.name) in _deselected:
            drop.append(item)
            _record(item, "deselected", "")
        else:
            keep.append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if getattr(item.cls, "TEST_SPEC", None) is None:
        return
    if rep.when == "setup" and rep.skipped:
        _record(item, "skipped", str(rep.longrepr[2]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr))
    elif rep.when == "setup" and rep.failed:
        _record(item, "error", _first_error(rep))
    elif rep.when == "call":
        if hasattr(rep, "wasxfail"):
            _record(item, "xfail" if rep.skipped else "xpass", rep.wasxfail)
        elif rep.skipped:
            _record(item, "skipped", str(rep.longrepr[2]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr))
        else:
            _record(item, "passed" if rep.passed else "failed", "" if rep.passed else _first_error(rep))


def _first_error(rep):
    crash = getattr(rep.longrepr, "reprcrash", None)
    text = crash.message if crash else str(rep.longrepr)
    return text.splitlines()[0][:300] if text else ""
