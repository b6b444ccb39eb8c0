"""djongo.cache.MongoCache: Django's cache API on a MongoDB collection.

    CACHES = {"default": {"BACKEND": "djongo.cache.MongoCache",
                          "LOCATION": "cache_collection",
                          # optional: the DATABASES alias (a djongo one);
                          # without it the router picks, as for DatabaseCache
                          "OPTIONS": {"DATABASE": "default"}}}

One document per key: ``{_id: key, value: ..., expires_at: date | null}``.
``value`` is the value itself when it is an int that fits in 64 bits (so
incr/decr are one ``$inc``), else its pickle as binary data. ``expires_at``
is null for a key that never expires. ``manage.py createcachetable`` (with
"djongo" in INSTALLED_APPS: djongo/management/commands/createcachetable.py)
makes the collection and a TTL index on ``expires_at`` with
``expireAfterSeconds: 0``, so the server deletes a key once its date has
passed (https://www.mongodb.com/docs/manual/tutorial/expire-data/#expire-documents-at-a-specific-clock-time);
its monitor runs every 60 seconds, so every read checks the date too.

Everything is MongoDB commands on the chosen connection
(``connection.command``), in its open transaction if any: a many-key
operation is one command (``$in`` reads and deletes, one ``update`` with an
upsert per key), incr/decr one ``findAndModify``, add one ``update`` (replace an expired
document, else insert one if there is none).
MAX_ENTRIES / CULL_FREQUENCY cull as Django's DatabaseCache does: expired
keys first, then the first 1/CULL_FREQUENCY of the keys in key order
(CULL_FREQUENCY 0: everything).
"""
import pickle
from datetime import datetime, timezone

import bson
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.db import Options
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, IntegrityError, connections, router

_INT64 = (-(2 ** 63), 2 ** 63 - 1)
# $inc on a value that is not a number (a pickle) / whose sum leaves 64 bits
_TYPE_MISMATCH, _BAD_VALUE = 14, 2


def _now():
    """The present as BSON dates hold it: naive UTC, milliseconds."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _error_code(exc):
    """The MongoDB code of a failed command (Django wraps the driver's error)."""
    return getattr(exc, "code", None) or getattr(exc.__cause__, "code", None)


def _encode(value):
    if type(value) is int and _INT64[0] <= value <= _INT64[1]:
        return bson.Int64(value)
    return bson.Binary(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))


def _decode(stored):
    if isinstance(stored, bytes):
        return pickle.loads(stored)
    return int(stored)


def _alive(now):
    """The filter of keys that have not expired at NOW."""
    return {"$or": [{"expires_at": None}, {"expires_at": {"$gt": now}}]}


class MongoCache(BaseCache):
    def __init__(self, collection, params):
        super().__init__(params)
        self._collection = collection
        self._database = (params.get("OPTIONS") or {}).get("DATABASE")

        class CacheEntry:  # what routers see, as with DatabaseCache
            _meta = Options(collection)

        self.cache_model_class = CacheEntry

    # ---- the connection and its commands ----

    def _connection(self, write):
        if self._database is not None:
            alias = self._database
        elif write:
            alias = router.db_for_write(self.cache_model_class)
        else:
            alias = router.db_for_read(self.cache_model_class)
        return self._checked(alias)

    @staticmethod
    def _checked(alias):
        connection = connections[alias]
        if connection.vendor != "djongo":
            raise ImproperlyConfigured("djongo.cache.MongoCache needs a djongo database; %r is %s"
                                       % (alias, connection.vendor))
        return connection

    def _run(self, cmd, write=True):
        reply = self._connection(write).command(cmd)
        errors = reply.get("writeErrors")
        if errors:
            e = errors[0]
            exc = IntegrityError if e.get("code") == 11000 else DatabaseError
            raise exc("%s (code %s)" % (e.get("errmsg"), e.get("code")))
        return reply

    def _find(self, filter, **options):
        cmd = {"find": self._collection, "filter": filter}
        cmd.update(options)
        return self._run(cmd, write=False)["cursor"]["firstBatch"]

    def _delete(self, filter):
        return self._run({"delete": self._collection, "deletes": [{"q": filter, "limit": 0}]})["n"]

    def _expires_at(self, timeout):
        timeout = self.get_backend_timeout(timeout)
        if timeout is None:
            return None
        return datetime.fromtimestamp(timeout, tz=timezone.utc).replace(tzinfo=None)

    def create_collection_command(self):
        """The TTL index on expires_at (createIndexes makes the collection
        when there is none; with the same index there, it does nothing)."""
        return {"createIndexes": self._collection, "indexes": [
            {"key": {"expires_at": 1}, "name": "expires_at_ttl", "expireAfterSeconds": 0}]}

    def create_collection(self, alias):
        """Runs create_collection_command on database ALIAS; True if the
        collection is new."""
        reply = self._checked(alias).command(self.create_collection_command())
        return bool(reply.get("createdCollectionAutomatically"))

    # ---- reads ----

    def get(self, key, default=None, version=None):
        return self.get_many([key], version).get(key, default)

    def get_many(self, keys, version=None):
        key_map = {self.make_and_validate_key(key, version=version): key for key in keys}
        if not key_map:
            return {}
        now = _now()
        result, expired = {}, []
        for doc in self._find({"_id": {"$in": list(key_map)}}):
            if doc.get("expires_at") is not None and doc["expires_at"] <= now:
                expired.append(doc["_id"])
            else:
                result[key_map[doc["_id"]]] = _decode(doc["value"])
        if expired:  # read-time expiry, as DatabaseCache: the TTL monitor may not have run yet
            self._delete({"_id": {"$in": expired}, "expires_at": {"$lte": now}})
        return result

    def has_key(self, key, version=None):
        key = self.make_and_validate_key(key, version=version)
        return bool(self._find({"_id": key, **_alive(_now())}, projection={"_id": 1}, limit=1))

    # ---- writes ----

    def _maybe_cull(self, adding):
        """Before ADDING keys: DatabaseCache's rule, the count taken before the write."""
        # an aggregation, not the count command, which MongoDB refuses inside
        # a transaction (an atomic() block)
        rows = self._run({"aggregate": self._collection, "pipeline": [{"$count": "n"}], "cursor": {}},
                         write=False)["cursor"]["firstBatch"]
        num = rows[0]["n"] if rows else 0
        if num + adding - 1 <= self._max_entries:
            return
        if self._cull_frequency == 0:
            self.clear()
            return
        remaining = num - self._delete({"expires_at": {"$lte": _now()}})
        if remaining > self._max_entries:
            first_kept = self._find({}, sort={"_id": 1}, skip=remaining // self._cull_frequency,
                                    projection={"_id": 1}, limit=1)
            if first_kept:
                self._delete({"_id": {"$lt": first_kept[0]["_id"]}})

    def _document(self, key, value, expires_at):
        return {"_id": key, "value": _encode(value), "expires_at": expires_at}

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        self.set_many({key: value}, timeout, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        if not data:
            return []
        expires_at = self._expires_at(timeout)
        docs = [self._document(self.make_and_validate_key(k, version=version), v, expires_at)
                for k, v in data.items()]
        self._maybe_cull(len(docs))
        self._run({"update": self._collection,
                   "updates": [{"q": {"_id": d["_id"]}, "u": d, "upsert": True} for d in docs]})
        return []

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        doc = self._document(key, value, self._expires_at(timeout))
        self._maybe_cull(1)
        # One command, two statements, no write error (which would abort a
        # transaction on MongoDB): the first replaces an expired document, the
        # second inserts one when there is none. Added: an upsert, or both matched.
        # https://www.mongodb.com/docs/manual/reference/operator/update/setOnInsert/
        reply = self._run({"update": self._collection, "updates": [
            {"q": {"_id": key, "expires_at": {"$lte": _now()}}, "u": doc},
            {"q": {"_id": key}, "u": {"$setOnInsert": {"value": doc["value"], "expires_at": doc["expires_at"]}},
             "upsert": True}]})
        return bool(reply.get("upserted")) or reply["n"] == 2

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        reply = self._run({"update": self._collection, "updates": [
            {"q": {"_id": key, **_alive(_now())}, "u": {"$set": {"expires_at": self._expires_at(timeout)}}}]})
        return reply["n"] == 1

    def incr(self, key, delta=1, version=None):
        """Atomic: one findAndModify $inc when the stored value is a 64-bit
        int; otherwise (a pickled int, or a sum past 64 bits) a
        compare-and-set on the stored value. The expiry is kept."""
        key = self.make_and_validate_key(key, version=version)
        query = {"_id": key, **_alive(_now())}
        if type(delta) is int and _INT64[0] <= delta <= _INT64[1]:
            try:
                doc = self._run({"findAndModify": self._collection, "query": query,
                                 "update": {"$inc": {"value": bson.Int64(delta)}}, "new": True}).get("value")
            except DatabaseError as e:
                if _error_code(e) not in (_TYPE_MISMATCH, _BAD_VALUE):
                    raise
            else:
                if doc is None:
                    raise ValueError("Key '%s' not found." % key)
                return int(doc["value"])
        while True:
            docs = self._find(query, limit=1)
            if not docs:
                raise ValueError("Key '%s' not found." % key)
            new = _decode(docs[0]["value"]) + delta  # TypeError for a value that is not a number
            reply = self._run({"update": self._collection, "updates": [
                {"q": {"_id": key, "value": docs[0]["value"]}, "u": {"$set": {"value": _encode(new)}}}]})
            if reply["n"] == 1:
                return new

    def decr(self, key, delta=1, version=None):
        return self.incr(key, -delta, version)

    # ---- deletes ----

    def delete(self, key, version=None):
        key = self.make_and_validate_key(key, version=version)
        return self._delete({"_id": key}) > 0

    def delete_many(self, keys, version=None):
        keys = [self.make_and_validate_key(key, version=version) for key in keys]
        if keys:
            self._delete({"_id": {"$in": keys}})

    def clear(self):
        self._delete({})
