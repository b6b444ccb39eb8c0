"""Transforms and lookups that reach into documents.

A path step is djongo's SQL path operator, ``col -> 'key'`` (an integer key
indexes an array), which the C compiler turns into the MongoDB path
``col.key``: in a filter that is dot notation, so ``authors -> 'name' = 'X'``
matches when any element of the array does, as MongoDB queries do
(https://www.mongodb.com/docs/manual/tutorial/query-array-of-documents/).
Keys go into the SQL text as quoted literals -- a path is part of the plan,
not a value -- and the compiler refuses a key with '.' or a leading '$',
so no key can turn into an operator. Values stay bound parameters.
"""
from django.db import NotSupportedError
from django.db.models import BooleanField, IntegerField, Lookup, Transform
from django.db.models.lookups import Exact


def key_sql(key):
    """A path step as SQL: an array index bare, a key as a string literal
    (quotes doubled; % doubled, as Django's SQL is formatted with its
    parameters)."""
    key = str(key)
    if key.isdigit():
        return key
    return "'%s'" % key.replace("'", "''").replace("%", "%%")


class PathTransform(Transform):
    """``field__key``: the value at ``key`` inside the document (or array)
    in ``field``. ``output_field`` is what is stored there -- the container
    model's field for an EmbeddedField, the JSONField itself for JSON -- so
    the lookups that follow are that field's."""

    def __init__(self, key, lhs, output_field):
        super().__init__(lhs, output_field=output_field)
        self.key = str(key)

    def as_sql(self, compiler, connection):
        lhs, params = compiler.compile(self.lhs)
        return "%s -> %s" % (lhs, key_sql(self.key)), params


def _literal_rhs(lookup, what):
    if hasattr(lookup.rhs, "resolve_expression"):
        raise NotSupportedError("%s takes a value, not an expression" % what)
    return lookup.rhs


def _containment(lhs_sql, value, field, connection):
    """(sql parts, params) saying that the value at lhs_sql contains
    `value`: a dict contains each of its keys' values (recursively), a list
    each of its elements (MongoDB's element match), a scalar equals."""
    if isinstance(value, dict):
        parts, params = [], []
        for k, v in value.items():
            p, pp = _containment("%s -> %s" % (lhs_sql, key_sql(k)), v, field, connection)
            parts += p
            params += pp
        if not value:  # {} is contained in any document
            parts.append("JSON_TYPE(%s) = 'object'" % lhs_sql)
        return parts, params
    if isinstance(value, (list, tuple)):
        parts, params = [], []
        for v in value:
            if isinstance(v, (dict, list, tuple)):
                # a nested structure inside an array: no element-wise SQL form
                raise NotSupportedError("contains with a document or array inside a list")
            parts.append("%s = %%s" % lhs_sql)
            params.append(field.get_db_prep_value(v, connection, prepared=False) if field else v)
        if not value:
            parts.append("JSON_TYPE(%s) = 'array'" % lhs_sql)
        return parts, params
    return ["%s = %%s" % lhs_sql], [field.get_db_prep_value(value, connection, prepared=False) if field else value]


class DataContains(Lookup):
    """``data__contains={'a': 1}`` / ``tags__contains=['x', 'y']``: every
    key (recursively) and every list element given is in the stored value."""

    lookup_name = "contains"
    prepare_rhs = False

    def element_field(self):
        return None

    def as_sql(self, compiler, connection):
        value = _literal_rhs(self, "contains")
        lhs, params = compiler.compile(self.lhs)
        parts, p = _containment(lhs, value, self.element_field(), connection)
        return "(%s)" % " AND ".join(parts), [*params, *p]


class DocumentExact(Exact):
    """``= %s`` with the value bound as a BSON document/array (no JSON text)."""

    prepare_rhs = False

    def process_rhs(self, compiler, connection):
        if hasattr(self.rhs, "resolve_expression"):
            return super().process_rhs(compiler, connection)
        return "%s", [self.lhs.output_field.get_db_prep_value(self.rhs, connection, prepared=False)]


class ArrayLength(Transform):
    """``tags__len=2``: the number of elements (NULL for a non-array)."""

    lookup_name = "len"
    output_field = IntegerField()

    def as_sql(self, compiler, connection):
        lhs, params = compiler.compile(self.lhs)
        return "JSON_ARRAY_LENGTH(%s)" % lhs, params


class ElementOf(Lookup):
    """``tags__has='x'``: an element equals the value (MongoDB's
    ``{tags: 'x'}``)."""

    lookup_name = "has"
    output_field = BooleanField()

    def as_sql(self, compiler, connection):
        value = _literal_rhs(self, "has")
        lhs, lp = self.process_lhs(compiler, connection)
        return "%s = %%s" % lhs, [*lp, self.lhs.output_field.element_db_value(value, connection)]
