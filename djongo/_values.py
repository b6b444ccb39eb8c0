"""BSON values Python has no type of its own for, bound by the C driver
(src/pydriver/module.c, append_py).

Undefined: BSON's undefined (type 6). djongo stores it for one thing only:
a JSONField whose whole value is JSON null (``Value(None, JSONField())``),
so that it stays apart from SQL NULL, which is BSON null as in every other
column. Nested JSON nulls are BSON null: inside a document there is no SQL
NULL to confuse them with. Read back, undefined is None, as pymongo reads
it and as Django reads a JSON null. See djongo/operations.py,
adapt_json_value, for why this representation was chosen.
"""


class Undefined:
    __slots__ = ()

    def __repr__(self):
        return "Undefined"

    def __eq__(self, other):
        return isinstance(other, Undefined)

    def __hash__(self):
        return 6


UNDEFINED = Undefined()


class Encrypted(bytes):
    """BSON binary subtype 6: a value encrypted client-side (MongoDB's
    client-side field-level encryption; djongo.models' Encrypted* fields).
    The bytes are the ciphertext as stored: first byte the algorithm (1
    deterministic, 2 random), then the data key's UUID, then the AEAD
    ciphertext. Bound as subtype 6, and subtype 6 reads back as this type,
    so a field decrypts only what was encrypted (Connection.decrypt)."""

    __slots__ = ()

    def __repr__(self):
        return "Encrypted(%d bytes)" % len(self)
