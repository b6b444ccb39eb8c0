"""Typos and impossible placements are said at check time (issue 19,
finding 6), each in a fresh process (Django's settings are configured
once per process): DATABASES keys and values (djongo.E01x) -- refused when
the connection is first made and reported by `manage.py check` -- and
fields a sub-document cannot hold (djongo.E003/E004/W004); Django's JSONField
accepted."""
import json
import subprocess
import sys
import textwrap

PRELUDE = """
import json, sys
from django.conf import settings
settings.configure(INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
                   DATABASES={"default": DB}, DEFAULT_AUTO_FIELD="django.db.models.AutoField")
import django
django.setup()
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
"""


def run(db, body):
    script = "DB = %r\n" % (db,) + PRELUDE + textwrap.dedent(body)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


SETTINGS_REPORT = """
found = [[e.id, e.msg, e.hint] for e in checks.run_checks()]
try:
    connection.ensure_connection()
    refused = None
except ImproperlyConfigured as e:
    refused = str(e)
print(json.dumps({"checks": found, "refused": refused}))
"""


def test_typos_in_settings_are_errors(tmp_path):
    r = run({"ENGINE": "djongo", "NAME": "x", "HOST": str(tmp_path / "d"), "ENFORCE_SCHEME": True,
             "OPTIONS": {"authSorce": "admin", "replicaSet": "rs"}}, SETTINGS_REPORT)
    ids = sorted(i for i, _, _ in r["checks"])
    assert ids == ["djongo.E010", "djongo.E012"], r
    msgs = {i: (m, h) for i, m, h in r["checks"]}
    assert "'ENFORCE_SCHEME'" in msgs["djongo.E010"][0] and "ENFORCE_SCHEMA" in msgs["djongo.E010"][1]
    assert "'authSorce'" in msgs["djongo.E012"][0] and "authsource" in msgs["djongo.E012"][1].lower()
    assert "djongo.E010" in r["refused"] and "djongo.E012" in r["refused"]  # no connection on bad settings
    assert not (tmp_path / "d").exists()


def test_enforce_schema_must_be_a_bool(tmp_path):
    r = run({"ENGINE": "djongo", "NAME": "x", "HOST": str(tmp_path / "d"), "ENFORCE_SCHEMA": "False"},
            SETTINGS_REPORT)
    assert [i for i, _, _ in r["checks"]] == ["djongo.E011"] and "'False'" in r["checks"][0][1]


def test_host_rules(tmp_path):
    r = run({"ENGINE": "djongo", "NAME": "x", "HOST": str(tmp_path / "no" / "such" / "d")}, SETTINGS_REPORT)
    assert [i for i, _, _ in r["checks"]] == ["djongo.E014"] and "does not exist" in r["checks"][0][1]
    assert not (tmp_path / "no").exists()  # the whole tree is not made
    (tmp_path / "relative-data").mkdir()
    script = "import os; os.chdir(%r)\n" % str(tmp_path) + SETTINGS_REPORT
    r = run({"ENGINE": "djongo", "NAME": "x", "HOST": "relative-data"}, script)
    assert [i for i, _, _ in r["checks"]] == ["djongo.E013"] and "./relative-data" in r["checks"][0][2]
    r = run({"ENGINE": "djongo", "NAME": "x", "HOST": str(tmp_path / "d")}, SETTINGS_REPORT)
    assert r == {"checks": [], "refused": None}  # good settings: nothing said, the connection made


FIELDS = """
import bson
from django.db import models as dj
from djongo import models

class Base(dj.Model):  # the app label, inherited (an abstract model's Meta is)
    class Meta:
        abstract = True
        app_label = "checks_app"

class Author(Base):
    pass

class Inner(dj.Model):
    author = dj.ForeignKey(Author, on_delete=dj.CASCADE)
    tags = dj.ManyToManyField(Author, related_name="+")
    class Meta:
        abstract = True

class Outer(Base):
    inner = models.EmbeddedField(model_container=Inner)
    many = models.ArrayField(model_container=Inner)

class Ids(Base):
    _id = models.ObjectIdField()
    ref = models.ObjectIdField()
    fresh = models.ObjectIdField(default=bson.ObjectId)
    generic = models.GenericObjectIdField(null=True)

class Json(Base):
    data = dj.JSONField()
    good = models.JSONField()

out = {}
for m in (Outer, Ids):
    out[m.__name__] = sorted([e.id, e.msg] for e in m.check())
out["Json"] = [[e.id, e.msg] for f in Json._meta.local_fields
               for e in [*connection.validation.check_field(f), *f.check(databases=["default"])]]
print(json.dumps(out))
"""


def test_fields_a_sub_document_cannot_hold(tmp_path):
    r = run({"ENGINE": "djongo", "NAME": "x", "HOST": str(tmp_path / "d")}, FIELDS)
    outer = r["Outer"]
    assert [i for i, _ in outer] == ["djongo.E003", "djongo.E003", "djongo.E004", "djongo.E004"], outer
    assert all("Inner" in m for _, m in outer) and any(".tags" in m for _, m in outer)
    ids = r["Ids"]
    assert [i for i, _ in ids] == ["djongo.W004"] and "'ref'" in ids[0][1]  # only the one with no id made
    # Django's own JSONField is supported (fields.E180 would say it is not)
    assert r["Json"] == []


def test_server_connection_options_are_checked_by_the_code_that_sets_them(tmp_path):
    """djongo.E015: what libmongoc's URI API would refuse (src/transport/uri.c),
    said at check time with the option's name -- before any connection."""
    bad = [({"readPreference": "secundary"}, "readPreference must be primary, primaryPreferred, secondary"),
           ({"readPreferenceTags": [{"dc": "ny"}]}, "readPreferenceTags cannot be used with readPreference primary"),
           ({"readPreference": "nearest", "maxStalenessSeconds": 30}, "maxStalenessSeconds must be a whole number"),
           ({"w": 0, "journal": True}, "w 0 (unacknowledged) cannot be combined with journal True"),
           ({"retryWrites": "yes"}, "retryWrites must be True or False"),
           ({"compressors": ["lz4"]}, "compressors: 'lz4' is not one MongoDB has"),
           ({"tlsCAFile": str(tmp_path / "missing.pem")}, "tlsCAFile: cannot read"),
           ({"readConcernLevel": "strong"}, "readConcernLevel must be local, available, majority"),
           ({"serverSelectionTimeoutMS": -1}, "serverSelectionTimeoutMS must be a whole number")]
    for options, words in bad:
        r = run({"ENGINE": "djongo", "NAME": "x", "HOST": "mongodb://127.0.0.1:1/", "OPTIONS": options},
                SETTINGS_REPORT)
        assert [i for i, _, _ in r["checks"]] == ["djongo.E015"], (options, r)
        assert words in r["checks"][0][1], (options, r)
        assert "djongo.E015" in r["refused"]
    good = {"readPreference": "secondaryPreferred", "readPreferenceTags": [{"dc": "ny", "rack": "1"}, {}],
            "maxStalenessSeconds": 120, "w": "majority", "wTimeoutMS": 1000, "journal": True, "retryWrites": True,
            "retryReads": False, "readConcernLevel": "majority", "appname": "shop", "compressors": ["zstd", "zlib"],
            "maxPoolSize": 20, "connectTimeoutMS": 2000, "serverSelectionTimeoutMS": 1000, "tls": True,
            "tlsAllowInvalidCertificates": True, "replicaSet": "rs0"}
    script = SETTINGS_REPORT.replace("connection.ensure_connection()", "connection.get_connection_params()")
    for host in ("mongodb://h1:27017,h2:27017,h3:27017/", "mongodb+srv://cluster0.example.net/"):
        r = run({"ENGINE": "djongo", "NAME": "x", "HOST": host, "OPTIONS": good}, script)
        assert r == {"checks": [], "refused": None}, (host, r)
    r = run({"ENGINE": "djongo", "NAME": "x", "HOST": "mongodb+srv://cluster0.example.net:27017/"}, SETTINGS_REPORT)
    assert [i for i, _, _ in r["checks"]] == ["djongo.E015"] and "Port numbers are prohibited" in r["checks"][0][1]


def test_djongo_checks_extend_djangos(tmp_path):
    """The backend's check() runs Django's BaseDatabaseValidation.check as
    well as its own: what Django adds there reaches `manage.py check`
    (Django's check_framework test patches it and expects the call)."""
    r = run({"ENGINE": "djongo", "NAME": "x", "HOST": str(tmp_path / "d")}, """
from django.core.checks import Warning
from django.db.backends.base.validation import BaseDatabaseValidation
BaseDatabaseValidation.check = lambda self, **kw: [Warning("from Django's own", id="base.W999")]
from django.core.checks.database import check_database_backends
print(json.dumps([e.id for e in check_database_backends(databases=["default"])]))
""")
    assert r == ["base.W999"], r
