"""Settings for Django's own test suite on djongo's embedded engine
(tests/django_suite/run_suite.py passes --settings=test_djongo). The two
databases Django's suite wants are two data directories: a TestCase holds a
transaction on each at once, and one thread may hold one write transaction
per data directory (LMDB has one writer per directory).

run_suite.py --transport server sets DJONGO_SUITE_URI_DEFAULT and
DJONGO_SUITE_URI_OTHER to two djongo-servers' URIs: the databases are then
on those servers, through the libmongoc transport."""
import os
import tempfile

_HOST = os.environ.get("DJONGO_SUITE_DATA") or tempfile.mkdtemp(prefix="djongo-suite-")

DATABASES = {
    alias: {"ENGINE": "djongo", "NAME": alias,
            "HOST": os.environ.get("DJONGO_SUITE_URI_" + alias.upper()) or os.path.join(_HOST, alias)}
    for alias in ("default", "other")
}

SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
