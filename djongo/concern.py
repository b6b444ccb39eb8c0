"""Read preference, read concern and write concern for a block of code:
``djongo.concerns()``.

    import djongo
    with djongo.concerns(read_preference="secondaryPreferred", read_concern="majority"):
        report = list(Entry.objects.filter(...))     # querysets evaluated here
    with djongo.concerns(write_concern={"w": "majority", "wtimeout": 5000}):
        Entry.objects.create(...)

The connection's defaults are its OPTIONS (readPreference,
readPreferenceTags, maxStalenessSeconds, readConcernLevel, w, wTimeoutMS,
journal); inside the block what is given here replaces them, for every
query and write the block runs on that database alias (a queryset is
evaluated where it is iterated: evaluate it inside). Blocks nest (the inner
one over the outer); leaving one restores what was before. The driver
applies them (src/transport, dj_transport_set_concerns):

  - on a MongoDB server (libmongoc): reads outside transactions go to the
    members the read preference selects, with the read concern; writes
    carry the write concern; an atomic() block begun inside takes the read
    and write concern (its reads go to the primary, as MongoDB requires);
  - on the embedded engine (one node, a one-member replica set's primary):
    w 1, "majority", journal and wtimeout are met by every write; w of 2 or
    more leaves the write done and raises OperationalError with code 100
    (UnsatisfiableWriteConcern), as mongod reports it; a read preference
    only a secondary could serve raises OperationalError at once.

Values: read_preference a mode name or a pymongo read preference
(``pymongo.ReadPreference.SECONDARY``, ``Nearest(tag_sets=...)``) whose
tag sets and max staleness come along; read_concern a level or a
pymongo ReadConcern; write_concern a dict {"w", "j", "wtimeout"}, a pymongo
WriteConcern, or a w value (1, "majority", a tag name).
https://www.mongodb.com/docs/manual/core/read-preference/
https://www.mongodb.com/docs/manual/reference/read-concern/
https://www.mongodb.com/docs/manual/reference/write-concern/
"""
import contextlib

from django.db import DEFAULT_DB_ALIAS, connections

# the read preference modes by pymongo's ReadPreference.mode numbers
_MODES = {0: "primary", 1: "primaryPreferred", 2: "secondary", 3: "secondaryPreferred", 4: "nearest"}


def as_options(read_preference=None, read_preference_tags=None, max_staleness_seconds=None, read_concern=None,
               write_concern=None):
    """The connection-string options the arguments stand for (the names
    OPTIONS uses), without those not given."""
    out = {}
    if read_preference is not None:
        if isinstance(read_preference, str):
            out["readPreference"] = read_preference
        else:  # pymongo's ServerMode: mode number, tag sets, max staleness
            out["readPreference"] = _MODES[read_preference.mode]
            tags = [dict(t) for t in (read_preference.tag_sets or ()) if t is not None]
            if tags and tags != [{}]:
                out["readPreferenceTags"] = tags
            if getattr(read_preference, "max_staleness", -1) not in (-1, None):
                out["maxStalenessSeconds"] = read_preference.max_staleness
    if read_preference_tags is not None:
        out["readPreferenceTags"] = [dict(t) for t in read_preference_tags]
    if max_staleness_seconds is not None:
        out["maxStalenessSeconds"] = max_staleness_seconds
    if read_concern is not None:
        out["readConcernLevel"] = read_concern if isinstance(read_concern, str) else read_concern.level
    if write_concern is not None:
        doc = getattr(write_concern, "document", write_concern)
        if not isinstance(doc, dict):
            doc = {"w": doc}
        for key, name in (("w", "w"), ("wtimeout", "wTimeoutMS"), ("wtimeoutMS", "wTimeoutMS"), ("j", "journal"),
                          ("journal", "journal")):
            if key in doc:
                out[name] = doc[key]
        unknown = set(doc) - {"w", "wtimeout", "wtimeoutMS", "j", "journal"}
        if unknown:
            raise ValueError("write_concern: unknown key(s) %s (w, j, wtimeout)" % ", ".join(sorted(unknown)))
    return out


@contextlib.contextmanager
def concerns(using=None, **kwargs):
    """The block's read preference, read concern and write concern on
    database alias `using` (default: "default"); see the module's
    docstring."""
    connection = connections[using or DEFAULT_DB_ALIAS]
    outer = getattr(connection, "djongo_concerns", None)
    inner = dict(outer or {})
    inner.update(as_options(**kwargs))
    connection.ensure_connection()
    with connection.wrap_database_errors:
        connection.connection.set_concerns(inner)
    connection.djongo_concerns = inner
    try:
        yield
    finally:
        connection.djongo_concerns = outer
        if connection.connection is not None:
            with connection.wrap_database_errors:
                connection.connection.set_concerns(outer)
