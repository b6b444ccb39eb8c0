"""Django with HOST a MongoDB URI (the libmongoc transport) against
djongo-server: djongo.models' document fields and lookups work the same
over the wire, and DjongoManager's mongo_* methods are a real pymongo
Collection on the same database."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = r'''
import os, sys
sys.path.insert(0, os.environ["DOCFIELDS"])
from django.conf import settings
settings.configure(INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "docfields"],
                   DATABASES={"default": {"ENGINE": "djongo", "NAME": "docs", "HOST": os.environ["URI"]}},
                   USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.AutoField")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", run_syncdb=True, verbosity=0)
import pymongo.collection
from docfields.models import Entry
e = Entry.objects.create(headline="w", address={"city": "Paris", "geo": {"lat": 1.0, "lng": 2.0}},
                         authors=[{"name": "Ann"}, {"name": "Bob"}], data={"a": {"b": 1}})
assert list(Entry.objects.filter(authors__name="Bob", address__geo__lat=1.0, data__a__b=1)) == [e]
assert Entry.objects.get(pk=e.pk).address.city == "Paris"
coll = Entry.objects.mongo_collection()
assert isinstance(coll, pymongo.collection.Collection), type(coll)
assert Entry.objects.mongo_find_one({"address.city": "Paris"})["authors"][1]["name"] == "Bob"
Entry.objects.mongo_update_one({"id": e.id}, {"$set": {"address.city": "Lyon"}})
assert Entry.objects.get(pk=e.pk).address.city == "Lyon"
print("over the wire: ok")
'''


def test_document_fields_over_djongo_server(server):
    env = dict(os.environ, URI=server.uri, DOCFIELDS=str(ROOT / "tests" / "django"))
    p = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "over the wire: ok" in p.stdout
