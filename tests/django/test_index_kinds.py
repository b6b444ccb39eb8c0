"""djongo.models.TTLIndex and HashedIndex through Django's migrations:
makemigrations writes them (with expire_after), migrate creates the MongoDB
indexes (expireAfterSeconds; a hashed key), the embedded engine's TTL
monitor (OPTIONS TTL_MONITOR_SLEEP_SECS = 1) deletes an expired row, an
equality lookup on the hashed field is an index scan, and a migration that
removes them drops both indexes.

https://www.mongodb.com/docs/manual/core/index-ttl/
https://www.mongodb.com/docs/manual/core/indexes/index-types/index-hashed/
"""
import textwrap

from appdir import MANAGE, first_migration, make_project, run

MODELS_WITH = '''
import datetime
from djongo import models

class Session(models.Model):
    key = models.CharField(max_length=40)
    created = models.DateTimeField()
    class Meta:
        indexes = [models.TTLIndex(fields=["created"], expire_after=datetime.timedelta(hours=1), name="session_ttl"),
                   models.HashedIndex(fields=["key", "-created"], name="session_key_hashed")]
'''
MODELS_WITHOUT = '''
from djongo import models

class Session(models.Model):
    key = models.CharField(max_length=40)
    created = models.DateTimeField()
'''


CHECK = '''
import datetime, time
import django
django.setup()
from django.db import connection
from django.utils import timezone
from ttlapp.models import Session

def indexes():
    reply = connection.command({"listIndexes": "ttlapp_session", "cursor": {}})
    return {ix["name"]: ix for ix in reply["cursor"]["firstBatch"]}

ix = indexes()
print("TTL", ix.get("session_ttl", {}).get("key"), ix.get("session_ttl", {}).get("expireAfterSeconds"))
print("HASHED", ix.get("session_key_hashed", {}).get("key"))
now = timezone.now()
Session.objects.create(key="old", created=now - datetime.timedelta(hours=2))
Session.objects.create(key="new", created=now)
deadline = time.monotonic() + 60
while Session.objects.filter(key="old").exists() and time.monotonic() < deadline:
    time.sleep(0.1)
print("LEFT", sorted(Session.objects.values_list("key", flat=True)))
plan = connection.command({"explain": {"find": "ttlapp_session", "filter": {"key": "new"}}})
print("PLAN", plan["queryPlanner"]["winningPlan"].get("inputStage", {}).get("indexName"))
'''

CHECK_DROPPED = '''
import django
django.setup()
from django.db import connection
reply = connection.command({"listIndexes": "ttlapp_session", "cursor": {}})
print("NAMES", sorted(ix["name"] for ix in reply["cursor"]["firstBatch"]))
'''


def test_ttl_and_hashed_indexes_through_migrations(tmp_path):
    app = tmp_path / "ttlapp"
    env = make_project(tmp_path, "ttlapp", MODELS_WITH, "kinds", {"TTL_MONITOR_SLEEP_SECS": 1})

    first, sql = first_migration(tmp_path, env, "ttlapp")
    assert "djongo.models.TTLIndex(" in first and "expire_after=datetime.timedelta(seconds=3600)" in first
    assert "djongo.models.HashedIndex(" in first
    assert 'WITH (expireAfterSeconds = 3600)' in sql and '"key" HASHED, "created" DESC' in sql
    run(tmp_path, env, *MANAGE, "migrate", "ttlapp")

    out = dict(line.split(" ", 1) for line in run(tmp_path, env, "-c", CHECK).splitlines())
    assert out["TTL"] == "{'created': 1} 3600"
    assert out["HASHED"] == "{'key': 'hashed', 'created': -1}"
    assert out["LEFT"] == "['new']"  # the monitor deleted the row two hours old
    assert out["PLAN"] == "session_key_hashed"

    (app / "models.py").write_text(textwrap.dedent(MODELS_WITHOUT))
    run(tmp_path, env, *MANAGE, "makemigrations", "ttlapp")
    second = next((app / "migrations").glob("0002_*.py")).read_text()
    assert second.count("migrations.RemoveIndex(") == 2
    run(tmp_path, env, *MANAGE, "migrate", "ttlapp")
    out = run(tmp_path, env, "-c", CHECK_DROPPED)
    names = out.strip()
    assert names.startswith("NAMES ") and "session_ttl" not in names and "session_key_hashed" not in names, names
