"""djongo.cache.MongoCache with HOST a MongoDB URI (the libmongoc
transport) against djongo-server: the same commands over the wire -- the
TTL index (the server's monitor deletes an expired key), incr as $inc and
past 64 bits, add() on a live key inside atomic() (a session transaction:
no write error, so it commits), culling to MAX_ENTRIES."""
import json
import os
import subprocess
import sys

from conftest import Server

SCRIPT = r'''
import json, os, time
from django.conf import settings
settings.configure(DATABASES={"default": {"ENGINE": "djongo", "NAME": "cw", "HOST": os.environ["URI"]}},
                   CACHES={"default": {"BACKEND": "djongo.cache.MongoCache", "LOCATION": "cc",
                                       "OPTIONS": {"MAX_ENTRIES": 5}}})
import django
django.setup()
from django.core.cache import cache
from django.db import connection, transaction
out = {"created": cache.create_collection("default"), "again": cache.create_collection("default")}
cache.set_many({"a": 1, "b": "x"})
out["incr"] = [cache.incr("a", 5), cache.incr("a", 2 ** 63), cache.decr("a", 2 ** 63)]
try:
    cache.incr("b")
except TypeError:
    out["incr_text"] = "TypeError"
with transaction.atomic():
    out["add"] = [cache.add("a", 0), cache.add("new", 7)]
out["after"] = cache.get_many(["a", "new"])
cache.set("short", 1, 1)
deadline = time.monotonic() + 30
while connection.command({"count": "cc", "query": {"_id": ":1:short"}})["n"] and time.monotonic() < deadline:
    time.sleep(0.2)
out["ttl_deleted"] = connection.command({"count": "cc", "query": {"_id": ":1:short"}})["n"] == 0
for i in range(10):
    cache.set("k%d" % i, i)
out["count"] = connection.command({"count": "cc"})["n"]
print(json.dumps(out))
'''


def test_mongo_cache_over_djongo_server(tmp_path):
    server = Server(tmp_path / "data", "--ttl-monitor-sleep-secs", "1")
    try:
        p = subprocess.run([sys.executable, "-c", SCRIPT], env=dict(os.environ, URI=server.uri),
                           capture_output=True, text=True, timeout=300)
    finally:
        assert server.stop() == 0
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout.splitlines()[-1])
    assert out["created"] is True and out["again"] is False
    assert out["incr"] == [6, 6 + 2 ** 63, 6]
    assert out["incr_text"] == "TypeError"
    assert out["add"] == [False, True] and out["after"] == {"a": 6, "new": 7}
    assert out["ttl_deleted"] is True
    # DatabaseCache's rule: a write culls when the count before it is past MAX_ENTRIES
    assert out["count"] <= 6
