"""Django 5.2's own cache tests (tests/cache/tests.py, BaseCacheTests) on
djongo.cache.MongoCache, the way Django runs them on its DatabaseCache
(DBCacheTests: a TransactionTestCase per test, createcachetable in setUp, the
collection dropped afterwards; once more with USE_TZ=True).

    python3 tests/django_suite/run_cache_suite.py

Django's tests come from its sdist (run_suite.django_tests(), cached in
~/.cache/djongo-django-suite). DBCacheTests' own extra tests read SQL
(assertNumQueries, quoted column names); their MongoDB counterparts here
count commands instead. Ends with "cache-suite: N passed, N failed".
"""
import io
import os
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run_suite import django_tests  # noqa: E402

sys.path.insert(0, str(django_tests()))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

DATA = tempfile.mkdtemp(prefix="djongo-cache-suite-")
settings.configure(
    DATABASES={"default": {"ENGINE": "djongo", "NAME": "default", "HOST": os.path.join(DATA, "default")},
               "other": {"ENGINE": "djongo", "NAME": "other", "HOST": os.path.join(DATA, "other")}},
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions",
                    "django.contrib.messages", "djongo", "cache"],
    SECRET_KEY="django_tests_secret_key", USE_TZ=False, DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    MIDDLEWARE=[], ROOT_URLCONF=None,
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
)
django.setup()

from cache.tests import BaseCacheTests, caches_setting_for_tests  # noqa: E402
from django.core import management  # noqa: E402
from django.core.cache import cache, caches  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import TransactionTestCase, override_settings  # noqa: E402
from django.test.utils import get_runner  # noqa: E402

LOCATION = "test cache collection"  # a space, as Django's "test cache table"


class CommandCounter:
    """Counts the MongoDB commands run on the default connection."""

    def __enter__(self):
        self.commands = []
        self._command = connection.command

        def command(cmd, db=None):
            self.commands.append(next(iter(cmd)))
            return self._command(cmd, db)

        connection.command = command
        return self

    def __exit__(self, *exc):
        del connection.command


@override_settings(CACHES=caches_setting_for_tests(BACKEND="djongo.cache.MongoCache", LOCATION=LOCATION))
class MongoCacheTests(BaseCacheTests, TransactionTestCase):
    available_apps = ["cache", "djongo"]  # djongo: its createcachetable

    def setUp(self):
        super().setUp()
        assert type(caches["default"]).__name__ == "MongoCache", caches["default"]  # the override is in force
        management.call_command("createcachetable", verbosity=0)
        self.addCleanup(self.drop_collection)

    def drop_collection(self):
        connection.command({"drop": LOCATION})

    # DatabaseCache counts before it writes, so CULL_FREQUENCY 0 keeps one key fewer (DBCacheTests)
    def test_zero_cull(self):
        self._perform_cull_test("zero_cull", 50, 18)

    # ---- DBCacheTests' own tests, in commands rather than SQL queries ----

    def test_get_many_num_queries(self):
        cache.set_many({"a": 1, "b": 2})
        cache.set("expired", "expired", 0.01)
        with CommandCounter() as c:
            self.assertEqual(cache.get_many(["a", "b"]), {"a": 1, "b": 2})
        self.assertEqual(c.commands, ["find"])
        time.sleep(0.02)
        with CommandCounter() as c:
            self.assertEqual(cache.get_many(["a", "b", "expired"]), {"a": 1, "b": 2})
        self.assertEqual(c.commands, ["find", "delete"])

    def test_delete_many_num_queries(self):
        cache.set_many({"a": 1, "b": 2, "c": 3})
        with CommandCounter() as c:
            cache.delete_many(["a", "b", "c"])
        self.assertEqual(c.commands, ["delete"])

    def test_set_many_one_write(self):
        with CommandCounter() as c:
            cache.set_many({"a": 1, "b": 2, "c": 3})
        self.assertEqual(c.commands, ["count", "update"])

    def test_cull_queries(self):
        old_max_entries = cache._max_entries
        cache._max_entries = -1  # forces _cull to delete on the first write
        with CommandCounter() as c:
            try:
                cache.set("force_cull", "value", 1000)
            finally:
                cache._max_entries = old_max_entries
        self.assertEqual(c.commands.count("count"), 1)

    def test_second_call_doesnt_crash(self):
        out = io.StringIO()
        management.call_command("createcachetable", stdout=out)
        self.assertEqual(out.getvalue(),
                         "Cache collection '%s' already exists.\n" % LOCATION * len(settings.CACHES))

    @override_settings(CACHES=caches_setting_for_tests(BACKEND="djongo.cache.MongoCache",
                                                       LOCATION="createcachetable_dry_run_mode"))
    def test_createcachetable_dry_run_mode(self):
        out = io.StringIO()
        management.call_command("createcachetable", dry_run=True, stdout=out)
        self.assertTrue(out.getvalue().startswith('{"createIndexes": "createcachetable_dry_run_mode"'))
        names = [c["name"] for c in connection.command({"listCollections": 1})["cursor"]["firstBatch"]]
        self.assertNotIn("createcachetable_dry_run_mode", names)

    def test_createcachetable_creates_ttl_index(self):
        self.drop_collection()
        out = io.StringIO()
        management.call_command("createcachetable", verbosity=2, stdout=out)
        self.assertEqual(out.getvalue().splitlines()[0], "Cache collection '%s' created." % LOCATION)
        ix = {i["name"]: i for i in connection.command({"listIndexes": LOCATION, "cursor": {}})["cursor"]["firstBatch"]}
        self.assertEqual(ix["expires_at_ttl"]["key"], {"expires_at": 1})
        self.assertEqual(ix["expires_at_ttl"]["expireAfterSeconds"], 0)


@override_settings(USE_TZ=True)
class MongoCacheWithTimeZoneTests(MongoCacheTests):
    pass


def main():
    suite = unittest.TestSuite()
    loader = unittest.defaultTestLoader
    for case in (MongoCacheTests, MongoCacheWithTimeZoneTests):
        suite.addTests(loader.loadTestsFromTestCase(case))
    runner = get_runner(settings)(verbosity=int(os.environ.get("VERBOSITY", "1")), interactive=False)
    if len(sys.argv) > 1:  # test names: run those only
        suite = unittest.TestSuite(t for t in suite if any(a in t.id() for a in sys.argv[1:]))
    runner.setup_test_environment()
    old = runner.setup_databases()
    try:
        result = unittest.TextTestRunner(verbosity=runner.verbosity).run(suite)
    finally:
        runner.teardown_databases(old)
        runner.teardown_test_environment()
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print("cache-suite: %d passed, %d failed (%d skipped)"
          % (result.testsRun - failed - len(result.skipped), failed, len(result.skipped)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
