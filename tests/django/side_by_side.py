"""What the suites that run each queryset on djongo and on SQLite side by
side share (relations_tests.py, generated_tests.py, collation_tests.py):
Django's settings for their app -- databases "default" (djongo, a fresh
data directory) and "lite" (SQLite in memory), the app's models made
without migrations -- and the two test databases."""
import pathlib
import sys
import tempfile

from django.conf import settings

DBS = ("default", "lite")


def configure(app, *apps):
    """Settings for `app` (a folder beside this file) and the contrib
    `apps` it needs; a no-op once settings are configured."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    if settings.configured:
        return
    settings.configure(
        INSTALLED_APPS=[*apps, app],
        DATABASES={"default": {"ENGINE": "djongo", "NAME": app, "HOST": tempfile.mkdtemp(prefix="djongo-%s-" % app)},
                   "lite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.AutoField", MIGRATION_MODULES={app: None},
        SECRET_KEY="%s-tests" % app)
    import django

    django.setup()


def create_test_databases():
    from django.db import connections
    from django.test.utils import setup_test_environment

    setup_test_environment()
    for alias in DBS:
        connections[alias].creation.create_test_db(verbosity=0, autoclobber=True)


def databases_fixture():
    """create_test_databases() as a module-scoped autouse pytest fixture:
    a test module assigns it to a name of its own."""
    import pytest

    return pytest.fixture(scope="module", autouse=True, name="test_databases")(create_test_databases)
