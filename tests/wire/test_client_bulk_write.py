"""MongoClient.bulk_write (pymongo 4.9+) against djongo-server: the driver
sends MongoDB 8.0's bulkWrite command to the admin database once hello
reports maxWireVersion 25; the engine runs its ops over many namespaces
and answers per op through a cursor.
https://www.mongodb.com/docs/manual/reference/command/bulkWrite/"""
import pytest
from pymongo import DeleteMany, InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.errors import ClientBulkWriteException


def connect(server):
    return MongoClient(server.uri, directConnection=True)


def test_hello_reports_8_0(server):
    with connect(server) as c:
        assert c.admin.command("hello")["maxWireVersion"] >= 25
        assert c.server_info()["versionArray"][:2] == [8, 0]


def test_bulk_write_across_namespaces(server):
    with connect(server) as c:
        res = c.bulk_write([
            InsertOne(namespace="db1.a", document={"_id": 1, "x": 1}),
            InsertOne(namespace="db2.b", document={"_id": 1, "y": 1}),
            UpdateOne(namespace="db1.a", filter={"_id": 1}, update={"$inc": {"x": 1}}),
            UpdateOne(namespace="db2.b", filter={"_id": 2}, update={"$set": {"y": 2}}, upsert=True),
            ReplaceOne(namespace="db1.a", filter={"_id": 1}, replacement={"z": 3}),
            DeleteMany(namespace="db2.b", filter={"_id": 1}),
        ], verbose_results=True)
        assert (res.inserted_count, res.matched_count, res.modified_count, res.upserted_count,
                res.deleted_count) == (2, 2, 2, 1, 1)
        assert res.update_results[3].upserted_id == 2
        assert res.delete_results[5].deleted_count == 1
        assert list(c.db1.a.find()) == [{"_id": 1, "z": 3}]
        assert list(c.db2.b.find()) == [{"_id": 2, "y": 2}]


def test_bulk_write_errors_ordered_and_unordered(server):
    with connect(server) as c:
        c.db.c.insert_one({"_id": 1})
        ops = [InsertOne(namespace="db.c", document={"_id": 1}), InsertOne(namespace="db.c", document={"_id": 2})]
        with pytest.raises(ClientBulkWriteException) as ei:
            c.bulk_write(ops)
        errs = ei.value.write_errors
        assert [(e["idx"], e["code"]) for e in errs] == [(0, 11000)]
        assert errs[0]["keyValue"] == {"_id": 1}
        assert ei.value.partial_result.inserted_count == 0
        with pytest.raises(ClientBulkWriteException) as ei:
            c.bulk_write(ops, ordered=False)
        assert ei.value.partial_result.inserted_count == 1
        assert sorted(d["_id"] for d in c.db.c.find()) == [1, 2]


def test_bulk_write_in_a_transaction(server):
    with connect(server) as c:
        c.db.t.insert_one({"_id": 0})
        with c.start_session() as s:
            with s.start_transaction():
                c.bulk_write([InsertOne(namespace="db.t", document={"_id": 1}),
                              DeleteMany(namespace="db.t", filter={"_id": 0})], session=s)
                assert c.db.t.count_documents({}) == 1  # outside the transaction: nothing yet
                s.abort_transaction()
        assert list(c.db.t.find()) == [{"_id": 0}]
