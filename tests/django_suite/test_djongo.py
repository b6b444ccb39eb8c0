"""Settings for Django's own test suite on djongo's embedded engine
(tests/django_suite/run_suite.py passes --settings=test_djongo). The two
databases Django's suite wants are two data directories: a TestCase holds a
transaction on each at once, and one thread may hold one write transaction
per data directory (LMDB has one writer per directory)."""
import os
import tempfile

_HOST = os.environ.get("DJONGO_SUITE_DATA") or tempfile.mkdtemp(prefix="djongo-suite-")

DATABASES = {
    "default": {"ENGINE": "djongo", "NAME": "default", "HOST": os.path.join(_HOST, "default")},
    "other": {"ENGINE": "djongo", "NAME": "other", "HOST": os.path.join(_HOST, "other")},
}

SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
