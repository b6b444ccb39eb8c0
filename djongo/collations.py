"""A column's collation (Django's ``db_collation`` on CharField and
TextField), through Django's vendor hook: a MongoDB field has no collation
of its own, so wherever Django's SQL reads a column that has one (``Col``),
djongo's reads ``(column COLLATE "name")`` -- the compiler then compares and
sorts it by sort keys under that collation (src/compile/function.c names
the collations; the table's entry records them for introspection). Other
databases of the same project are untouched: Django picks ``as_<vendor>``
for the connection's vendor only."""
from django.db.models.expressions import Col


def col(self, compiler, connection):
    sql, params = self.as_sql(compiler, connection)
    collation = getattr(self.target, "db_collation", None)
    if collation:
        return "(%s COLLATE %s)" % (sql, connection.ops.quote_name(collation)), params
    return sql, params


Col.as_djongo = col
