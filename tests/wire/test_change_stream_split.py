"""Change streams: the read concern they run under,
$changeStreamSplitLargeEvent, which splits an event over 16 MB into
fragments a client reads (and resumes from) one by one, and the session
fields (lsid, txnNumber) of a transaction's events.
https://www.mongodb.com/docs/manual/reference/operator/aggregation/changeStreamSplitLargeEvent/
https://www.mongodb.com/docs/manual/reference/change-events/"""
import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure
from pymongo.read_concern import ReadConcern

BIG = 10 * 1024 * 1024


def connect(server):
    return MongoClient(server.uri, directConnection=True)


def test_read_concern_other_than_majority_refused(server):
    with connect(server) as c:
        c.db.create_collection("coll")
        with pytest.raises(OperationFailure) as e:
            c.db.get_collection("coll", read_concern=ReadConcern("local")).watch()
        assert e.value.code == 72 and "readConcern other than 'majority'" in str(e.value)
        with c.db.get_collection("coll", read_concern=ReadConcern("majority")).watch():
            pass
        with c.db.coll.watch():
            pass


def _big_update(c):
    coll = c.db.create_collection("big", changeStreamPreAndPostImages={"enabled": True})
    coll.insert_one({"_id": 1, "value": "q" * BIG})
    return coll


def test_split_large_event_and_resume_from_a_fragment(server):
    with connect(server) as c:
        coll = _big_update(c)
        split = [{"$changeStreamSplitLargeEvent": {}}]
        with coll.watch(split, full_document_before_change="required", max_await_time_ms=100) as cs:
            coll.update_one({"_id": 1}, {"$set": {"value": "z" * BIG}})
            first = cs.next()
            second = cs.next()
        assert first["splitEvent"] == {"fragment": 1, "of": 2}
        assert second["splitEvent"] == {"fragment": 2, "of": 2}
        # the top-level fields, in order, the first fragment holding as many as fit
        assert list(first)[:2] == ["_id", "splitEvent"]
        assert first["operationType"] == "update"
        assert first["updateDescription"]["updatedFields"]["value"] == "z" * BIG
        assert second["fullDocumentBeforeChange"]["value"] == "q" * BIG
        assert first["_id"] != second["_id"]
        # resumed after the first fragment: the second comes next
        with coll.watch(split, full_document_before_change="required", resume_after=first["_id"],
                        max_await_time_ms=100) as cs:
            again = cs.next()
        assert again["splitEvent"] == {"fragment": 2, "of": 2} and again["_id"] == second["_id"]
        # resumed after the last one: the next event
        with coll.watch(split, full_document_before_change="required", resume_after=second["_id"],
                        max_await_time_ms=100) as cs:
            coll.delete_one({"_id": 1})
            assert cs.next()["operationType"] == "delete"
        # a fragment's token needs the stage
        with pytest.raises(OperationFailure) as e:
            coll.watch(resume_after=first["_id"])
        assert e.value.code == 280


def test_large_event_without_the_stage_fails_and_the_stage_goes_last(server):
    with connect(server) as c:
        coll = _big_update(c)
        with coll.watch(full_document_before_change="required", max_await_time_ms=100) as cs:
            coll.update_one({"_id": 1}, {"$set": {"value": "z" * BIG}})
            with pytest.raises(OperationFailure) as e:
                cs.next()
        assert e.value.code == 10334  # BSONObjectTooLarge
        with pytest.raises(OperationFailure) as e:
            coll.watch([{"$changeStreamSplitLargeEvent": {}}, {"$match": {}}])
        assert e.value.code == 40601


def test_transaction_events_carry_lsid_and_txn_number(server):
    with connect(server) as c:
        coll = c.db.create_collection("tx")
        with coll.watch(max_await_time_ms=100) as cs:
            coll.insert_one({"_id": 0})  # outside a transaction: no session fields
            with c.start_session() as s:
                with s.start_transaction():
                    coll.insert_one({"_id": 1}, session=s)
                    coll.update_one({"_id": 0}, {"$set": {"a": 1}}, session=s)
                lsid, number = s.session_id, s._server_session.transaction_id
            plain, inserted, updated = cs.next(), cs.next(), cs.next()
        assert "lsid" not in plain and "txnNumber" not in plain
        for ev in (inserted, updated):
            assert ev["lsid"] == lsid and ev["txnNumber"] == number
            assert list(ev)[-2:] == ["txnNumber", "lsid"]
