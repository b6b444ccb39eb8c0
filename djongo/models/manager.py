"""DjongoManager: a model's collection through MongoDB's own API.

``Entry.objects.mongo_find({...})``, ``mongo_aggregate([...])``,
``mongo_insert_one({...})``, ``mongo_update_many(...)`` ... are the methods
of pymongo's ``Collection`` (minus the prefix) on the model's collection:

- on a MongoDB server (HOST a URI or host name), a real pymongo Collection
  on the same database, from a client made once per Django connection;
- on the embedded engine, ``djongo.mongo.Collection``: the same method
  names, arguments and result types (pymongo's ``InsertOneResult``,
  ``UpdateResult``...), running as commands on Django's own connection --
  so they see, and join, the open transaction (``atomic()`` blocks and
  TestCase included). pymongo itself can reach the same data through
  ``djongo-server``.

``mongo_bulk_write(requests, ordered=True)`` takes pymongo's request
objects (``InsertOne``, ``UpdateOne``, ``UpdateMany``, ``ReplaceOne``,
``DeleteOne``, ``DeleteMany``) and returns pymongo's ``BulkWriteResult``
(write errors: pymongo's ``BulkWriteError``). On both transports it runs as
the connection's own commands (``djongo.mongo.Collection.bulk_write``:
libmongoc on a server), one insert/update/delete command per run of
requests, so it joins an open ``atomic()`` block as the ORM's writes do.

``raw_aggregate(pipeline)`` runs a pipeline and gives model instances, as
``Manager.raw()`` does for SQL.

``watch(pipeline=None, **kwargs)`` is a change stream on the model's
collection: the change events (insert, update, replace, delete, drop...)
as pymongo's ``Collection.watch()`` gives them, with its arguments
(``full_document="updateLookup"``, ``resume_after``, ``start_after``,
``max_await_time_ms``...). On the embedded engine the events come from the
engine's own change log; on a MongoDB server it is pymongo's change stream
(a replica set's). Not inside ``atomic()``: MongoDB opens no change stream
in a transaction.
"""
from django.db import connections, models

from djongo.mongo import Collection, instance_from_document


class DjongoManager(models.Manager):
    def mongo_collection(self):
        """The collection (see the module's docstring for which kind)."""
        connection = connections[self.db]
        table = self.model._meta.db_table
        if connection.embedded:
            return Collection(connection, table)
        client = getattr(connection, "_djongo_pymongo", None)
        if client is None:
            import pymongo

            params = connection.get_connection_params()  # pymongo takes the same options as keywords
            client = connection._djongo_pymongo = pymongo.MongoClient(params["host"], **params["options"])
        return client[connection.settings_dict["NAME"]][table]

    def __getattr__(self, name):
        if name.startswith("mongo_") and name != "mongo_collection":
            return getattr(self.mongo_collection(), name[len("mongo_"):])
        raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))

    def mongo_bulk_write(self, requests, ordered=True, **kwargs):
        """pymongo's bulk_write on the model's collection, over the Django
        connection on either transport (see the module's docstring)."""
        connection = connections[self.db]
        return Collection(connection, self.model._meta.db_table).bulk_write(requests, ordered=ordered, **kwargs)

    def watch(self, pipeline=None, **kwargs):
        """A change stream on the model's collection (see the module's
        docstring): iterate it for the change events, each a dict.
        https://www.mongodb.com/docs/manual/changeStreams/"""
        return self.mongo_collection().watch(pipeline, **kwargs)

    def raw_aggregate(self, pipeline):
        """Runs `pipeline` on the model's collection; each document out is
        an instance (fields the pipeline dropped are deferred)."""
        connection = connections[self.db]
        docs = self.mongo_collection().aggregate(list(pipeline))
        return [instance_from_document(self.model, doc, connection, self.db) for doc in docs]
