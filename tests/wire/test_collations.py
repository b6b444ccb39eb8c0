"""A collection's and an index's default collation, as mongod keeps them:
create {collation} makes the collection's commands that name none compare
strings by it, and its indexes made without one take it; an index's
collation keys its strings (a unique index with strength 2 refuses "X"
beside "x"). https://www.mongodb.com/docs/manual/reference/collation/"""
import pytest
from pymongo import IndexModel, MongoClient
from pymongo.collation import Collation
from pymongo.errors import DuplicateKeyError, OperationFailure

CI = {"locale": "en", "strength": 2}  # case-insensitive


def test_collection_default_collation(server):
    with MongoClient(server.uri, directConnection=True) as c:
        db = c.db
        db.create_collection("ci", collation=CI)
        info = db.command("listCollections", filter={"name": "ci"})["cursor"]["firstBatch"][0]
        coll = info["options"]["collation"]
        assert (coll["locale"], coll["strength"], coll["caseLevel"], coll["caseFirst"], coll["alternate"]) == \
            ("en", 2, False, "off", "non-ignorable")
        assert info["idIndex"]["collation"] == coll  # the _id index takes it
        ci = db.ci
        ci.insert_many([{"_id": 1, "s": "a"}, {"_id": 2, "s": "A"}, {"_id": 3, "s": "b"}])
        assert ci.count_documents({"s": "a"}) == 2
        assert ci.count_documents({"s": "a"}, collation={"locale": "simple"}) == 1  # its own wins
        assert [d["_id"] for d in ci.find({"s": "A"})] == [1, 2]
        assert ci.distinct("s") in (["a", "b"], ["A", "b"])
        assert ci.update_many({"s": "A"}, {"$set": {"u": 1}}).modified_count == 2
        assert ci.find_one_and_update({"s": "B"}, {"$set": {"u": 2}})["_id"] == 3
        assert len(list(ci.aggregate([{"$match": {"s": "A"}}]))) == 2
        assert ci.delete_many({"s": "a"}).deleted_count == 2
        # an index made on it without a collation takes the collection's
        ci.create_index("s")
        assert db.ci.index_information()["s_1"]["collation"]["strength"] == 2
        # a collection without one compares binary, as before
        db.plain.insert_many([{"s": "a"}, {"s": "A"}])
        assert db.plain.count_documents({"s": "a"}) == 1
        with pytest.raises(OperationFailure) as e:
            db.create_collection("bad", collation={"locale": "en", "strength": 9})
        assert e.value.code == 2


def test_index_collation_keys_and_identity(server):
    with MongoClient(server.uri, directConnection=True) as c:
        coll = c.db.u
        coll.create_index("s", unique=True, collation=CI)
        coll.insert_one({"s": "x"})
        with pytest.raises(DuplicateKeyError):
            coll.insert_one({"s": "X"})
        coll.insert_one({"s": "y"})
        # same key, other collations: other indexes
        coll.create_indexes([IndexModel("s", name="ja", collation=Collation("ja")), IndexModel("s", name="simple")])
        info = coll.index_information()
        assert info["s_1"]["collation"]["locale"] == "en" and info["ja"]["collation"]["locale"] == "ja"
        assert "collation" not in info["simple"]
        with pytest.raises(OperationFailure) as e:  # the same name, another collation
            coll.create_index("s", name="ja", collation=Collation("fr"))
        assert e.value.code == 85
        coll.drop_index("s_1")
        assert sorted(coll.index_information()) == ["_id_", "ja", "simple"]
        # queries find the same documents whatever index is there
        assert [d["s"] for d in coll.find({"s": "x"})] == ["x"]
        assert [d["s"] for d in coll.find({"s": {"$gte": "x"}}).sort("s", 1)] == ["x", "y"]
