"""How Django's ORM spells SQL for djongo's dialect (src/sql/dj_sql.h), and how
values cross between Python and BSON.

Dates: a datetime is a BSON date (UTC, floored to the millisecond) and
its microseconds below it in "<column>__us" (src/compile/exact_dt.c: the
driver binds a datetime with sub-millisecond microseconds as an exact
datetime, the compiler stores and compares the pair; datetime +/- duration
is DATETIME_ADD_US / US_ADD_DATETIME, datetime - datetime
DATETIME_DIFF_US, in microseconds); a DateField is the
date's midnight UTC; a TimeField is ISO text ("13:45:00.250000"); a
DurationField is microseconds (bigint). EXTRACT/DATE_PART take a time zone
as a third argument and DATE_TRUNC gives local wall-clock time, as
PostgreSQL's `x AT TIME ZONE tz` -- which is what Django's Trunc and
TruncDate expect back.
"""
import datetime
import decimal
import json
import uuid

from django.conf import settings
from django.db import DataError, NotSupportedError
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models.expressions import Col
from django.utils import timezone
from django.db.backends.utils import split_tzname_delta
from django.db.models.constants import OnConflict
from django.utils.dateparse import parse_date, parse_datetime, parse_duration, parse_time

from djongo._values import UNDEFINED


def sql_literal(value, binary=True):
    """A value as djongo's dialect writes it literally: in connection.queries
    (the SQL as run, parameters written in) and in DDL text (sqlmigrate,
    defaults; schema.py, where binary=False: a binary default cannot be
    written as SQL text). Booleans are the dialect's true/false."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, decimal.Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        if not binary:
            raise ValueError("binary defaults cannot be written as SQL text")
        return "X'%s'" % bytes(value).hex().upper()
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        value = value.isoformat()
    return "'%s'" % str(value).replace("'", "''")


class _DurationSQL(str):
    """The SQL of a DurationField's side of an arithmetic expression
    (format_for_duration_arithmetic): combine_duration_expression tells
    the duration from the datetime by it."""


class DatabaseOperations(BaseDatabaseOperations):
    compiler_module = "djongo.compiler"
    cast_char_field_without_max_length = "text"
    cast_data_types = {
        "AutoField": "integer",
        "BigAutoField": "bigint",
        "SmallAutoField": "smallint",
        "DateTimeField": "datetime",
        "DateField": "datetime",
        "DecimalField": "decimal",
        "FloatField": "real",
        "IntegerField": "integer",
        "BigIntegerField": "bigint",
        "SmallIntegerField": "smallint",
        "PositiveIntegerField": "integer",
        "PositiveSmallIntegerField": "smallint",
        "PositiveBigIntegerField": "bigint",
        "BooleanField": "bool",
        "CharField": "text",
        "TextField": "text",
    }
    # QuerySet.explain(): the read in MongoDB's explain command, its reply
    # as JSON text (src/compile/compile.c, explain_read)
    explain_prefix = "EXPLAIN"

    # the most names / model fields remembered by quote_name and
    # get_db_converters (a schema's worth; past it they compute each time)
    _KEEP_MAX = 4096

    def __init__(self, connection):
        super().__init__(connection)
        # both run for every column of every query (Django's compiler keeps
        # nothing between queries): what they answer is kept per name and
        # per model field, as Django's own quote_name_unless_alias keeps
        # quoted names per query
        self._quoted = {}
        self._field_converters = {}  # id(field) -> (field, its converters)

    # ---- names and statements ----

    def quote_name(self, name):
        quoted = self._quoted.get(name)
        if quoted is None:
            if name.startswith('"') and name.endswith('"'):
                quoted = name
            else:
                quoted = '"%s"' % name.replace('"', '""')
            if len(self._quoted) < self._KEEP_MAX:
                self._quoted[name] = quoted
        return quoted

    def no_limit_value(self):
        return -1  # the dialect's "no limit" (SQLite's), for OFFSET without LIMIT

    def max_name_length(self):
        return 120  # MongoDB namespaces are <= 255 bytes with the database name

    def pk_default_value(self):
        return "NULL"

    def prepare_sql_script(self, sql):
        return [s.strip() for s in sql.split(";") if s.strip()]

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if tables and allow_cascade:
            # as SQLite's: the tables whose foreign keys reference these
            # (transitively) are emptied too, or the deferred checks at
            # COMMIT would find their rows orphaned
            referencing = {}
            for name, entry in self.connection.introspection._entries().items():
                for fk in entry.get("fks") or ():
                    referencing.setdefault(fk["table"], set()).add(name)
            tables, todo = set(tables), list(tables)
            while todo:
                for child in referencing.get(todo.pop(), ()):
                    if child not in tables:
                        tables.add(child)
                        todo.append(child)
            tables = sorted(tables)
        sql = ["%s %s;" % (style.SQL_KEYWORD("DELETE FROM"), style.SQL_FIELD(self.quote_name(t))) for t in tables]
        if reset_sequences:
            sql.extend(self.sequence_reset_by_name_sql(style, [{"table": t} for t in tables]))
        return sql

    def sequence_reset_by_name_sql(self, style, sequences):
        """An AUTOINCREMENT counter is the "seq" of its table's entry in
        __djongo_tables (src/exec/exec.c, take_ids), as SQLite's is in
        sqlite_sequence: resetting it is SQLite's statement on that entry.
        Django resets the tables it has just emptied (flush, a
        TransactionTestCase with reset_sequences); the ids explicit INSERTs
        give move the counter on by themselves (sequence_reset_sql has
        nothing to do)."""
        from djongo.introspection import TABLES  # introspection imports this module

        if not sequences:
            return []
        return ["%s %s %s %s = 0 %s %s %s (%s);" % (
            style.SQL_KEYWORD("UPDATE"), style.SQL_TABLE(self.quote_name(TABLES)), style.SQL_KEYWORD("SET"),
            style.SQL_FIELD(self.quote_name("seq")), style.SQL_KEYWORD("WHERE"),
            style.SQL_FIELD(self.quote_name("table")), style.SQL_KEYWORD("IN"),
            ", ".join(sql_literal(seq["table"]) for seq in sequences))]

    def last_insert_id(self, cursor, table_name, pk_name):
        return cursor.lastrowid

    def return_insert_columns(self, fields):
        if not fields:
            return "", ()
        cols = ", ".join("%s.%s" % (self.quote_name(f.model._meta.db_table), self.quote_name(f.column)) for f in fields)
        return "RETURNING %s" % cols, ()

    def fetch_returned_insert_columns(self, cursor, returning_params):
        return cursor.fetchone()

    def fetch_returned_insert_rows(self, cursor):
        return cursor.fetchall()

    def insert_statement(self, on_conflict=None):
        if on_conflict == OnConflict.IGNORE:
            return "INSERT OR IGNORE INTO"
        return super().insert_statement(on_conflict=on_conflict)

    def on_conflict_suffix_sql(self, fields, on_conflict, update_fields, unique_fields):
        # bulk_create(update_conflicts=True): SQLite's spelling; the executor
        # runs one upsert per row keyed on unique_fields (src/compile/write.c)
        if on_conflict == OnConflict.UPDATE:
            return "ON CONFLICT(%s) DO UPDATE SET %s" % (
                ", ".join(map(self.quote_name, unique_fields)),
                ", ".join("%s = EXCLUDED.%s" % (f, f) for f in map(self.quote_name, update_fields)))
        return super().on_conflict_suffix_sql(fields, on_conflict, update_fields, unique_fields)

    def bulk_insert_sql(self, fields, placeholder_rows):
        first = placeholder_rows[0] if placeholder_rows else None
        if first is not None and placeholder_rows.count(first) == len(placeholder_rows):
            # every row alike (djongo.compiler gives plain rows one tuple): one row's text, repeated
            return "VALUES " + ", ".join(["(%s)" % ", ".join(first)] * len(placeholder_rows))
        return "VALUES " + ", ".join("(%s)" % ", ".join(row) for row in placeholder_rows)

    def distinct_sql(self, fields, params):
        if fields:
            raise NotSupportedError("DISTINCT ON fields is not supported by djongo")
        return ["DISTINCT"], []

    _TEXT_TYPES = {"CharField", "TextField", "SlugField", "EmailField", "URLField", "FilePathField", "FileField",
                   "ImageField", "GenericIPAddressField", "IPAddressField", None}

    def lookup_cast(self, lookup_type, internal_type=None):
        # pattern lookups on numbers and dates match their text, as on
        # PostgreSQL (x::text): a regular expression only matches strings
        if lookup_type in ("iexact", "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith",
                           "regex", "iregex") and internal_type not in self._TEXT_TYPES:
            if internal_type == "UUIDField":
                # a UUID's canonical text, with its dashes, as PostgreSQL's
                # uuid::text (a native UUID type: has_native_uuid_field)
                return "UUID_TEXT(%s)"
            return "CAST(%s AS text)"
        return "%s"

    def regex_lookup(self, lookup_type):
        return "%s ~* %s" if lookup_type == "iregex" else "%s ~ %s"

    def deferrable_sql(self):
        return " DEFERRABLE INITIALLY DEFERRED"

    def savepoint_create_sql(self, sid):
        return "SAVEPOINT %s" % self.quote_name(sid)

    def savepoint_commit_sql(self, sid):
        return "RELEASE SAVEPOINT %s" % self.quote_name(sid)

    def savepoint_rollback_sql(self, sid):
        return "ROLLBACK TO SAVEPOINT %s" % self.quote_name(sid)

    def last_executed_query(self, cursor, sql, params):
        """The SQL with its parameters written in as SQL literals, as
        Django's SQLite backend shows it in connection.queries; the MongoDB
        commands the statement ran go beside it, in each entry's "mongodb"
        key (base.DebugCursor) and in the "djongo" logger."""
        if not params:
            return sql if params is None else sql.replace("%%", "%")
        try:
            if isinstance(params, dict):  # paramstyle pyformat: %(name)s
                return sql % {k: sql_literal(v) for k, v in params.items()}
            return sql % tuple(sql_literal(p) for p in params)
        except (TypeError, ValueError):  # a placeholder count Django did not make
            return "%s -- params %r" % (sql, tuple(params))

    # ---- dates and times ----

    def _tz(self, tzname):
        """The time zone for the engine: an Olson name, or a fixed offset
        ("UTC+05:00" and "+05:00" as Django spells them -> "+05:00")."""
        if not (tzname and settings.USE_TZ):
            return None
        name, sign, offset = split_tzname_delta(tzname)
        if offset:
            return sign + offset if name.upper() in ("UTC", "GMT", "") else tzname
        return name

    def date_extract_sql(self, lookup_type, sql, params):
        return "EXTRACT(%s FROM %s)" % (self._extract_field(lookup_type), sql), params

    def _extract_field(self, lookup_type):
        field = lookup_type.upper()
        if field not in ("YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND", "WEEK", "WEEK_DAY", "ISO_WEEK_DAY",
                         "ISO_YEAR", "QUARTER"):
            raise ValueError("Invalid lookup type: %r" % lookup_type)
        return field

    def datetime_extract_sql(self, lookup_type, sql, params, tzname):
        tz = self._tz(tzname)
        if tz is None:
            return self.date_extract_sql(lookup_type, sql, params)
        # a name Django does not know is a ValueError before any SQL, as
        # without a time zone (and as PostgreSQL's backend does)
        return "DATE_PART(%%s, %s, %%s)" % sql, (self._extract_field(lookup_type).lower(), *params, tz)

    # A TimeField is ISO text "HH:MM:SS[.ffffff]": its parts are substrings
    _TIME_PARTS = {"hour": 1, "minute": 4, "second": 7}

    def time_extract_sql(self, lookup_type, sql, params):
        start = self._TIME_PARTS.get(lookup_type)
        if start is None:
            raise NotSupportedError("extracting %s from a TimeField (stored as ISO text)" % lookup_type)
        # (a datetime given where a time is meant is its UTC time: CAST AS time)
        return "CAST(SUBSTR(CAST(%s AS time), %d, 2) AS integer)" % (sql, start), params

    def date_trunc_sql(self, lookup_type, sql, params, tzname=None):
        # a datetime truncated to a DateField (Trunc(..., output_field=
        # DateField(), tzinfo=...)): the day in its time zone
        tz = self._tz(tzname)
        if tz is not None:
            return "DATE_TRUNC(%%s, %s, %%s)" % sql, (lookup_type, *params, tz)
        return "DATE_TRUNC(%%s, %s)" % sql, (lookup_type, *params)

    def datetime_trunc_sql(self, lookup_type, sql, params, tzname):
        tz = self._tz(tzname)
        if tz is None:
            return self.date_trunc_sql(lookup_type, sql, params)
        return "DATE_TRUNC(%%s, %s, %%s)" % sql, (lookup_type, *params, tz)

    def datetime_cast_date_sql(self, sql, params, tzname):
        return self.datetime_trunc_sql("day", sql, params, tzname)

    def datetime_cast_time_sql(self, sql, params, tzname):
        # the wall-clock time in the zone, as a TimeField stores it (ISO text)
        return "TIME_OF_DAY(%s, %%s)" % sql, (*params, self._tz(tzname) or "UTC")

    def time_trunc_sql(self, lookup_type, sql, params, tzname=None):
        keep = {"hour": (2, ":00:00"), "minute": (5, ":00"), "second": (8, "")}.get(lookup_type)
        if keep is None:
            raise NotSupportedError("truncating a TimeField to %s" % lookup_type)
        n, rest = keep
        # ISO text; a datetime (TruncHour(Now(), output_field=TimeField()))
        # is its UTC time first, not the text of the whole date -- its
        # wall-clock time in the time zone Trunc was given, if any
        tz = self._tz(tzname)
        if tz is not None:
            sql, params = "TIME_OF_DAY(%s, %%s)" % sql, (*params, tz)
        else:
            sql = "CAST(%s AS time)" % sql
        return ("(SUBSTR(%s, 1, %d) || '%s')" % (sql, n, rest) if rest else "SUBSTR(%s, 1, %d)" % (sql, n)), params

    def combine_duration_expression(self, connector, sub_expressions):
        lhs, rhs = sub_expressions
        if connector == "*":
            # a number times a duration (microseconds): a duration
            return "(%s * %s)" % (lhs, rhs)
        if connector == "/":
            # a duration over a number, not cut to an integer: the
            # converter rounds the microseconds as timedelta / x does
            return "(%s / CAST(%s AS real))" % (lhs, rhs)
        # datetime +/- duration, to the microsecond: the date and its
        # remainder move together (src/compile/exact_dt.c); the duration
        # is the side format_for_duration_arithmetic marked (either side
        # of a +), and each side keeps its place (its parameters' order)
        if connector not in ("+", "-"):
            raise NotSupportedError("%s on a duration" % connector)
        if isinstance(lhs, _DurationSQL):
            if connector == "-":
                raise NotSupportedError("a duration minus a datetime")
            return "US_ADD_DATETIME(%s, %s)" % (lhs, rhs)
        if connector == "-":
            rhs = "(-%s)" % rhs
        return "DATETIME_ADD_US(%s, %s)" % (lhs, rhs)

    def format_for_duration_arithmetic(self, sql):
        return _DurationSQL(sql)

    def subtract_temporals(self, internal_type, lhs, rhs):
        lhs_sql, lhs_params = lhs
        rhs_sql, rhs_params = rhs
        if internal_type == "TimeField":
            # ISO text: each side as microseconds since midnight
            return "(TIME_US(%s) - TIME_US(%s))" % (lhs_sql, rhs_sql), (*lhs_params, *rhs_params)
        # microseconds apart, the remainders included (src/compile/exact_dt.c)
        return "DATETIME_DIFF_US(%s, %s)" % (lhs_sql, rhs_sql), (*lhs_params, *rhs_params)

    # ---- Python -> BSON (the driver binds these types natively) ----

    def adapt_datefield_value(self, value):
        return value

    def adapt_datetimefield_value(self, value):
        if value is None or hasattr(value, "resolve_expression"):
            return value
        if timezone.is_aware(value):
            if not settings.USE_TZ:
                raise ValueError("djongo backend does not support timezone-aware datetimes when USE_TZ is False.")
        return value

    def adapt_timefield_value(self, value):
        if value is None or hasattr(value, "resolve_expression"):
            return value
        if timezone.is_aware(value):
            raise ValueError("djongo backend does not support timezone-aware times.")
        return value.isoformat()

    def adapt_decimalfield_value(self, value, max_digits=None, decimal_places=None):
        return value

    def adapt_ipaddressfield_value(self, value):
        return value or None

    def adapt_json_value(self, value, encoder):
        """A JSONField's value as BSON: the JSON data itself (a dict a
        document, a list an array), made plain JSON first as Django's other
        backends do (the encoder's output; tuples as lists, keys as text; a
        value JSON cannot hold raises TypeError), so what is stored is what
        json.loads would give back. JSON null, which Django passes here and
        never SQL NULL, is BSON undefined: why, in djongo/jsonfield.py."""
        if value is None:
            return UNDEFINED
        text = json.dumps(value, cls=encoder)
        try:
            return json.loads(text)
        except ValueError as e:
            raise DataError("the JSONField's encoder gave text that is not JSON: %s" % e) from e

    # ---- BSON -> Python ----

    # internal type -> the converter method's name: built once, not per column per query
    _CONVERTERS = {
        "DateTimeField": "convert_datetimefield_value",
        "DateField": "convert_datefield_value",
        "TimeField": "convert_timefield_value",
        "DecimalField": "convert_decimalfield_value",
        "UUIDField": "convert_uuidfield_value",
        "BooleanField": "convert_booleanfield_value",
        "DurationField": "convert_durationfield_value",
    }

    def get_db_converters(self, expression):
        field = expression.output_field
        kept = self._field_converters.get(id(field))
        if kept is not None and kept[0] is field:
            return list(kept[1])
        converters = self._db_converters(expression)
        # a model's field lives as long as its model (an expression's
        # output_field may be made per query: not kept); the entry holds the
        # field, so its id is not reused while the entry stands
        if getattr(field, "model", None) is not None and len(self._field_converters) < self._KEEP_MAX:
            self._field_converters[id(field)] = (field, tuple(converters))
        return converters

    def _db_converters(self, expression):
        """get_db_converters' answer, which depends on the output field
        alone (its class, internal type and flags)."""
        if getattr(expression.output_field, "encrypted", False):
            return []  # djongo.models.encrypted: converted after decrypting, in from_db_value
        converters = super().get_db_converters(expression)
        internal_type = expression.output_field.get_internal_type()
        name = self._CONVERTERS.get(internal_type)
        if name:
            converters.append(getattr(self, name))
        if internal_type == "JSONField" and not getattr(expression.output_field, "stored_as_bson", False):
            # Django's own JSONField (e.g. JSONObject's output) parses JSON
            # text; the engine answers documents: give it their JSON
            converters.append(self.convert_jsonfield_value)
        return converters

    def convert_jsonfield_value(self, value, expression, connection):
        """The stored BSON as the JSON text Django's JSONField.from_db_value
        parses (with the field's decoder): a string is a JSON string."""
        if value is None:
            return value
        from django.core.serializers.json import DjangoJSONEncoder

        return json.dumps(value, cls=DjangoJSONEncoder)

    def convert_datetimefield_value(self, value, expression, connection):
        if value is None:
            return None
        if isinstance(value, str):
            value = parse_datetime(value)
        elif isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            value = datetime.datetime(value.year, value.month, value.day)
        if settings.USE_TZ and value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value, datetime.timezone.utc)
        return value

    def convert_datefield_value(self, value, expression, connection):
        if isinstance(value, datetime.datetime):
            return value.date()
        if isinstance(value, str):
            return parse_date(value)
        return value

    def convert_timefield_value(self, value, expression, connection):
        if isinstance(value, str):
            return parse_time(value)
        if isinstance(value, datetime.datetime):
            return value.time()
        return value

    def convert_decimalfield_value(self, value, expression, connection):
        if value is None:
            return None
        if not isinstance(value, decimal.Decimal):
            value = decimal.Decimal(str(value))
        # a column's value to its decimal places; a computed one as the
        # database gave it (Sum("price", default=Pi()) is pi), as Django's
        # SQLite backend converts (Col only) and PostgreSQL's numeric is
        places = getattr(expression.output_field, "decimal_places", None) if isinstance(expression, Col) else None
        if places is not None and value.is_finite():
            try:
                value = value.quantize(decimal.Decimal(1).scaleb(-places))
            except decimal.InvalidOperation:
                pass
        return value

    def convert_uuidfield_value(self, value, expression, connection):
        if isinstance(value, str):
            return uuid.UUID(value)
        return value

    def convert_booleanfield_value(self, value, expression, connection):
        return bool(value) if value in (0, 1) else value

    def convert_durationfield_value(self, value, expression, connection):
        if isinstance(value, datetime.timedelta):
            return value
        if isinstance(value, str):
            return parse_duration(value)
        if isinstance(value, decimal.Decimal):  # a duration times a DecimalField
            value = float(value)
        return super().convert_durationfield_value(value, expression, connection)
