"""MongoDB's own index kinds for ``Meta.indexes``; migrations create and
drop them as Django's indexes (the schema editor's CREATE INDEX, in
djongo's SQL dialect: src/sql/dj_sql.h).

  TTLIndex(fields=["created"], expire_after=timedelta(days=1))
      MongoDB deletes a document once its date field is older than
      expire_after (an array of dates: its earliest; a document whose field
      is missing or not a date stays). The embedded engine's monitor runs
      every 60 s as mongod's (DATABASES OPTIONS["TTL_MONITOR_SLEEP_SECS"]).
      https://www.mongodb.com/docs/manual/core/index-ttl/
  HashedIndex(fields=["key"])  /  HashedIndex(fields=["key", "-other"])
      the first field is hashed (equality lookups on it use the index, range
      queries and ordering do not; its values may not be lists), the others
      are ordinary ascending/descending keys.
      https://www.mongodb.com/docs/manual/core/indexes/index-types/index-hashed/
"""
import datetime

from django.db.models import Index


class TTLIndex(Index):
    suffix = "ttl"

    def __init__(self, *, fields=(), expire_after=None, **kwargs):
        if len(fields) != 1 or str(fields[0]).startswith("-"):
            raise ValueError("TTLIndex takes exactly one field, ascending (MongoDB's TTL indexes are single-field)")
        if isinstance(expire_after, datetime.timedelta):
            seconds = expire_after.total_seconds()
        elif isinstance(expire_after, int) and not isinstance(expire_after, bool):
            seconds = expire_after
        else:
            raise ValueError("TTLIndex.expire_after must be a timedelta (or whole seconds), not %r" % (expire_after,))
        if seconds != int(seconds) or not 0 <= seconds <= 2147483647:
            raise ValueError("TTLIndex.expire_after must be whole seconds from 0 to 2147483647, not %r" % (seconds,))
        self.expire_after = expire_after
        self.expire_after_seconds = int(seconds)
        super().__init__(fields=fields, **kwargs)

    def create_sql(self, model, schema_editor, using="", **kwargs):
        statement = super().create_sql(model, schema_editor, using=using, **kwargs)
        statement.parts["extra"] = " WITH (expireAfterSeconds = %d)%s" % (self.expire_after_seconds,
                                                                          statement.parts["extra"])
        return statement

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        kwargs["expire_after"] = self.expire_after
        return "djongo.models.TTLIndex", args, kwargs


def create_keyed_sql(index, model, schema_editor, first_key, using="", **kwargs):
    """CREATE INDEX with the first field's key kind spelled `first_key`
    (HASHED, GEOSPHERE, GEO2D: djongo's SQL, src/compile/ddl.c) and the
    other fields ascending or descending."""
    fields = [model._meta.get_field(name) for name, _ in index.fields_orders]
    col_suffixes = [first_key] + [order for _, order in index.fields_orders[1:]]
    return schema_editor._create_index_sql(
        model, fields=fields, name=index.name, using=using, db_tablespace=index.db_tablespace,
        col_suffixes=col_suffixes, opclasses=index.opclasses,
        condition=index._get_condition_sql(model, schema_editor), **kwargs)


class HashedIndex(Index):
    suffix = "hashed"

    def __init__(self, *, fields=(), **kwargs):
        if not fields or str(fields[0]).startswith("-"):
            raise ValueError("HashedIndex's first field is the hashed one: it has no order ('-')")
        super().__init__(fields=fields, **kwargs)

    def create_sql(self, model, schema_editor, using="", **kwargs):
        return create_keyed_sql(self, model, schema_editor, "HASHED", using, **kwargs)

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        return "djongo.models.HashedIndex", args, kwargs
