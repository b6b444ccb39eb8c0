"""The settings surface over the wire (Django's HOST a mongodb:// URI, the
libmongoc transport, against djongo-server): SCHEMA_VALIDATION's validator
written by migrate holds pymongo's own writes to the model
(DocumentValidationFailure, 121), and DjongoManager.mongo_bulk_write runs
over libmongoc with pymongo's result type."""
import pymongo
import pytest
from pymongo.errors import WriteError

from conftest import run_django

BULK = r'''
from pymongo import DeleteOne, InsertOne, UpdateOne
from pymongo.results import BulkWriteResult
from surfaceapp.models import Product
doc = lambda i: {"id": i, "name": "p%d" % i, "kind": "toy", "stars": 3, "tags": [], "note": ""}
r = Product.objects.mongo_bulk_write([InsertOne(doc(1)), InsertOne(doc(2)), UpdateOne({"id": 2}, {"$set": {"stars": 4}}),
                                      DeleteOne({"id": 1})])
assert isinstance(r, BulkWriteResult), type(r)
assert (r.inserted_count, r.modified_count, r.deleted_count) == (2, 1, 1), r.bulk_api_result
assert list(Product.objects.values_list("id", "stars")) == [(2, 4)]
print("migrated: ok")
'''


def test_generated_validator_holds_pymongo_writes(server):
    run_django(server.uri, "surface", BULK, {"SCHEMA_VALIDATION": "strict"})
    coll = pymongo.MongoClient(server.uri)["surface"]["surfaceapp_product"]
    ok = {"id": 10, "name": "fine", "kind": "book", "stars": 5, "tags": ["a"], "note": ""}
    coll.insert_one(ok)
    for bad in ({"stars": 6}, {"kind": "car"}, {"name": "n" * 21}, {"tags": "a"}, {"stars": None}):
        with pytest.raises(WriteError) as e:
            coll.insert_one(dict(ok, id=11, **bad))
        assert e.value.code == 121, bad
        assert "errInfo" in e.value.details
    with pytest.raises(WriteError) as e:
        coll.update_one({"id": 10}, {"$unset": {"kind": ""}})  # a required field
    assert e.value.code == 121
    assert coll.count_documents({}) == 2
