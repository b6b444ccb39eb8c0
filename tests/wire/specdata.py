"""Where MongoDB's specification tests (unified-format JSON) are found.

They ship in pymongo's source distribution on PyPI (its test/ directory:
test/crud/unified, test/transactions/unified, ...). scripts/deps.sh
downloads the sdist of the installed pymongo version and unpacks it into
.cache/pymongo-sdist/ (ignored by git: the files are test input only, never
part of djongo's source). DJONGO_SPEC_TESTS overrides the location: a
directory laid out like pymongo's test/ (e.g. DIR/crud/unified/*.json).

Missing data is a failure, never a skip: a run that could not fetch the
files must not pass silently.
"""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/wire/ -> the tree
CACHE = os.path.join(ROOT, ".cache", "pymongo-sdist")


def spec_root():
    """pymongo's test/ directory (from DJONGO_SPEC_TESTS, or the sdist in .cache)."""
    env = os.environ.get("DJONGO_SPEC_TESTS")
    if env:
        return env
    import pymongo
    return os.path.join(CACHE, "pymongo-%s" % pymongo.version, "test")


def spec_files(*parts):
    """The sorted *.json files of one spec directory, e.g. spec_files("crud", "unified");
    fails the calling test when there are none."""
    d = os.path.join(spec_root(), *parts)
    files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".json")) if os.path.isdir(d) else []
    if not files:
        pytest.fail("MongoDB's specification tests not found in %s: `bash scripts/deps.sh` fetches them "
                    "(pymongo's sdist from PyPI into .cache/pymongo-sdist/), or set DJONGO_SPEC_TESTS "
                    "to a directory laid out like pymongo's test/" % d, pytrace=False)
    return files


def show(request, text):
    """Prints past pytest's output capture: the spec tests' per-file counts and
    every skip with its reason appear in the test command's output."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + text)
