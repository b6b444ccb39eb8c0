"""A pytest plugin loaded into a run of one of pymongo's own test modules
(pymongo_suite.py starts it as `pytest -p pymongo_suite_plugin`): writes one
JSON line per test to DJONGO_SUITE_RESULTS -- its id, outcome (passed,
failed, error, skipped) and the first line of its failure or skip message --
as soon as the test ends, so a module stopped by its time limit still has
the lines of the tests it finished.

It also runs the modules as on a developer's machine rather than in a
container: pymongo adds the container it detects (a /.dockerenv file, a
KUBERNETES_SERVICE_HOST variable) to its handshake metadata (env.container),
which its metadata and handshake tests do not expect unless they set it
themselves. pymongo_suite.py unsets the variable; the file cannot be unset,
so pymongo's pool_options is pointed at a path that does not exist (its
DOCKER_ENV_PATH, read at each handshake). Nothing the server sees or answers
changes but that metadata field."""
import json
import os

import pytest

_out = None


def pytest_configure(config):
    global _out
    _out = open(os.environ["DJONGO_SUITE_RESULTS"], "a")
    import pymongo.pool_options
    pymongo.pool_options.DOCKER_ENV_PATH = os.path.join(os.path.dirname(os.environ["DJONGO_SUITE_RESULTS"]),
                                                        "no-dockerenv-here")


def pytest_unconfigure(config):
    if _out:
        _out.close()


def _message(rep):
    if rep.skipped and isinstance(rep.longrepr, tuple):
        return str(rep.longrepr[2])
    crash = getattr(rep.longrepr, "reprcrash", None)
    text = crash.message if crash else str(rep.longrepr or "")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


def _record(item, outcome, message):
    _out.write(json.dumps({"id": item.nodeid.split("::", 1)[-1], "outcome": outcome,
                           "message": message}) + "\n")
    _out.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "setup":
        if rep.skipped:
            _record(item, "skipped", _message(rep))
        elif rep.failed:
            _record(item, "error", _message(rep))
    elif rep.when == "call":
        if hasattr(rep, "wasxfail"):
            _record(item, "skipped" if rep.skipped else "passed", "pymongo expects it to fail: " + rep.wasxfail)
        elif rep.skipped:
            _record(item, "skipped", _message(rep))
        else:
            _record(item, "passed" if rep.passed else "failed", "" if rep.passed else _message(rep))
    elif rep.when == "teardown" and rep.failed:
        _record(item, "error", "teardown: " + _message(rep))
