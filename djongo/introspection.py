"""What is in the database, for inspectdb, migrations and the test runner:
collections are tables; columns, their declared types and the
AUTOINCREMENT key come from the entry CREATE TABLE wrote in
__djongo_tables; for collections made by other tools, columns are sampled
from documents. Constraints are the collection's indexes, and the CHECK and
FOREIGN KEY constraints that entry records."""
from collections import namedtuple

from django.db.backends.base.introspection import BaseDatabaseIntrospection
from django.db.backends.base.introspection import FieldInfo as BaseFieldInfo
from django.db.backends.base.introspection import TableInfo

from djongo.operations import sql_literal

# pk: the primary key column that numbers itself (the entry's AUTOINCREMENT
# column: get_field_type makes it an AutoField; a column of a composite or
# a plain integer primary key is not one); generated: a stored generated column
# (GENERATED ALWAYS AS (e) STORED, Django's GeneratedField): the entry's
# `generated` holds e, compiled (src/compile/ddl.c)
FieldInfo = namedtuple("FieldInfo", BaseFieldInfo._fields + ("pk", "generated"))

TABLES = "__djongo_tables"  # DJ_TABLES_COLLECTION in src/compile/dj_compile.h
SAMPLE = 100  # documents read to infer the fields of a collection without an entry

def _sampled_type(v):
    """A sampled value's column type (the names CREATE TABLE records)."""
    import datetime
    import decimal
    import uuid

    import bson

    for py, t in ((bool, "bool"), (int, "bigint"), (float, "real"), (str, "text"), (dict, "document"),
                  (list, "array"), (bson.ObjectId, "objectid"), (datetime.datetime, "datetime"),
                  (decimal.Decimal, "decimal"), (uuid.UUID, "uuid"), (bytes, "blob")):
        if isinstance(v, py):
            return t
    return "json"  # anything else: a JSONField keeps any BSON value


class DatabaseIntrospection(BaseDatabaseIntrospection):
    data_types_reverse = {
        "bool": "BooleanField",
        "boolean": "BooleanField",
        "smallint": "SmallIntegerField",
        "smallint unsigned": "PositiveSmallIntegerField",
        "integer": "IntegerField",
        "int": "IntegerField",
        "integer unsigned": "PositiveIntegerField",
        "bigint": "BigIntegerField",
        "bigint unsigned": "PositiveBigIntegerField",
        "decimal": "DecimalField",
        "real": "FloatField",
        "text": "TextField",
        "char": "CharField",
        "varchar": "CharField",
        "blob": "BinaryField",
        "date": "DateField",
        "datetime": "DateTimeField",
        "time": "TimeField",
        "uuid": "UUIDField",
        # documents, arrays and any other BSON value: Django's JSONField,
        # which djongo stores as BSON (inspectdb's `models.JSONField`)
        "document": "JSONField",
        "array": "JSONField",
        "json": "JSONField",
        "objectid": "djongo.models.ObjectIdField",
    }

    def get_field_type(self, data_type, description):
        base = (data_type or "text").lower().split("(")[0].strip()
        field_type = self.data_types_reverse.get(base) or self.data_types_reverse.get(base.split()[0], "TextField")
        if description.pk and field_type in ("IntegerField", "BigIntegerField", "SmallIntegerField"):
            return {"IntegerField": "AutoField", "BigIntegerField": "BigAutoField",
                    "SmallIntegerField": "SmallAutoField"}[field_type]
        return field_type

    def _entries(self):
        reply = self.connection.command({"find": TABLES, "filter": {}})
        return {d["table"]: d for d in reply["cursor"]["firstBatch"] if "table" in d}

    def get_table_list(self, cursor):
        # a MongoDB view (CREATE VIEW: src/compile/view.c) is a view, "v"
        reply = self.connection.command({"listCollections": 1, "nameOnly": True}, outside_transaction=True)
        kinds = {c["name"]: "v" if c.get("type") == "view" else "t" for c in reply["cursor"]["firstBatch"]}
        return [TableInfo(n, kinds[n]) for n in sorted(kinds) if n != TABLES and not n.startswith("system.")]

    def get_table_description(self, cursor, table_name):
        entry = self._entries().get(table_name)
        notnull, generated, collations, defaults = set(), {}, {}, {}
        if entry and "columns" in entry:
            generated = entry.get("generated") or {}
            collations = entry.get("collations") or {}
            defaults = entry.get("defaults") or {}
            columns, types = entry["columns"], entry.get("types") or {}
            notnull = set(entry.get("notnull") or ())
        else:
            columns, types = self._sample_columns(table_name)
        pk = self.get_primary_key_column(cursor, table_name)
        auto = (entry or {}).get("auto") if entry and "columns" in entry else pk
        out = []
        for name in columns:
            t = types.get(name) or "text"
            size = precision = scale = None
            if "(" in t:
                try:
                    args = [int(a) for a in t.split("(")[1].split(")")[0].split(",")]
                except ValueError:
                    args = []
                size = args[0] if args else None
                if t.lower().startswith(("decimal", "numeric")) and len(args) == 2:
                    precision, scale = args  # decimal(p, s): inspectdb's max_digits, decimal_places
            # display_size carries varchar(n)'s n: inspectdb's max_length
            # a recorded DEFAULT as SQL text, as SQLite's PRAGMA table_info gives it
            default = sql_literal(defaults[name]) if name in defaults else None
            out.append(FieldInfo(name, t.lower(), size, size, precision, scale, name != pk and name not in notnull,
                                 default, collations.get(name), name == auto, name in generated))
        return out

    def _sample_columns(self, table_name):
        reply = self.connection.command({"find": table_name, "limit": SAMPLE})
        columns, types = [], {}
        for doc in reply["cursor"]["firstBatch"]:
            for k, v in doc.items():
                if k == "_id" or k in types:
                    continue
                columns.append(k)
                types[k] = _sampled_type(v)
        return columns, types

    def get_sequences(self, cursor, table_name, table_fields=()):
        entry = self._entries().get(table_name) or {}
        if entry.get("auto"):
            return [{"table": table_name, "column": entry["auto"]}]
        return []

    def get_relations(self, cursor, table_name):
        """{column: (referenced column, referenced table)} of the foreign keys
        CREATE/ALTER TABLE recorded in the table's entry."""
        out = {}
        for fk in (self._entries().get(table_name) or {}).get("fks") or ():
            to = fk.get("to") or [self.get_primary_key_column(cursor, fk["table"])]
            for c, t in zip(fk["columns"], to):
                out[c] = (t, fk["table"])
        return out

    def get_primary_key_columns(self, cursor, table_name):
        for c in self.get_constraints(cursor, table_name).values():
            if c["primary_key"]:
                return c["columns"]
        return None

    def get_constraints(self, cursor, table_name):
        """The collection's indexes: unique ones are UNIQUE constraints, the
        one CREATE TABLE made for PRIMARY KEY (named <table>_<column>_pk) is
        the primary key; _id_ (MongoDB's own) is left out. CHECK and FOREIGN
        KEY constraints come from the table's entry (checks, fks)."""
        entry = self._entries().get(table_name) or {}
        if entry.get("view"):
            return {}  # a view (CREATE VIEW) has no indexes: listIndexes refuses it
        try:
            reply = self.connection.command({"listIndexes": table_name}, outside_transaction=True)
        except self.connection.Database.DatabaseError:
            return {}
        out = {}
        for ck in entry.get("checks") or ():
            out[ck["name"]] = {"columns": list(ck["columns"]), "primary_key": False, "unique": False,
                               "foreign_key": None, "check": True, "index": False}
        for fk in entry.get("fks") or ():
            to = fk.get("to") or [self.get_primary_key_column(cursor, fk["table"])]
            out[fk["name"]] = {"columns": list(fk["columns"]), "primary_key": False, "unique": False,
                               "foreign_key": (fk["table"], to[0]), "check": False, "index": False}
        for ix in reply["cursor"]["firstBatch"]:
            if ix["name"] == "_id_":
                continue
            columns = list(ix["key"].keys())
            text = "_fts" in ix["key"]
            if text:  # a text index names its fields in weights, its key holds _fts/_ftsx (models.TextIndex)
                at = columns.index("_fts")
                columns = columns[:at] + [f for f in ix.get("weights", {}) if f != "$**"] + columns[at + 2:]
            out[ix["name"]] = {
                "columns": columns,
                "orders": ["DESC" if ix["key"].get(c) == -1 else "ASC" for c in columns],
                "primary_key": ix["name"].endswith("_pk") and bool(ix.get("unique")),
                "unique": bool(ix.get("unique")),
                "foreign_key": None,
                "check": False,
                "index": True,
                "type": "text" if text else "idx",
                "definition": None,
                "options": None,
            }
        return out
