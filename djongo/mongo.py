"""A pymongo-compatible Collection over a Django connection's commands.

Used by DjongoManager on the embedded engine (models/manager.py): the
methods, arguments and results of pymongo's Collection for the common
operations, each one MongoDB command through ``connection.command()``, so
they run inside Django's open transaction. Errors are the driver's PEP 249
exceptions mapped by Django (a duplicate key is an IntegrityError).
"""
import bson

# pymongo's result and error classes are imported where they are made, not
# here: importing any of pymongo runs its package's __init__, which loads the
# whole client (a hundred-odd modules, some 8,000 objects). This module is
# imported with the backend (models/manager.py), so every Django process on
# djongo carried them, and each full collection of the garbage collector
# walked them again: about a tenth of a process's objects.

# MongoDB's maxWriteBatchSize: the most statements one insert/update/delete
# command takes (hello's maxWriteBatchSize; drivers split larger batches).
# https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-Write-Command-Batch-Limit-Size
MAX_WRITE_BATCH_SIZE = 100000


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

    def _run(self, cmd, drain=True):
        reply = self._connection.command(cmd, drain=drain)
        errors = reply.get("writeErrors")
        if errors:  # acknowledged writes that failed: as pymongo raises them
            from django.db import DatabaseError, IntegrityError

            e = errors[0]
            raise (IntegrityError if e.get("code") in (11000, 11001, 121) else DatabaseError)(  # as the driver maps them
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
        from pymongo.results import InsertOneResult

        return InsertOneResult(document["_id"], True)

    def insert_many(self, documents, ordered=True):
        documents = list(documents)
        for d in documents:
            d.setdefault("_id", bson.ObjectId())
        self._run({"insert": self.name, "documents": documents, "ordered": ordered})
        from pymongo.results import InsertManyResult

        return InsertManyResult([d["_id"] for d in documents], True)

    def _update(self, filter, update, multi, upsert):
        reply = self._run({"update": self.name,
                           "updates": [{"q": filter, "u": update, "multi": multi, "upsert": upsert}]})
        raw = {"n": reply.get("n", 0), "nModified": reply.get("nModified", 0), "ok": 1.0}
        if reply.get("upserted"):
            raw["upserted"] = reply["upserted"][0]["_id"]
        from pymongo.results import UpdateResult

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
        from pymongo.results import DeleteResult

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

    # ---- bulk writes ----

    def bulk_write(self, requests, ordered=True, bypass_document_validation=False, comment=None, let=None):
        """pymongo's Collection.bulk_write(): InsertOne, UpdateOne,
        UpdateMany, ReplaceOne, DeleteOne, DeleteMany (pymongo's classes),
        sent as pymongo sends them -- each run of requests of one kind
        (ordered) or each kind (unordered) as one insert/update/delete
        command of up to MAX_WRITE_BATCH_SIZE statements. Returns pymongo's
        BulkWriteResult; write errors raise pymongo's BulkWriteError, whose
        details are the result so far with each error's index in
        `requests` -- after the first one when ordered, after all of them
        when not. https://www.mongodb.com/docs/manual/core/bulk-write-operations/"""
        batches = _BulkBatches()
        for i, request in enumerate(requests):
            add = getattr(request, "_add_to_bulk", None)
            if add is None:
                raise TypeError("%r is not a valid request" % (request,))
            batches.index = i
            add(batches)
        if not batches.ops:
            raise ValueError("No operations to execute")  # (pymongo's InvalidOperation says the same)
        from pymongo.errors import BulkWriteError
        from pymongo.results import BulkWriteResult

        result = {"writeErrors": [], "writeConcernErrors": [], "nInserted": 0, "nUpserted": 0, "nMatched": 0,
                  "nModified": 0, "nRemoved": 0, "upserted": []}
        for kind, ops in batches.runs(ordered):
            for start in range(0, len(ops), MAX_WRITE_BATCH_SIZE):
                chunk = ops[start:start + MAX_WRITE_BATCH_SIZE]
                cmd = {kind: self.name, _BULK_FIELD[kind]: [stmt for _, stmt in chunk], "ordered": ordered}
                if bypass_document_validation and kind != "delete":
                    cmd["bypassDocumentValidation"] = True
                if comment is not None:
                    cmd["comment"] = comment
                if let is not None and kind != "insert":
                    cmd["let"] = let
                reply = self._connection.command(cmd)
                _merge_bulk_reply(result, kind, chunk, reply)
                if ordered and result["writeErrors"]:
                    raise BulkWriteError(result)
        if result["writeErrors"] or result["writeConcernErrors"]:
            result["writeErrors"].sort(key=lambda e: e["index"])
            raise BulkWriteError(result)
        return BulkWriteResult(result, True)

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


    # ---- change streams ----

    def watch(self, pipeline=None, full_document=None, resume_after=None, max_await_time_ms=None, batch_size=None,
              start_at_operation_time=None, start_after=None, full_document_before_change=None,
              show_expanded_events=None):
        """A change stream on the collection: pymongo's Collection.watch(),
        its arguments and its ChangeStream's ways (iteration, next(),
        try_next(), resume_token, close(), a context manager).
        https://www.mongodb.com/docs/manual/changeStreams/"""
        spec = {}
        for key, value in (("fullDocument", full_document), ("resumeAfter", resume_after),
                           ("startAtOperationTime", start_at_operation_time), ("startAfter", start_after),
                           ("fullDocumentBeforeChange", full_document_before_change),
                           ("showExpandedEvents", show_expanded_events)):
            if value is not None:
                spec[key] = value
        return ChangeStream(self, [{"$changeStream": spec}] + list(pipeline or []), max_await_time_ms, batch_size)


_BULK_FIELD = {"insert": "documents", "update": "updates", "delete": "deletes"}


class _BulkBatches:
    """What pymongo's request objects add themselves to (their
    _add_to_bulk(bulk) calls add_insert / add_update / add_replace /
    add_delete): each statement as MongoDB's write commands take it, with
    its request's index."""

    def __init__(self):
        self.ops = []  # (kind, index, statement)
        self.index = 0

    def add_insert(self, document):
        if not isinstance(document, dict):
            raise TypeError("document must be a dict")
        if "_id" not in document:
            document["_id"] = bson.ObjectId()  # client-side, as pymongo (the caller's dict gets it too)
        self.ops.append(("insert", self.index, document))

    def _update(self, selector, update, multi, upsert, collation=None, array_filters=None, hint=None, sort=None):
        stmt = {"q": selector, "u": update, "multi": multi}
        if upsert is not None:
            stmt["upsert"] = bool(upsert)
        for key, value in (("collation", collation), ("arrayFilters", array_filters), ("hint", hint),
                           ("sort", sort)):
            if value is not None:
                stmt[key] = _sort_doc(value) if key in ("hint", "sort") and not isinstance(value, str) else value
        self.ops.append(("update", self.index, stmt))

    def add_update(self, selector, update, multi, upsert, **kwargs):
        first = next(iter(update), "") if isinstance(update, dict) else None
        if first is not None and not str(first).startswith("$"):
            raise ValueError("update only works with $ operators")
        self._update(selector, update, multi, upsert, **kwargs)

    def add_replace(self, selector, replacement, upsert, **kwargs):
        if any(str(k).startswith("$") for k in replacement):
            raise ValueError("replacement can not include $ operators")
        self._update(selector, replacement, False, upsert, **kwargs)

    def add_delete(self, selector, limit, collation=None, hint=None):
        stmt = {"q": selector, "limit": limit}
        if collation is not None:
            stmt["collation"] = collation
        if hint is not None:
            stmt["hint"] = hint if isinstance(hint, str) else _sort_doc(hint)
        self.ops.append(("delete", self.index, stmt))

    def runs(self, ordered):
        """(kind, [(index, statement)...]) in the order they are sent:
        ordered, each run of one kind in turn; unordered, one per kind
        (inserts, updates, deletes), as pymongo groups them."""
        if not ordered:
            for kind in ("insert", "update", "delete"):
                ops = [(i, stmt) for k, i, stmt in self.ops if k == kind]
                if ops:
                    yield kind, ops
            return
        run, kind = [], None
        for k, i, stmt in self.ops:
            if k != kind and run:
                yield kind, run
                run = []
            kind = k
            run.append((i, stmt))
        if run:
            yield kind, run


def _merge_bulk_reply(result, kind, chunk, reply):
    """Adds one write command's reply to a BulkWriteResult's raw document:
    counts, upserted ids and write errors, their indexes mapped from the
    command's statements back to the requests."""
    n = reply.get("n", 0)
    errors = reply.get("writeErrors") or []
    if kind == "insert":
        result["nInserted"] += n
    elif kind == "delete":
        result["nRemoved"] += n
    else:
        upserted = reply.get("upserted") or []
        result["nUpserted"] += len(upserted)
        result["nMatched"] += n - len(upserted)
        result["nModified"] += reply.get("nModified", 0)
        result["upserted"].extend({"index": chunk[u["index"]][0], "_id": u["_id"]} for u in upserted)
    for e in errors:
        e = dict(e)
        stmt = chunk[e["index"]][1]
        e["index"] = chunk[e["index"]][0]
        e["op"] = stmt
        result["writeErrors"].append(e)
    wce = reply.get("writeConcernError")
    if wce:
        result["writeConcernErrors"].append(wce)


class ChangeStream:
    """The events of a $changeStream aggregate on a Django connection: each
    getMore waits up to max_await_time_ms (the server's 1 s by default) for
    new ones. MongoDB runs no change stream inside a transaction
    (OperationNotSupportedInTransaction), so neither does this one: it
    refuses to start in an atomic() block, whose snapshot would never see
    later changes."""

    def __init__(self, collection, pipeline, max_await_time_ms, batch_size):
        from django.db import NotSupportedError

        if collection._connection.in_atomic_block:
            raise NotSupportedError("a change stream cannot be opened inside a transaction (atomic block)")
        self._coll = collection
        self._max_await_time_ms = max_await_time_ms
        self._batch_size = batch_size
        cursor = {"batchSize": batch_size} if batch_size is not None else {}
        reply = collection._run({"aggregate": collection.name, "pipeline": pipeline, "cursor": cursor}, drain=False)
        self._take(reply["cursor"], "firstBatch")

    def _take(self, cursor, batch):
        self._id = cursor["id"]
        self._buffer = list(cursor[batch])
        self._post_batch_token = cursor.get("postBatchResumeToken")
        self._token = None if self._buffer else self._post_batch_token

    @property
    def alive(self):
        return bool(self._id) or bool(self._buffer)

    @property
    def resume_token(self):
        """The token to resume after what was handed out last."""
        return self._token

    def try_next(self):
        """The next event, or None when one getMore brought none."""
        if not self._buffer and self._id:
            cmd = {"getMore": self._id, "collection": self._coll.name}
            if self._max_await_time_ms is not None:
                cmd["maxTimeMS"] = self._max_await_time_ms
            if self._batch_size is not None:
                cmd["batchSize"] = self._batch_size
            self._take(self._coll._run(cmd, drain=False)["cursor"], "nextBatch")
        if not self._buffer:
            return None
        event = self._buffer.pop(0)
        self._token = self._post_batch_token if not self._buffer and self._post_batch_token else event["_id"]
        return event

    def next(self):
        """The next event, waiting for it; StopIteration once the stream is
        invalidated (its collection dropped or renamed)."""
        while self.alive:
            event = self.try_next()
            if event is not None:
                return event
        raise StopIteration

    __next__ = next

    def __iter__(self):
        return self

    def close(self):
        if self._id:
            self._coll._run({"killCursors": self._coll.name, "cursors": [self._id]})
            self._id = 0
        self._buffer = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
