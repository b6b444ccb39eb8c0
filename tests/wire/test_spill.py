"""allowDiskUse over the wire: $sort and $group past a tiny memory limit
(setParameter) spill to temporary files in the data directory's _tmp and
answer as the in-memory stages do; no file is left afterwards, and the
files a dead process left are removed when the directory is opened.

https://www.mongodb.com/docs/manual/reference/operator/aggregation/sort/#-sort-and-memory-restrictions
https://www.mongodb.com/docs/manual/reference/operator/aggregation/group/#-group-and-memory-restrictions
https://www.mongodb.com/docs/manual/reference/parameters/#mongodb-parameter-param.allowDiskUseByDefault
"""
import os
import subprocess

import pymongo
import pytest
from pymongo.errors import OperationFailure

N = 2000


def docs():
    return [{"_id": i, "k": (i * 7919) % 101, "g": i % 13, "s": "x" * 50} for i in range(N)]


def expected_sort():
    return [{"_id": d["_id"], "k": d["k"]} for d in sorted(docs(), key=lambda d: (-d["k"], d["_id"]))]


def expected_groups():
    out = {}
    for d in docs():
        g = out.setdefault(d["g"], {"_id": d["g"], "first": d["_id"], "ids": [], "n": 0})
        g["ids"].append(d["_id"])
        g["n"] += 1
    return [out[k] for k in sorted(out)]


def tmp_files(data):
    tmp = os.path.join(str(data), "_tmp")
    return os.listdir(tmp) if os.path.isdir(tmp) else []


def test_sort_and_group_spill_with_a_tiny_limit(server, tmp_path):
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        db = c.test
        db.sp.insert_many(docs())
        sort = [{"$sort": {"k": -1, "_id": 1}}, {"$project": {"k": 1}}]
        group = [{"$group": {"_id": "$g", "first": {"$first": "$_id"}, "ids": {"$push": "$_id"}, "n": {"$sum": 1}}},
                 {"$sort": {"_id": 1}}]
        assert list(db.sp.aggregate(sort)) == expected_sort()  # in memory
        c.admin.command("setParameter", 1, internalQueryMaxBlockingSortMemoryUsageBytes=1000)
        c.admin.command("setParameter", 1, internalDocumentSourceGroupMaxMemoryBytes=1000)
        with pytest.raises(OperationFailure) as e:
            list(db.sp.aggregate(sort, allowDiskUse=False))
        assert e.value.code == 292
        with pytest.raises(OperationFailure) as e:
            list(db.sp.aggregate(group, allowDiskUse=False))
        assert e.value.code == 292
        # a few documents a run: a merge of hundreds of runs, in groups of 64 first
        assert list(db.sp.aggregate(sort, allowDiskUse=True, batchSize=100)) == expected_sort()
        assert list(db.sp.aggregate(group, allowDiskUse=True)) == expected_groups()
        # allowDiskUseByDefault (true): the same without allowDiskUse
        assert list(db.sp.aggregate(sort)) == expected_sort()
        assert list(db.sp.aggregate(group)) == expected_groups()
        # a find's blocking sort likewise: 292 with allowDiskUse false, else spilled
        with pytest.raises(OperationFailure) as e:
            list(db.sp.find({}, {"k": 1}, sort=[("k", -1), ("_id", 1)], allow_disk_use=False))
        assert e.value.code == 292
        assert list(db.sp.find({}, {"k": 1}, sort=[("k", -1), ("_id", 1)])) == expected_sort()
        # explain (executionStats): usedDisk on the stages that spilled
        plan = db.command("explain", {"aggregate": "sp", "pipeline": group, "cursor": {}}, verbosity="executionStats")
        assert [(s.get("usedDisk"), s["spills"] > 0) for s in plan["stages"][1:]] == [(True, True), (True, True)]  # (13 groups of ~150 ids: over 1,000 bytes too)
        assert tmp_files(tmp_path / "data") == []  # (conftest's server: its data directory)


def open_spill_files(pid):
    """The server's descriptors on spill files (unlinked: "... (deleted)")."""
    fds = "/proc/%d/fd" % pid
    return [t for t in (os.readlink(os.path.join(fds, f)) for f in os.listdir(fds)) if "/_tmp/spill-" in t]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_spilled_sort_streams_into_the_cursor(server):
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        db = c.test
        db.sp.insert_many(docs())
        c.admin.command("setParameter", 1, internalQueryMaxBlockingSortMemoryUsageBytes=1000)
        want = sorted(docs(), key=lambda d: (-d["k"], d["_id"]))
        # the last stage spilled: the merge stays open behind the cursor, read by getMore
        cur = db.sp.aggregate([{"$sort": {"k": -1, "_id": 1}}], batchSize=50)
        first = [next(cur) for _ in range(50)]
        assert open_spill_files(server.proc.pid)  # its runs, held by the cursor
        assert first + list(cur) == want
        assert open_spill_files(server.proc.pid) == []  # read to its end: closed
        # a cursor given up early (killCursors): its files go with it
        cur = db.sp.aggregate([{"$match": {"k": {"$lt": 50}}}, {"$sort": {"k": 1}}], batchSize=10)
        assert next(cur)["k"] == 0
        assert open_spill_files(server.proc.pid)
        cur.close()
        assert open_spill_files(server.proc.pid) == []


def test_leftover_spill_files_removed_at_open(tmp_path):
    from conftest import Server
    dead = subprocess.Popen(["true"])
    dead.wait()
    data = tmp_path / "data"
    (data / "_tmp").mkdir(parents=True)
    left = data / "_tmp" / ("spill-%d-AbC123" % dead.pid)
    left.write_bytes(b"\x05\x00\x00\x00\x00")
    mine = data / "_tmp" / ("spill-%d-AbC123" % os.getpid())  # a live process's: kept
    mine.write_bytes(b"")
    s = Server(data)
    try:
        with pymongo.MongoClient(s.uri, serverSelectionTimeoutMS=5000) as c:
            c.test.command("ping")
        assert not left.exists()
        assert mine.exists()
    finally:
        s.stop()
