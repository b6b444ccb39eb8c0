"""djongo.cache.MongoCache beyond Django's own cache tests
(tests/django_suite/run_cache_suite.py runs those): the stored documents
({_id, value: an int or a pickle, expires_at: a date or null}),
createcachetable's TTL index and the engine's TTL monitor deleting an
expired key by itself, incr/decr atomic across two processes and past 64
bits, OPTIONS["DATABASE"] picking the alias, a non-djongo alias refused,
add() on a live key inside atomic(). Each script runs in a process of its own.

https://www.mongodb.com/docs/manual/tutorial/expire-data/
"""
import json
import os
import subprocess
import sys

SETTINGS = '''
import os
SECRET_KEY = "x"
USE_TZ = True
INSTALLED_APPS = ["djongo"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["SQLITE"]},
             "mongo": {"ENGINE": "djongo", "NAME": "cachedb", "HOST": os.environ["DJONGO_HOST"],
                       "OPTIONS": {"TTL_MONITOR_SLEEP_SECS": 1}}}
CACHES = {"default": {"BACKEND": "djongo.cache.MongoCache", "LOCATION": "cache_collection",
                      "OPTIONS": {"DATABASE": "mongo"}},
          "on_sqlite": {"BACKEND": "djongo.cache.MongoCache", "LOCATION": "cache_collection"}}
'''

PRELUDE = '''
import datetime, json, sys, time
import django
django.setup()
from django.core.cache import cache, caches
from django.db import connections, transaction
mongo = connections["mongo"]
def docs():
    reply = mongo.command({"find": "cache_collection", "filter": {}, "sort": {"_id": 1}})
    return reply["cursor"]["firstBatch"]
out = {}
'''

STORED = PRELUDE + '''
ix = {i["name"]: i for i in mongo.command({"listIndexes": "cache_collection", "cursor": {}})["cursor"]["firstBatch"]}
out["ttl"] = [ix["expires_at_ttl"]["key"], ix["expires_at_ttl"]["expireAfterSeconds"]]
before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
cache.set("n", 41, 100)
cache.set("s", "text", None)
cache.set_many({"big": 2 ** 63 - 1, "flag": True})
out["docs"] = {d["_id"]: [type(d["value"]).__name__, d["expires_at"] is None] for d in docs()}
n = next(d for d in docs() if d["_id"] == ":1:n")
out["n_expires_in"] = round((n["expires_at"] - before).total_seconds())
out["incr"] = cache.incr("n")
out["decr"] = cache.decr("n", 10)
out["past_64_bits"] = cache.incr("big")
out["big_stored"] = type(next(d for d in docs() if d["_id"] == ":1:big")["value"]).__name__
out["back_to_64_bits"] = cache.decr("big")
cache.set("f", 1)
out["float_delta"] = cache.incr("f", 1.5)
out["big_stored_again"] = type(next(d for d in docs() if d["_id"] == ":1:big")["value"]).__name__
try:
    cache.incr("s")
except TypeError:
    out["incr_text"] = "TypeError"
try:
    cache.incr("missing")
except ValueError:
    out["incr_missing"] = "ValueError"
# the TTL monitor (every second here) deletes an expired key with no read of the cache
cache.set("short", "v", 1)
deadline = time.monotonic() + 30
while any(d["_id"] == ":1:short" for d in docs()) and time.monotonic() < deadline:
    time.sleep(0.2)
out["ttl_deleted"] = not any(d["_id"] == ":1:short" for d in docs())
with transaction.atomic(using="mongo"):
    out["add_live"] = cache.add("s", "other")
    cache.set("in_txn", 1)
out["after_txn"] = [cache.get("s"), cache.get("in_txn")]
try:
    caches["on_sqlite"].get("x")
except Exception as e:
    out["on_sqlite"] = type(e).__name__
print(json.dumps(out))
'''

INCR = PRELUDE + '''
for _ in range(200):
    cache.incr("counter")
'''


def _env(tmp_path):
    (tmp_path / "cache_settings.py").write_text(SETTINGS)
    return dict(os.environ, DJONGO_HOST=str(tmp_path / "data"), SQLITE=str(tmp_path / "db.sqlite3"),
                DJANGO_SETTINGS_MODULE="cache_settings",
                PYTHONPATH=os.pathsep.join([str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))


def _run(tmp_path, env, *args):
    p = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


MANAGE = ["-c", "import sys; from django.core.management import execute_from_command_line; "
                "execute_from_command_line(['manage.py'] + sys.argv[1:])"]


def test_documents_ttl_and_incr(tmp_path):
    env = _env(tmp_path)
    dry = _run(tmp_path, env, *MANAGE, "createcachetable", "--dry-run")
    assert json.loads(dry.splitlines()[0]) == {"createIndexes": "cache_collection", "indexes": [
        {"key": {"expires_at": 1}, "name": "expires_at_ttl", "expireAfterSeconds": 0}]}
    assert _run(tmp_path, env, *MANAGE, "createcachetable", "-v", "2").splitlines()[0] == \
        "Cache collection 'cache_collection' created."
    out = json.loads(_run(tmp_path, env, "-c", STORED))
    assert out["ttl"] == [{"expires_at": 1}, 0]
    assert out["docs"] == {":1:n": ["int", False], ":1:s": ["bytes", True],
                           ":1:big": ["int", False], ":1:flag": ["bytes", False]}  # a bool is pickled
    assert out["n_expires_in"] == 100
    assert (out["incr"], out["decr"]) == (42, 32)
    assert out["past_64_bits"] == 2 ** 63 and out["big_stored"] == "bytes"
    assert out["back_to_64_bits"] == 2 ** 63 - 1 and out["big_stored_again"] == "int"
    assert out["float_delta"] == 2.5  # as Django's BaseCache.incr: value + delta
    assert out["incr_text"] == "TypeError" and out["incr_missing"] == "ValueError"
    assert out["ttl_deleted"] is True
    assert out["add_live"] is False and out["after_txn"] == ["text", 1]
    assert out["on_sqlite"] == "ImproperlyConfigured"


def test_incr_is_atomic_across_processes(tmp_path):
    env = _env(tmp_path)
    _run(tmp_path, env, *MANAGE, "createcachetable")
    _run(tmp_path, env, "-c", PRELUDE + "cache.set('counter', 0, None)")
    procs = [subprocess.Popen([sys.executable, "-c", INCR], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert _run(tmp_path, env, "-c", PRELUDE + "print(cache.get('counter'))").strip() == "400"
