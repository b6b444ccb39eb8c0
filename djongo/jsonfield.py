"""Django's own models.JSONField on djongo: its lookups and transforms
compiled to djongo's dialect through Django's vendor hook (``as_djongo``,
as Django's own backends have ``as_sqlite``, ``as_postgresql``...), set
here on Django's classes when the backend is imported (base.py). Other
databases of the same project are untouched: Django picks ``as_<vendor>``
by the connection compiling the query.

Storage: the value is BSON, not JSON text -- a dict is a sub-document, a
list an array, a number a number -- so MongoDB tools see and query it
(operations.py, adapt_json_value).

Paths: ``value__a__0`` is ``JSON_GET(JSON_GET(value, 'a'), 0)``, a path as
JSON reads it: a key of a document, an index of an array, missing
otherwise (src/compile/function.c, json_get). Not ``value -> 'a' -> 0``,
the MongoDB path djongo.models' EmbeddedField and ArrayField use, which
reaches through arrays (``a.k`` is every element's k): Django's JSONField
means the stored JSON, on every backend. Keys are values, not parts of a
MongoDB path, so any key works ('a.b', '$x').

JSON null and SQL NULL: SQL NULL is BSON null, as in every djongo column
(the NOT NULL checks and ``IS NULL`` of src/compile and src/exec, and what
other tools read, all say so); a JSONField whose whole value is JSON null
(``Value(None, JSONField())``) is BSON undefined (djongo/_values.py), the
one BSON value that is neither JSON data nor null: a JSON document cannot
hold it, so it cannot be mistaken for one, and MongoDB's drivers read it
as None/null. Inside a document a JSON null is BSON null: there is no SQL
NULL there to confuse it with. (MongoDB's own distinction, "null" vs "no
field", would make SQL NULL an absent field -- in this column only --
and JSON null a null; it would put every NOT NULL check and every INSERT
of the executor on a column-type rule, for the rarer of the two cases.)

  value__isnull=True     JSON_TYPE(value) IN ('null', 'missing')  SQL NULL only
  value=None             JSON_TYPE(value) = 'undefined'           JSON null only
  value__a=None          JSON_TYPE(JSON_GET(value, 'a')) = 'null'  the key holds null
  value__a__isnull=True  the key is absent                         (Django's reading)

Equality is BSON's: a document equals one with the same keys in the same
order (PostgreSQL's jsonb ignores key order). contains / contained_by
follow PostgreSQL's ``@>`` / ``<@``, except that a document inside a
list is compared whole.
"""
from django.db.models import lookups as builtin
from django.db.models.expressions import Col
from django.db.models.fields import json as dj

from djongo._values import UNDEFINED
from djongo.models.lookups import _literal_rhs, key_sql


def json_path(sql, steps):
    """A path of steps below `sql`, each a JSON_GET (see the module doc)."""
    for k in steps:
        sql = "JSON_GET(%s, %s)" % (sql, key_sql(k))
    return sql


def _path(transform, compiler):
    """(sql, params) of a KeyTransform chain as one path."""
    lhs, params, keys = transform.preprocess_lhs(compiler, compiler.connection)
    return json_path(lhs, keys), list(params)


def _expr_path(expr, compiler):
    """(sql, params) of an expression, a KeyTransform chain as one path."""
    if isinstance(expr, dj.KeyTransform):
        return _path(expr, compiler)
    sql, params = compiler.compile(expr)
    return sql, list(params)


def _dot_path(transform, compiler):
    """(sql, params) of a KeyTransform chain on a column as djongo's MongoDB
    path, ``col -> 'a' -> 0`` (``col.a.0``), or None when a key cannot be a
    MongoDB path step ('a.b', '$x', ''). That path is what MongoDB indexes,
    and in a filter it matches a superset of the JSON path's rows (it also
    reaches through arrays and matches an array's elements)."""
    lhs, params, keys = transform.preprocess_lhs(compiler, compiler.connection)
    root = transform
    while isinstance(root, dj.KeyTransform):
        root = root.lhs
    if not isinstance(root, Col) or any(not k or "." in k or k.startswith("$") or "\0" in k for k in keys):
        return None
    return "%s%s" % (lhs, "".join(" -> %s" % key_sql(k) for k in keys)), list(params)


def key_transform(self, compiler, connection):
    if not compiler.query.alias_cols:
        # an index or constraint expression (Django compiles those with
        # Query(model, alias_cols=False)): MongoDB indexes the dot path,
        # which the filters below use (_indexed)
        path = _dot_path(self, compiler)
        if path is not None:
            return path
    return _path(self, compiler)


def _indexed(lookup, compiler, strict_sql, strict_params, op, rhs_params):
    """``(col -> 'a' <op> AND <strict>)``: the JSON path's condition led by
    the same condition on the MongoDB path, a filter an index on
    ``Index("value__a")`` serves. Every row the strict condition keeps, the
    MongoDB path's keeps too, so the answer is the strict one's."""
    if not isinstance(lookup.lhs, dj.KeyTransform):
        return strict_sql, strict_params
    dot = _dot_path(lookup.lhs, compiler)
    if dot is None:
        return strict_sql, strict_params
    return "(%s %s AND %s)" % (dot[0], op, strict_sql), [*dot[1], *rhs_params, *strict_params]


def key_in(self, compiler, connection):
    """``value__a__in=[...]``: Django's IN, index-assisted (_indexed)."""
    lhs, lhs_params = self.process_lhs(compiler, connection)
    rhs, rhs_params = self.process_rhs(compiler, connection)
    op = self.get_rhs_op(connection, rhs)
    params = [*lhs_params, *rhs_params]
    if rhs.replace("%s", "").strip("(), "):  # an expression among the values: no filter form
        return "%s %s" % (lhs, op), params
    return _indexed(self, compiler, "%s %s" % (lhs, op), params, op, rhs_params)


def _has(container, key, params, index):
    """(sql, params): the value at `container` has `key` -- an object key
    (a key holding JSON null counts), or with `index` and a digit key, an
    array index. Never NULL: a missing container has no keys."""
    if index and str(key).isdigit():
        return ("(JSON_TYPE(%s) = 'array' AND JSON_ARRAY_LENGTH(%s) > %s)" % (container, container, key),
                [*params, *params])
    return "ARRAY_SUBSET(%%s, JSON_KEYS(%s))" % container, [[str(key)], *params]


def has_key(self, compiler, connection):
    """``has_key`` / ``has_keys`` / ``has_any_keys``. A KeyTransform as the
    right-hand side is a path from the left-hand side's value
    (``has_key=KT('a__b')``): its last step is the key."""
    lhs, params = _expr_path(self.lhs, compiler)
    keys = self.rhs if isinstance(self.rhs, (list, tuple)) else [self.rhs]
    parts, all_params = [], []
    for key in keys:
        steps = key.preprocess_lhs(compiler, connection)[2] if isinstance(key, dj.KeyTransform) else [key]
        sql, p = _has(json_path(lhs, steps[:-1]), steps[-1], params, False)
        parts.append(sql)
        all_params += p
    joiner = self.logical_operator or " AND "
    if not parts:
        return ("1 = 1", []) if joiner == " AND " else ("1 = 0", [])
    return "(%s)" % joiner.join(parts), all_params


def key_is_null(self, compiler, connection):
    """``value__a__isnull=True``: the key is absent (or the column SQL NULL),
    as Django's other backends read it; a key holding null is present. A
    digit step is an array index here (Django's HasKeyOrArrayIndex)."""
    container, params = _expr_path(self.lhs.lhs, compiler)
    sql, p = _has(container, self.lhs.key_name, params, True)
    return ("NOT %s" % sql if self.rhs else sql), p


def json_exact(self, compiler, connection):
    """``value=...`` and ``value__a=...``: the stored value equals. JSON null
    (``value=None``): BSON undefined at the top level, null under a key --
    and, as on Django's other backends, unknown (NULL) where the key is
    absent, so that exclude(value__a=None) keeps no such row."""
    lhs, lhs_params = self.process_lhs(compiler, connection)
    rhs, rhs_params = self.process_rhs(compiler, connection)
    params = [*lhs_params, *rhs_params]
    if rhs == "%s" and len(rhs_params) == 1 and rhs_params[0] is UNDEFINED:
        if isinstance(self.lhs, dj.KeyTransform):
            return "NULLIF(JSON_TYPE(%s), 'missing') = 'null'" % lhs, list(lhs_params)
        return "JSON_TYPE(%s) = 'undefined'" % lhs, list(lhs_params)
    if not isinstance(self.lhs, dj.KeyTransform) and rhs == "%s" and not isinstance(rhs_params[0], list):
        # the column itself is a filter, and MongoDB's {value: 'x'} also
        # matches the array ['x', 'y']: not equality
        # (https://www.mongodb.com/docs/manual/tutorial/query-arrays/)
        return "(%s = %s AND JSON_TYPE(%s) <> 'array')" % (lhs, rhs, lhs), [*params, *lhs_params]
    if rhs == "%s":
        return _indexed(self, compiler, "%s = %s" % (lhs, rhs), params, "= %s", rhs_params)
    return "%s = %s" % (lhs, rhs), params


def column_is_null(self, compiler, connection):
    """``value__isnull`` on a JSONField column: SQL NULL (BSON null or an
    absent field), never a JSON null (BSON undefined, which MongoDB before
    8.0 matches with ``{value: null}``:
    https://www.mongodb.com/docs/manual/release-notes/8.0-compatibility/).
    Any other field: Django's IS NULL."""
    if not isinstance(self.lhs.output_field, dj.JSONField) or isinstance(self.lhs, dj.KeyTransform):
        return self.as_sql(compiler, connection)
    lhs, params = compiler.compile(self.lhs)
    return "JSON_TYPE(%s) %sIN ('null', 'missing')" % (lhs, "" if self.rhs else "NOT "), list(params)


def _json_value(lookup, connection):
    """The right-hand side of contains / contained_by as plain JSON data
    (None for JSON null)."""
    rhs = _literal_rhs(lookup, lookup.lookup_name)
    value = lookup.lhs.output_field.get_db_prep_value(rhs, connection, prepared=True)
    return None if value is UNDEFINED else value


def _null_test(path, column):
    """JSON null at `path`: BSON undefined if `path` is the column itself."""
    return "JSON_TYPE(%s) = '%s'" % (path, "undefined" if column else "null")


def _contains(path, value, params, root, column):
    """(sql parts, params) saying the value at `path` contains `value`
    (PostgreSQL's ``@>``): an object has each given key with a value
    containing the given one, an array has each given element (documents
    and arrays inside compared whole), and at the root an array contains a
    scalar it holds ('["a", "b"]' @> '"a"'); anything else equals."""
    if isinstance(value, dict):
        parts, out = ["JSON_TYPE(%s) = 'object'" % path], list(params)
        for k, v in value.items():
            p, pp = _contains(json_path(path, [k]), v, params, False, False)
            parts += p
            out += pp
        return parts, out
    if isinstance(value, list):
        return (["JSON_TYPE(%s) = 'array'" % path, "ARRAY_SUBSET(%%s, %s)" % path],
                [*params, value, *params])
    if value is None:
        return [_null_test(path, column)], list(params)
    if root:
        return (["(%s = %%s OR ARRAY_SUBSET(%%s, %s))" % (path, path)], [*params, value, [value], *params])
    return ["%s = %%s" % path], [*params, value]


def _contained(path, value, params, column):
    """(sql parts, params) saying the value at `path` is contained in
    `value` (PostgreSQL's ``<@``): an object whose keys are among the given
    ones, each value contained in the given one; an array whose elements
    are among the given elements; anything else equal."""
    if isinstance(value, dict):
        parts = ["JSON_TYPE(%s) = 'object'" % path, "ARRAY_SUBSET(JSON_KEYS(%s), %%s)" % path]
        out = [*params, *params, list(value)]
        for k, v in value.items():
            step = json_path(path, [k])
            sub, p = _contained(step, v, params, False)
            parts.append("(JSON_TYPE(%s) = 'missing' OR (%s))" % (step, " AND ".join(sub)))
            out += [*params, *p]
        return parts, out
    if isinstance(value, list):
        return (["JSON_TYPE(%s) = 'array'" % path, "ARRAY_SUBSET(%s, %%s)" % path], [*params, *params, value])
    if value is None:
        return [_null_test(path, column)], list(params)
    return ["%s = %%s" % path], [*params, value]


def data_contains(self, compiler, connection):
    lhs, params = _expr_path(self.lhs, compiler)
    column = not isinstance(self.lhs, dj.KeyTransform)
    parts, p = _contains(lhs, _json_value(self, connection), params, True, column)
    return "(%s)" % " AND ".join(parts), p


def contained_by(self, compiler, connection):
    lhs, params = _expr_path(self.lhs, compiler)
    column = not isinstance(self.lhs, dj.KeyTransform)
    parts, p = _contained(lhs, _json_value(self, connection), params, column)
    return "(%s)" % " AND ".join(parts), p


dj.KeyTransform.as_djongo = key_transform
dj.HasKeyLookup.as_djongo = has_key
dj.JSONExact.as_djongo = json_exact
dj.KeyTransformIsNull.as_djongo = key_is_null
dj.KeyTransformIn.as_djongo = key_in
dj.DataContains.as_djongo = data_contains
dj.ContainedBy.as_djongo = contained_by
builtin.IsNull.as_djongo = column_is_null
