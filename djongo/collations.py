"""A column's collation (Django's ``db_collation`` on CharField and
TextField), through Django's vendor hook: a MongoDB field has no collation
of its own, so wherever Django's SQL reads a column that has one (``Col``),
djongo's reads ``(column COLLATE "name")`` -- the compiler then compares and
sorts it by sort keys under that collation (src/compile/function.c names
the collations; the table's entry records them for introspection). Other
databases of the same project are untouched: Django picks ``as_<vendor>``
for the connection's vendor only.

Django's compiler asks every node for ``as_djongo`` (``getattr(node,
"as_djongo", None)``) and calls ``as_sql`` when there is none. Most columns
have no collation, so ``as_djongo`` is a cached property: None for them (the
compiler then goes straight to ``as_sql``, with no call of ours per column
per query), the collating method for the others, worked out once per Col
(Django reuses a field's Col across queries: Field.cached_col).

Django's cached_property (django.utils.functional), not functools': the
Cols of a join's other table are made per query (a select_related() makes
a few each time), and in Python 3.11 functools' takes a lock around every
first read; Django's stores the answer in the instance's __dict__ and
nothing more."""
from django.db.models.expressions import Col
from django.utils.functional import cached_property


def _djongo_collated(self, compiler, connection):
    sql, params = self.as_sql(compiler, connection)
    return "(%s COLLATE %s)" % (sql, connection.ops.quote_name(self.target.db_collation)), params


def _as_djongo(self):
    # (a bound method pickles as getattr(col, its function's __name__):
    # the function is named as the attribute it is set as)
    return self._djongo_collated if getattr(self.target, "db_collation", None) else None


Col._djongo_collated = _djongo_collated
Col.as_djongo = cached_property(_as_djongo)
Col.as_djongo.__set_name__(Col, "as_djongo")
