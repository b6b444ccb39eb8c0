"""TTL and hashed indexes through pymongo against djongo-server: the same
questions tests/engine/scripts/{ttl,hashed}.test ask the engine, and the TTL
monitor's deletions, which need a server running for a while.

https://www.mongodb.com/docs/manual/core/index-ttl/
https://www.mongodb.com/docs/manual/core/indexes/index-types/index-hashed/
https://www.mongodb.com/docs/manual/reference/operator/aggregation/toHashedIndexKey/
"""
import datetime
import time

import pymongo
import pytest
from bson.int64 import Int64
from pymongo.errors import OperationFailure, WriteError

from conftest import Server


@pytest.fixture
def fast_ttl(tmp_path):
    """A server whose TTL monitor runs every second."""
    s = Server(tmp_path / "data", "--ttl-monitor-sleep-secs", "1")
    yield s
    assert s.stop() == 0


def _client(server):
    return pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000)


def _passes(db):
    return db.command("serverStatus")["metrics"]["ttl"]["passes"]


def _wait_passes(db, more):
    """Waits for `more` TTL passes after now (bounded: a hung monitor fails)."""
    start = _passes(db)
    deadline = time.monotonic() + 60
    while _passes(db) < start + more:
        assert time.monotonic() < deadline, "the TTL monitor made no progress"
        time.sleep(0.05)


def test_ttl_index_expires_documents(fast_ttl):
    with _client(fast_ttl) as c:
        db = c.test
        now = datetime.datetime.now(datetime.timezone.utc)
        hour = datetime.timedelta(hours=1)
        assert db.ev.create_index("at", expireAfterSeconds=60) == "at_1"
        info = db.ev.index_information()
        assert info["at_1"]["expireAfterSeconds"] == 60
        db.ev.insert_many([
            {"_id": 1, "at": now - hour},                 # expired
            {"_id": 2, "at": now + hour},                 # not yet
            {"_id": 3, "at": "yesterday"},                # not a date: never
            {"_id": 4},                                   # no field: never
            {"_id": 5, "at": [now + hour, now - hour]},   # the earliest date counts
            {"_id": 6, "at": [now + hour]},
        ])
        before = db.command("serverStatus")["metrics"]["ttl"]["deletedDocuments"]
        _wait_passes(db, 2)
        assert [d["_id"] for d in db.ev.find({}, {"_id": 1}).sort("_id", 1)] == [2, 3, 4, 6]
        after = db.command("serverStatus")["metrics"]["ttl"]["deletedDocuments"]
        assert after - before == 2

        # collMod: a 10-minute-old date outlives 3600 s and expires at 60 s
        db.ev2.create_index("at", expireAfterSeconds=3600)
        db.ev2.insert_one({"_id": 1, "at": now - datetime.timedelta(minutes=10)})
        _wait_passes(db, 2)
        assert db.ev2.count_documents({}) == 1
        r = db.command("collMod", "ev2", index={"keyPattern": {"at": 1}, "expireAfterSeconds": 60})
        assert r["expireAfterSeconds_old"] == 3600 and r["expireAfterSeconds_new"] == 60
        _wait_passes(db, 2)
        assert db.ev2.count_documents({}) == 0


def test_ttl_index_restrictions(server):
    with _client(server) as c:
        db = c.test
        with pytest.raises(OperationFailure) as e:
            db.t.create_index([("a", 1), ("b", 1)], expireAfterSeconds=10)
        assert e.value.code == 67 and "single-field" in str(e.value)
        with pytest.raises(OperationFailure) as e:
            db.t.create_index("a", expireAfterSeconds=-1)
        assert e.value.code == 67
        with pytest.raises(OperationFailure) as e:
            db.t.create_index("a", expireAfterSeconds=2 ** 31)
        assert e.value.code == 67
        # the default monitor period is mongod's 60 s: no pass in a fresh server's first seconds
        assert db.command("serverStatus")["metrics"]["ttl"] == {"deletedDocuments": 0, "passes": 0}


def test_hashed_index(server):
    with _client(server) as c:
        db = c.test
        r = db.command("aggregate", 1, pipeline=[{"$documents": [{"val": "string to hash"}]},
                                                  {"$addFields": {"hashedVal": {"$toHashedIndexKey": "$val"}}}],
                       cursor={})
        # the manual's example value
        assert r["cursor"]["firstBatch"] == [{"val": "string to hash", "hashedVal": Int64(763543691661428748)}]
        assert db.h.create_index([("a", pymongo.HASHED)]) == "a_hashed"
        db.h.insert_many([{"_id": i, "a": "v%d" % i} for i in range(20)])
        assert [d["_id"] for d in db.h.find({"a": {"$in": ["v3", "v7"]}}).sort("_id", 1)] == [3, 7]
        plan = db.h.find({"a": "v3"}).explain()["queryPlanner"]["winningPlan"]
        assert plan["stage"] == "FETCH" and plan["inputStage"]["stage"] == "IXSCAN"
        assert plan["inputStage"]["indexName"] == "a_hashed"
        plan = db.h.find({"a": {"$gt": "v3"}}).explain()["queryPlanner"]["winningPlan"]
        assert plan["stage"] == "COLLSCAN"
        with pytest.raises(WriteError) as e:
            db.h.insert_one({"a": ["x"]})
        assert e.value.code == 16766
        with pytest.raises(OperationFailure) as e:
            db.h.create_index([("b", pymongo.HASHED)], unique=True)
        assert e.value.code == 16764
        db.h.create_index([("a", pymongo.HASHED), ("b", 1)])
        assert db.h.index_information()["a_hashed_b_1"]["key"] == [("a", "hashed"), ("b", 1)]
