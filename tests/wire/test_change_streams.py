"""Change streams through pymongo's watch() against djongo-server:
collection, database and cluster streams, the change events' shapes,
resuming (resumeAfter, startAfter, startAtOperationTime), fullDocument and
pre-images, invalidation, and history the capped change log no longer has.
https://www.mongodb.com/docs/manual/changeStreams/
https://www.mongodb.com/docs/manual/reference/change-events/"""
import threading

import pytest
from bson import Timestamp
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from conftest import Server


def connect(server):
    return MongoClient(server.uri, directConnection=True)


def next_event(cs):
    """The stream's next event (each getMore waits up to max_await_time_ms)."""
    for _ in range(50):
        ev = cs.try_next()
        if ev is not None:
            return ev
    raise AssertionError("no change event came")


def test_collection_events(server):
    with connect(server) as c:
        coll = c.db.things
        coll.insert_one({"_id": 0})
        with coll.watch(max_await_time_ms=100) as cs:
            c.db.elsewhere.insert_one({"_id": 9})  # another collection: not this stream's
            coll.insert_one({"_id": 1, "a": 1, "tags": ["x", "y", "z"]})
            coll.update_one({"_id": 1}, {"$set": {"a": 2, "s.t": 1}, "$unset": {"gone": 1}})
            coll.update_one({"_id": 1}, {"$unset": {"a": 1}})
            coll.update_one({"_id": 1}, [{"$set": {"tags": ["x"]}}])
            coll.replace_one({"_id": 1}, {"b": 1})
            coll.delete_one({"_id": 1})
            ins = next_event(cs)
            assert ins["operationType"] == "insert"
            assert ins["fullDocument"] == {"_id": 1, "a": 1, "tags": ["x", "y", "z"]}
            assert ins["ns"] == {"db": "db", "coll": "things"} and ins["documentKey"] == {"_id": 1}
            assert isinstance(ins["clusterTime"], Timestamp) and "wallTime" in ins
            assert set(ins["_id"]) == {"_data"} and isinstance(ins["_id"]["_data"], str)
            upd = next_event(cs)
            assert upd["operationType"] == "update" and "fullDocument" not in upd
            assert upd["updateDescription"] == {"updatedFields": {"a": 2, "s": {"t": 1}}, "removedFields": [],
                                                "truncatedArrays": []}
            assert next_event(cs)["updateDescription"]["removedFields"] == ["a"]
            trunc = next_event(cs)["updateDescription"]
            assert trunc["truncatedArrays"] == [{"field": "tags", "newSize": 1}] and trunc["updatedFields"] == {}
            rep = next_event(cs)
            assert rep["operationType"] == "replace" and rep["fullDocument"] == {"_id": 1, "b": 1}
            dele = next_event(cs)
            assert dele["operationType"] == "delete" and dele["documentKey"] == {"_id": 1}
            assert "fullDocument" not in dele
            # cluster times only grow
            times = [ins["clusterTime"], upd["clusterTime"], rep["clusterTime"], dele["clusterTime"]]
            assert times == sorted(times) and len(set(times)) == 4


def test_get_more_waits_for_new_events(server):
    with connect(server) as c:
        coll = c.db.waits
        with coll.watch(max_await_time_ms=5000) as cs:
            writer = threading.Timer(0.3, lambda: coll.insert_one({"_id": "late"}))
            writer.start()
            ev = cs.next()  # one getMore, answered when the write lands
            writer.join()
            assert ev["documentKey"] == {"_id": "late"}


def test_resume_after_start_at_operation_time_and_post_batch_token(server):
    with connect(server) as c:
        coll = c.db.res
        op_time = c.db.command("ping")["operationTime"]
        with coll.watch(max_await_time_ms=50) as cs:
            coll.insert_many([{"_id": i} for i in range(3)])
            first = next_event(cs)
            token = cs.resume_token
            assert token == first["_id"]
            assert cs.try_next()["documentKey"] == {"_id": 1}
            assert cs.try_next()["documentKey"] == {"_id": 2}
            assert cs.try_next() is None
            # an empty batch still moves the resume token on (postBatchResumeToken)
            assert cs.resume_token is not None and cs.resume_token != token
        with coll.watch(resume_after=token, max_await_time_ms=50) as cs:
            assert [next_event(cs)["documentKey"]["_id"] for _ in range(2)] == [1, 2]
        with coll.watch(start_at_operation_time=op_time, max_await_time_ms=50) as cs:
            assert [next_event(cs)["documentKey"]["_id"] for _ in range(3)] == [0, 1, 2]
        # a write's operationTime is its own change's time: starting there includes it
        at = c.db.command({"insert": "res", "documents": [{"_id": 3}]})["operationTime"]
        with coll.watch(start_at_operation_time=at, max_await_time_ms=50) as cs:
            assert next_event(cs)["clusterTime"] == at


def test_full_document_update_lookup(server):
    with connect(server) as c:
        coll = c.db.look
        coll.insert_one({"_id": 1, "n": 1})
        with coll.watch(full_document="updateLookup", max_await_time_ms=50) as cs:
            coll.update_one({"_id": 1}, {"$inc": {"n": 1}})
            coll.update_one({"_id": 1}, {"$inc": {"n": 1}})
            coll.delete_one({"_id": 1})
            # looked up when read: the document as it is then (deleted: null)
            assert next_event(cs)["fullDocument"] is None
            assert next_event(cs)["fullDocument"] is None
        coll.insert_one({"_id": 2, "n": 1})
        with coll.watch(full_document="updateLookup", max_await_time_ms=50) as cs:
            coll.update_one({"_id": 2}, {"$set": {"n": 5}})
            ev = next_event(cs)
            assert ev["fullDocument"] == {"_id": 2, "n": 5}
            assert ev["updateDescription"]["updatedFields"] == {"n": 5}


def test_pre_and_post_images(server):
    with connect(server) as c:
        c.db.create_collection("img", changeStreamPreAndPostImages={"enabled": True})
        coll = c.db.img
        coll.insert_one({"_id": 1, "v": 1})
        with coll.watch(full_document="whenAvailable", full_document_before_change="required",
                        max_await_time_ms=50) as cs:
            coll.update_one({"_id": 1}, {"$set": {"v": 2}})
            coll.delete_one({"_id": 1})
            ev = next_event(cs)
            assert ev["fullDocumentBeforeChange"] == {"_id": 1, "v": 1}
            assert ev["fullDocument"] == {"_id": 1, "v": 2}
            assert next_event(cs)["fullDocumentBeforeChange"] == {"_id": 1, "v": 2}
        # without them, "required" is an error and "whenAvailable" a null
        c.db.command({"collMod": "img", "changeStreamPreAndPostImages": {"enabled": False}})
        coll.insert_one({"_id": 2})
        with coll.watch(full_document_before_change="whenAvailable", max_await_time_ms=50) as cs:
            coll.delete_one({"_id": 2})
            assert next_event(cs)["fullDocumentBeforeChange"] is None
        coll.insert_one({"_id": 3})
        with coll.watch(full_document_before_change="required", max_await_time_ms=50) as cs:
            coll.delete_one({"_id": 3})
            with pytest.raises(OperationFailure) as e:
                next_event(cs)
            assert e.value.code == 47


def test_drop_invalidates_and_start_after(server):
    with connect(server) as c:
        coll = c.db.gone
        coll.insert_one({"_id": 1})
        with coll.watch(max_await_time_ms=50) as cs:
            coll.drop()
            drop = next_event(cs)
            assert drop["operationType"] == "drop" and drop["ns"] == {"db": "db", "coll": "gone"}
            inv = next_event(cs)
            assert inv["operationType"] == "invalidate"
            assert not cs.alive
        # resumeAfter an invalidate is refused; startAfter it starts a new stream
        with pytest.raises(OperationFailure) as e:
            coll.watch(resume_after=inv["_id"])
        assert e.value.code == 260
        with coll.watch(start_after=inv["_id"], max_await_time_ms=50) as cs:
            coll.insert_one({"_id": "again"})
            assert next_event(cs)["documentKey"] == {"_id": "again"}
        # resuming after the drop's own event ends at once with the invalidate
        with coll.watch(resume_after=drop["_id"], max_await_time_ms=50) as cs:
            assert next_event(cs)["operationType"] == "invalidate"


def test_database_and_cluster_streams(server):
    with connect(server) as c:
        with c.one.watch(max_await_time_ms=50) as dbs, c.watch(max_await_time_ms=50) as all_:
            c.one.a.insert_one({"_id": 1})
            c.two.b.insert_one({"_id": 2})
            c.admin.command({"renameCollection": "one.a", "to": "one.z"})
            c.drop_database("one")
            kinds = [(e["operationType"], e.get("ns", {}).get("coll")) for e in (next_event(dbs) for _ in range(5))]
            assert kinds == [("insert", "a"), ("rename", "a"), ("drop", "z"), ("dropDatabase", None),
                             ("invalidate", None)]
            seen = [(e["ns"]["db"], e["operationType"]) for e in (next_event(all_) for _ in range(5))]
            assert seen == [("one", "insert"), ("two", "insert"), ("one", "rename"), ("one", "drop"),
                            ("one", "dropDatabase")]
            assert all_.alive  # a cluster's stream outlives any database


def test_aborted_transaction_logs_nothing(server):
    with connect(server) as c:
        coll = c.db.tx
        coll.insert_one({"_id": 0})
        with coll.watch(max_await_time_ms=50) as cs:
            with c.start_session() as s:
                s.start_transaction()
                coll.insert_one({"_id": "aborted"}, session=s)
                s.abort_transaction()
            with c.start_session() as s:
                with s.start_transaction():
                    coll.insert_one({"_id": "committed"}, session=s)
            assert next_event(cs)["documentKey"] == {"_id": "committed"}
            assert cs.try_next() is None


def insert_token(coll, _id):
    """Inserts {_id} into coll and returns its event's resume token."""
    with coll.watch(max_await_time_ms=50) as cs:
        coll.insert_one({"_id": _id})
        return next_event(cs)["_id"]


def test_history_lost(tmp_path):
    s = Server(tmp_path / "data", "--oplogSize", "1")
    try:
        with connect(s) as c:
            coll = c.db.big
            token = insert_token(coll, "first")
            # 2 MiB of changes through a 1 MiB log: the first ones are gone
            coll.insert_many([{"_id": i, "pad": "x" * 4096} for i in range(512)])
            with pytest.raises(OperationFailure) as e:
                with coll.watch(resume_after=token, max_await_time_ms=50) as cs:
                    cs.try_next()
            assert e.value.code == 286
            # a stream from now on is fine
            with coll.watch(max_await_time_ms=50) as cs:
                coll.insert_one({"_id": "after"})
                assert next_event(cs)["documentKey"] == {"_id": "after"}
    finally:
        assert s.stop() == 0


def index_insert_watch(coll, docs):
    """Indexes coll on k, inserts docs, and returns the resume token of an
    insert after them (a point to resume from, before what comes next)."""
    coll.create_index("k")
    coll.insert_many(docs)
    with coll.watch(max_await_time_ms=50) as cs:
        coll.insert_one({"_id": "before", "k": -1})
        return next_event(cs)["_id"]


def events_after(coll, token, n, op):
    """The n events after token, checked: op on coll's documents, from
    _id n - 1 down to 0 (the index on k's order), then an insert after them."""
    coll.insert_one({"_id": "after"})
    with coll.watch(resume_after=token, max_await_time_ms=50) as cs:
        events = [next_event(cs) for _ in range(n)]
        assert next_event(cs)["documentKey"] == {"_id": "after"}
    assert [e["documentKey"]["_id"] for e in events] == list(range(n - 1, -1, -1))
    assert all(e["operationType"] == op and e["ns"] == {"db": "db", "coll": coll.name} for e in events)
    return events


def test_delete_many_events_in_a_small_log(tmp_path):
    """A delete of many documents: an event each, at a time of its own, in
    the order the delete met them (here the index on k's: _ids downwards),
    resumable at any of them -- and logged as their _ids together
    (storage/changes.c's batches), so that 20,000 deletes fit a 1 MiB log
    that an entry per document (about 100 bytes each) would overflow."""
    n = 20000
    s = Server(tmp_path / "data", "--oplogSize", "1")
    try:
        with connect(s) as c:
            coll = c.db.many
            token = index_insert_watch(coll, [{"_id": i, "k": n - 1 - i} for i in range(n)])
            assert coll.delete_many({"k": {"$gte": 0}}).deleted_count == n
            events = events_after(coll, token, n, "delete")
            times = [e["clusterTime"] for e in events]
            assert all(a < b for a, b in zip(times, times[1:]))
            # resumed inside the delete: after an event's token, at an event's time
            with coll.watch(resume_after=events[4999]["_id"], max_await_time_ms=50) as cs:
                assert next_event(cs)["documentKey"] == {"_id": n - 1 - 5000}
            with coll.watch(start_at_operation_time=times[7000], max_await_time_ms=50) as cs:
                ev = next_event(cs)
                assert ev["documentKey"] == {"_id": n - 1 - 7000} and ev["_id"] == events[7000]["_id"]
            # a collection keeping pre-images: each event carries its document, in the same order
            c.db.create_collection("imgs", changeStreamPreAndPostImages={"enabled": True})
            c.db.imgs.create_index("k")
            c.db.imgs.insert_many([{"_id": i, "k": 9 - i} for i in range(10)])
            with c.db.imgs.watch(full_document_before_change="required", max_await_time_ms=50) as cs:
                assert c.db.imgs.delete_many({"k": {"$lt": 5}}).deleted_count == 5
                pre = [next_event(cs)["fullDocumentBeforeChange"] for _ in range(5)]
            assert pre == [{"_id": 9 - k, "k": k} for k in range(5)]
    finally:
        assert s.stop() == 0


def test_update_many_events_in_a_small_log(tmp_path):
    """A multi-document update: an event each, with its own update
    description, at a time of its own, in the order the update met them
    (the index on k's), resumable at any of them -- and logged as their _ids
    and descriptions together (storage/changes.c's batches), so that 8,000
    updates fit a 1 MiB log that an entry per document overflowed."""
    n = 8000
    s = Server(tmp_path / "data", "--oplogSize", "1")
    try:
        with connect(s) as c:
            coll = c.db.many
            token = index_insert_watch(coll, [{"_id": i, "k": n - 1 - i, "v": 0} for i in range(n)])
            r = coll.update_many({"k": {"$gte": 0}}, {"$inc": {"v": 1}, "$set": {"w": "x"}})
            assert (r.matched_count, r.modified_count) == (n, n)
            events = events_after(coll, token, n, "update")
            assert all(e["updateDescription"]["updatedFields"] == {"v": 1, "w": "x"} for e in events)
            assert all(e["updateDescription"]["removedFields"] == [] for e in events)
            times = [e["clusterTime"] for e in events]
            assert all(a < b for a, b in zip(times, times[1:]))
            with coll.watch(resume_after=events[4999]["_id"], max_await_time_ms=50) as cs:
                assert next_event(cs)["documentKey"] == {"_id": n - 1 - 5000}
            # fullDocument: "updateLookup" reads each document as it is now
            with coll.watch(resume_after=events[100]["_id"], full_document="updateLookup", max_await_time_ms=50) as cs:
                assert next_event(cs)["fullDocument"] == {"_id": n - 1 - 101, "k": 101, "v": 1, "w": "x"}
            # a collection keeping images: each event carries both documents
            c.db.create_collection("imgs", changeStreamPreAndPostImages={"enabled": True})
            c.db.imgs.create_index("k")
            c.db.imgs.insert_many([{"_id": i, "k": 9 - i} for i in range(10)])
            with c.db.imgs.watch(full_document="required", full_document_before_change="required",
                                 max_await_time_ms=50) as cs:
                assert c.db.imgs.update_many({"k": {"$lt": 5}}, {"$set": {"z": 1}}).modified_count == 5
                evs = [next_event(cs) for _ in range(5)]
            assert [e["fullDocumentBeforeChange"] for e in evs] == [{"_id": 9 - k, "k": k} for k in range(5)]
            assert [e["fullDocument"] for e in evs] == [{"_id": 9 - k, "k": k, "z": 1} for k in range(5)]
    finally:
        assert s.stop() == 0


def test_insert_many_events_in_a_small_log(tmp_path):
    """An insert of many documents: an event each, with its document, at a
    time of its own, in the order of the insert, resumable at any of them
    -- and logged as their documents together (storage/changes.c's
    batches), so that 20,000 small documents fit a 1 MiB log that an entry
    per document (its header, key and time: about 130 bytes) overflowed."""
    n = 20000
    s = Server(tmp_path / "data", "--oplogSize", "1")
    try:
        with connect(s) as c:
            coll = c.db.many
            token = insert_token(coll, "before")
            coll.insert_many([{"_id": i, "k": n - i} for i in range(n)])
            coll.insert_one({"_id": "after"})
            with coll.watch(resume_after=token, max_await_time_ms=50) as cs:
                events = [next_event(cs) for _ in range(n)]
                assert next_event(cs)["documentKey"] == {"_id": "after"}
            assert [e["documentKey"] for e in events] == [{"_id": i} for i in range(n)]
            assert [e["fullDocument"] for e in events] == [{"_id": i, "k": n - i} for i in range(n)]
            assert all(e["operationType"] == "insert" and e["ns"] == {"db": "db", "coll": "many"} for e in events)
            times = [e["clusterTime"] for e in events]
            assert all(a < b for a, b in zip(times, times[1:]))
            # resumed inside the insert: after an event's token, at an event's time
            with coll.watch(resume_after=events[4999]["_id"], max_await_time_ms=50) as cs:
                assert next_event(cs)["documentKey"] == {"_id": 5000}
            with coll.watch(start_at_operation_time=times[7000], max_await_time_ms=50) as cs:
                ev = next_event(cs)
                assert ev["documentKey"] == {"_id": 7000} and ev["_id"] == events[7000]["_id"]
            # a transaction's inserts into two collections, interleaved: the
            # events in the order of the inserts, each with its own namespace
            with c.db.watch(max_await_time_ms=50) as cs:
                with c.start_session() as ses:
                    with ses.start_transaction():
                        c.db.x.insert_many([{"_id": 1}, {"_id": 2}], session=ses)
                        c.db.y.insert_one({"_id": 3}, session=ses)
                        c.db.x.insert_one({"_id": 4}, session=ses)
                got = [(e["ns"]["coll"], e["documentKey"]["_id"], "lsid" in e) for e in
                       (next_event(cs) for _ in range(4))]
            assert got == [("x", 1, True), ("x", 2, True), ("y", 3, True), ("x", 4, True)]
    finally:
        assert s.stop() == 0


def test_no_change_stream_in_a_transaction(server):
    # https://www.mongodb.com/docs/manual/core/transactions-operations/#restrictions
    with connect(server) as c:
        c.db.t.insert_one({"_id": 0})
        with c.start_session() as s:
            s.start_transaction()
            c.db.t.find_one(session=s)
            with pytest.raises(OperationFailure) as e:
                c.db.t.watch(session=s)
            assert e.value.code == 263
            s.abort_transaction()
