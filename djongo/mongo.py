"""A pymongo-compatible Collection over a Django connection's commands.

Used by DjongoManager on the embedded engine (models/manager.py): the
methods, arguments and results of pymongo's Collection for the common
operations, each one MongoDB command through ``connection.command()``, so
they run inside Django's open transaction. Errors are the driver's PEP 249
exceptions mapped by Django (a duplicate key is an IntegrityError).
"""
import bson
from pymongo.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult


def _sort_doc(sort):
    if sort is None:
        return None
    if isinstance(sort, dict):
        return sort
    if isinstance(sort, str):
        return {sort: 1}
    return {k: d for k, d in sort}


class Collection:
    def __init__(self, connection, name):
        self._connection = connection
        self.name = name

    def __repr__(self):
        return "djongo.mongo.Collection(%r)" % self.name

    def _run(self, cmd):
        reply = self._connection.command(cmd)
        errors = reply.get("writeErrors")
        if errors:  # acknowledged writes that failed: as pymongo raises them
            from django.db import DatabaseError, IntegrityError

            e = errors[0]
            raise (IntegrityError if e.get("code") == 11000 else DatabaseError)(
                "%s (code %s)" % (e.get("errmsg"), e.get("code")))
        return reply

    # ---- reads ----

    def find(self, filter=None, projection=None, sort=None, skip=0, limit=0):
        cmd = {"find": self.name, "filter": filter or {}}
        if projection is not None:
            cmd["projection"] = projection if isinstance(projection, dict) else {k: 1 for k in projection}
        if sort is not None:
            cmd["sort"] = _sort_doc(sort)
        if skip:
            cmd["skip"] = skip
        if limit:
            cmd["limit"] = limit
        return iter(self._run(cmd)["cursor"]["firstBatch"])

    def find_one(self, filter=None, *args, **kwargs):
        if filter is not None and not isinstance(filter, dict):
            filter = {"_id": filter}
        kwargs["limit"] = 1
        return next(self.find(filter, *args, **kwargs), None)

    def aggregate(self, pipeline):
        return iter(self._run({"aggregate": self.name, "pipeline": list(pipeline), "cursor": {}})["cursor"]["firstBatch"])

    def count_documents(self, filter, skip=0, limit=0):
        pipeline = [{"$match": filter}]
        if skip:
            pipeline.append({"$skip": skip})
        if limit:
            pipeline.append({"$limit": limit})
        pipeline.append({"$group": {"_id": 1, "n": {"$sum": 1}}})
        return next((d["n"] for d in self.aggregate(pipeline)), 0)

    def distinct(self, key, filter=None):
        return self._run({"distinct": self.name, "key": key, "query": filter or {}})["values"]

    # ---- writes (acknowledged, as pymongo's default write concern) ----

    def insert_one(self, document):
        if "_id" not in document:
            document["_id"] = bson.ObjectId()  # client-side, as pymongo (and it mutates the dict too)
        self._run({"insert": self.name, "documents": [document]})
        return InsertOneResult(document["_id"], True)

    def insert_many(self, documents, ordered=True):
        documents = list(documents)
        for d in documents:
            d.setdefault("_id", bson.ObjectId())
        self._run({"insert": self.name, "documents": documents, "ordered": ordered})
        return InsertManyResult([d["_id"] for d in documents], True)

    def _update(self, filter, update, multi, upsert):
        reply = self._run({"update": self.name,
                           "updates": [{"q": filter, "u": update, "multi": multi, "upsert": upsert}]})
        raw = {"n": reply.get("n", 0), "nModified": reply.get("nModified", 0), "ok": 1.0}
        if reply.get("upserted"):
            raw["upserted"] = reply["upserted"][0]["_id"]
        return UpdateResult(raw, True)

    def update_one(self, filter, update, upsert=False):
        return self._update(filter, update, False, upsert)

    def update_many(self, filter, update, upsert=False):
        return self._update(filter, update, True, upsert)

    def replace_one(self, filter, replacement, upsert=False):
        if any(k.startswith("$") for k in replacement):
            raise ValueError("replacement can not include $ operators")
        return self._update(filter, replacement, False, upsert)

    def _delete(self, filter, limit):
        reply = self._run({"delete": self.name, "deletes": [{"q": filter, "limit": limit}]})
        return DeleteResult({"n": reply.get("n", 0), "ok": 1.0}, True)

    def delete_one(self, filter):
        return self._delete(filter, 1)

    def delete_many(self, filter):
        return self._delete(filter, 0)

    def find_one_and_update(self, filter, update, sort=None, upsert=False, return_document=False, projection=None):
        cmd = {"findAndModify": self.name, "query": filter, "update": update, "upsert": upsert,
               "new": bool(return_document)}
        if sort is not None:
            cmd["sort"] = _sort_doc(sort)
        if projection is not None:
            cmd["fields"] = projection
        return self._run(cmd).get("value")

    def find_one_and_delete(self, filter, sort=None):
        cmd = {"findAndModify": self.name, "query": filter, "remove": True}
        if sort is not None:
            cmd["sort"] = _sort_doc(sort)
        return self._run(cmd).get("value")

    # ---- indexes ----

    def create_index(self, keys, **kwargs):
        keys = {keys: 1} if isinstance(keys, str) else _sort_doc(keys)
        name = kwargs.pop("name", None) or "_".join("%s_%s" % (k, v) for k, v in keys.items())
        self._run({"createIndexes": self.name, "indexes": [{"key": keys, "name": name, **kwargs}]})
        return name

    def index_information(self):
        reply = self._run({"listIndexes": self.name, "cursor": {}})
        return {ix["name"]: {k: v for k, v in ix.items() if k != "name"} | {"key": list(ix["key"].items())}
                for ix in reply["cursor"]["firstBatch"]}


def instance_from_document(model, doc, connection, db):
    """A model instance from a whole document (raw_aggregate): each column
    through its field's converters; absent columns are deferred."""
    from djongo.models.fields import _AsExpression, _converters

    names, values = [], []
    for f in model._meta.concrete_fields:
        if f.column in doc:
            v = doc[f.column]
            for convert in _converters(f, connection):
                v = convert(v, _AsExpression(f), connection)
            names.append(f.attname)
            values.append(v)
    from django.db.models.base import DEFERRED

    field_values = [values[names.index(f.attname)] if f.attname in names else DEFERRED
                    for f in model._meta.concrete_fields]
    return model.from_db(db, [f.attname for f in model._meta.concrete_fields], field_values)
