"""Django's database backend for djongo: ENGINE 'djongo'.

The SQL Django writes (operations.py spells it in djongo's dialect) goes to
the C DB-API driver (djongo.driver), which compiles it to MongoDB commands
and runs them on the embedded engine or a MongoDB server. This module only
turns settings into a connection and says how Django's transactions map
onto the driver's (autocommit, savepoints) -- the rest is the files beside
it, one job each, as in Django's own backends.

Settings (DATABASES['default']):
  NAME      the MongoDB database name
  HOST      a filesystem path (or file: URI): the embedded engine's data
            directory; mongodb:// or mongodb+srv:// URI, or host name: a
            MongoDB server; none: mongodb://localhost:27017 (as the
            original djongo)
  PORT, USER, PASSWORD   for a host name, as Django's other backends
  OPTIONS / CLIENT       the original djongo's CLIENT keys (host, port,
            username, password, authSource, authMechanism, any libmongoc
            URI option) are accepted in either
  ENFORCE_SCHEMA the original djongo's key: False (default) lets models work
            without migrations (integer ids included); True rejects writes
            to tables no migration created
  LOGGING   the original djongo's key, accepted (use Django's LOGGING and
            the "djongo" logger)
"""
import contextlib
import logging
import os
import urllib.parse

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorDebugWrapper
from django.utils.asyncio import async_unsafe

from djongo import driver as Database
from djongo import register_settings_check
from djongo.client import DatabaseClient
from djongo.creation import DatabaseCreation
from djongo.features import DatabaseFeatures
from djongo.introspection import DatabaseIntrospection
from djongo import jsonfield  # noqa: F401  (Django's JSONField lookups for vendor "djongo")
from djongo.operations import DatabaseOperations
from djongo.schema import DatabaseSchemaEditor
from djongo.validation import DatabaseValidation, settings_errors

logger = logging.getLogger("djongo")
register_settings_check()

# URI options of the original djongo's CLIENT dict that are not host/credentials
_CLIENT_NON_URI = {"host", "port", "username", "password", "name", "enforce_schema", "ENFORCE_SCHEMA"}


def _get_varchar_column(data):
    if data["max_length"] is None:
        return "varchar"
    return "varchar(%(max_length)s)" % data


def _is_path(host):
    return host.startswith(("/", ".", "~", "file:")) or ("/" in host and "://" not in host)


def host_for_settings(settings_dict):
    """The driver's HOST (a data directory or a MongoDB URI) from Django's
    settings plus the original djongo's CLIENT keys."""
    client = dict(settings_dict.get("CLIENT") or {})
    options = dict(settings_dict.get("OPTIONS") or {})
    client.update({k: v for k, v in options.items() if k not in ("autocommit", "ENFORCE_SCHEMA")})
    host = settings_dict.get("HOST") or client.get("host") or ""
    if host and _is_path(host):
        return os.path.expanduser(host[5:] if host.startswith("file:") else host)
    if host.startswith(("mongodb://", "mongodb+srv://")):
        uri = host
    else:
        host = host or "localhost"
        port = settings_dict.get("PORT") or client.get("port") or 27017
        user = settings_dict.get("USER") or client.get("username")
        password = settings_dict.get("PASSWORD") or client.get("password")
        auth = ""
        if user:
            auth = urllib.parse.quote_plus(str(user))
            if password:
                auth += ":" + urllib.parse.quote_plus(str(password))
            auth += "@"
        uri = "mongodb://%s%s:%s/" % (auth, host, port)
    extra = {k: v for k, v in client.items() if k not in _CLIENT_NON_URI and v is not None}
    if extra:
        uri += ("&" if "?" in uri else "?") + urllib.parse.urlencode(
            {k: str(v).lower() if isinstance(v, bool) else v for k, v in extra.items()})
    return uri


class DebugCursor(CursorDebugWrapper):
    """connection.queries (DEBUG, CaptureQueriesContext): each entry's "sql"
    is the statement as Django's other backends show it, and its "mongodb"
    key the MongoDB commands it ran (a list of Extended JSON texts)."""

    @contextlib.contextmanager
    def debug_sql(self, sql=None, params=None, use_last_executed_query=False, many=False):
        log = self.db.queries_log
        before = len(log)
        try:
            with super().debug_sql(sql, params, use_last_executed_query, many):
                yield
        finally:
            if len(log) > before or (log and log.maxlen and len(log) == log.maxlen):
                log[-1]["mongodb"] = list(getattr(self.cursor, "last_commands", ()))


class DatabaseWrapper(BaseDatabaseWrapper):
    vendor = "djongo"
    display_name = "MongoDB (djongo)"

    # Column types CREATE TABLE records (cursor.description, inspectdb); the
    # documents themselves hold any BSON type. AUTOINCREMENT keys come from a
    # per-table counter that never reuses an id (src/exec/dj_exec.h).
    data_types = {
        "AutoField": "integer",
        "BigAutoField": "bigint",
        "BinaryField": "blob",
        "BooleanField": "bool",
        "CharField": _get_varchar_column,
        "DateField": "date",
        "DateTimeField": "datetime",
        "DecimalField": "decimal",
        "DurationField": "bigint",
        "FileField": "varchar(%(max_length)s)",
        "FilePathField": "varchar(%(max_length)s)",
        "FloatField": "real",
        "IntegerField": "integer",
        "BigIntegerField": "bigint",
        "IPAddressField": "char(15)",
        "GenericIPAddressField": "char(39)",
        "JSONField": "json",
        # djongo.models' document fields
        "EmbeddedField": "document",
        "ArrayField": "array",
        "ArrayReferenceField": "array",
        "ObjectIdField": "objectid",
        "OneToOneField": "integer",
        "PositiveBigIntegerField": "bigint unsigned",
        "PositiveIntegerField": "integer unsigned",
        "PositiveSmallIntegerField": "smallint unsigned",
        "SlugField": "varchar(%(max_length)s)",
        "SmallAutoField": "integer",
        "SmallIntegerField": "smallint",
        "TextField": "text",
        "TimeField": "time",
        "UUIDField": "uuid",
    }
    # CHECK constraints on columns, as SQLite's (a collection validator:
    # src/compile/ddl.c)
    data_type_check_constraints = {
        "PositiveBigIntegerField": '"%(column)s" >= 0',
        "PositiveIntegerField": '"%(column)s" >= 0',
        "PositiveSmallIntegerField": '"%(column)s" >= 0',
    }
    data_types_suffix = {
        "AutoField": "AUTOINCREMENT",
        "BigAutoField": "AUTOINCREMENT",
        "SmallAutoField": "AUTOINCREMENT",
    }
    # LIKE is case-sensitive in djongo's dialect and ILIKE is not (both
    # become MongoDB regular expressions, ILIKE with the i option, which
    # folds case across Unicode). Django escapes %, _ and \ in the values of
    # these lookups, iexact included.
    operators = {
        "exact": "= %s",
        "iexact": "ILIKE %s ESCAPE '\\'",
        "contains": "LIKE %s ESCAPE '\\'",
        "icontains": "ILIKE %s ESCAPE '\\'",
        "regex": "~ %s",
        "iregex": "~* %s",
        "gt": "> %s",
        "gte": ">= %s",
        "lt": "< %s",
        "lte": "<= %s",
        "startswith": "LIKE %s ESCAPE '\\'",
        "endswith": "LIKE %s ESCAPE '\\'",
        "istartswith": "ILIKE %s ESCAPE '\\'",
        "iendswith": "ILIKE %s ESCAPE '\\'",
    }
    pattern_esc = r"REPLACE(REPLACE(REPLACE({}, '\', '\\'), '%%', '\%%'), '_', '\_')"
    pattern_ops = {
        "contains": r"LIKE '%%' || {} || '%%' ESCAPE '\'",
        "icontains": r"ILIKE '%%' || {} || '%%' ESCAPE '\'",
        "startswith": r"LIKE {} || '%%' ESCAPE '\'",
        "istartswith": r"ILIKE {} || '%%' ESCAPE '\'",
        "endswith": r"LIKE '%%' || {} ESCAPE '\'",
        "iendswith": r"ILIKE '%%' || {} ESCAPE '\'",
    }

    Database = Database
    SchemaEditorClass = DatabaseSchemaEditor
    client_class = DatabaseClient
    creation_class = DatabaseCreation
    features_class = DatabaseFeatures
    introspection_class = DatabaseIntrospection
    ops_class = DatabaseOperations
    validation_class = DatabaseValidation

    def get_connection_params(self):
        settings_dict = self.settings_dict
        if not settings_dict["NAME"]:
            raise ImproperlyConfigured("settings.DATABASES is improperly configured. Please supply the NAME value.")
        # once per wrapper: a typo in the settings stops the connection with
        # the check's words instead of being ignored
        if not getattr(self, "_settings_checked", False):
            errors = settings_errors(self.alias, settings_dict)
            if errors:
                raise ImproperlyConfigured("\n".join("%s %s%s" % (e.id, e.msg, " (HINT: %s)" % e.hint if e.hint else "")
                                                     for e in errors))
            self._settings_checked = True
        # ENFORCE_SCHEMA (the original djongo's key; default False): False lets
        # models work without migrations (collections appear on first write,
        # integer ids come from a counter the first INSERT sets up); True
        # rejects writes to tables no migration created
        strict = settings_dict.get("ENFORCE_SCHEMA", (settings_dict.get("OPTIONS") or {}).get("ENFORCE_SCHEMA", False))
        return {"host": host_for_settings(settings_dict), "db": settings_dict["NAME"],
                "tables": Database.TABLES_STRICT if strict else Database.TABLES_IMPLICIT}

    @async_unsafe
    def get_new_connection(self, conn_params):
        return Database.connect(conn_params["host"], db=conn_params["db"], autocommit=True,
                                tables=conn_params["tables"])

    def init_connection_state(self):
        pass  # no session settings: time zones are handled in operations.py

    def make_debug_cursor(self, cursor):
        return DebugCursor(cursor, self)

    @async_unsafe
    def create_cursor(self, name=None):
        # connection.queries (DEBUG) carries each statement's MongoDB commands
        self.connection.trace = self.queries_logged or logger.isEnabledFor(logging.DEBUG)
        return self.connection.cursor()

    def _set_autocommit(self, autocommit):
        with self.wrap_database_errors:
            self.connection.autocommit = autocommit

    def disable_constraint_checking(self):
        """Writes stop checking foreign keys (loaddata; it then calls
        check_constraints()); checks already deferred to COMMIT stay."""
        self.ensure_connection()
        self.connection.fk_checks = False
        return True

    def enable_constraint_checking(self):
        self.ensure_connection()
        self.connection.fk_checks = True

    def check_constraints(self, table_names=None):
        """Raises IntegrityError (SQLite's words) for the first row of
        `table_names` (all tables: None) whose foreign key holds a value no
        row of the referenced table has: one query per foreign key that
        CREATE/ALTER TABLE recorded (a LEFT JOIN keeping the rows without a
        match). Django calls it after loaddata, whose writes go unchecked."""
        with self.cursor() as cursor:
            if table_names is None:
                table_names = self.introspection.table_names(cursor)
            entries = self.introspection._entries()
            qn = self.ops.quote_name
            for table in table_names:
                for fk in (entries.get(table) or {}).get("fks") or ():
                    to = fk.get("to") or [self.introspection.get_primary_key_column(cursor, fk["table"])]
                    pk = self.introspection.get_primary_key_column(cursor, table) or "_id"
                    on = " AND ".join('REFERRING.%s = REFERRED.%s' % (qn(c), qn(t)) for c, t in zip(fk["columns"], to))
                    cursor.execute(
                        "SELECT REFERRING.%s, %s FROM %s REFERRING LEFT JOIN %s REFERRED ON %s WHERE %s AND REFERRED.%s IS NULL"
                        % (qn(pk), ", ".join("REFERRING.%s" % qn(c) for c in fk["columns"]), qn(table), qn(fk["table"]),
                           on, " AND ".join("REFERRING.%s IS NOT NULL" % qn(c) for c in fk["columns"]), qn(to[0])))
                    bad = cursor.fetchone()
                    if bad:
                        raise IntegrityError(
                            "The row in table '%s' with primary key '%s' has an invalid foreign key: %s.%s contains a "
                            "value '%s' that does not have a corresponding value in %s.%s."
                            % (table, bad[0], table, ", ".join(fk["columns"]), bad[1] if len(bad) == 2 else bad[1:],
                               fk["table"], ", ".join(to)))

    def is_usable(self):
        return self.connection is not None and not self.connection._closed

    @property
    def embedded(self):
        """Whether HOST names a data directory (the embedded engine)."""
        return _is_path(self.get_connection_params()["host"])

    def command(self, cmd, db=None, drain=True):
        """Runs one MongoDB command (a dict) on this connection's database,
        in its open transaction if any; cursors are drained unless drain
        is false (djongo.mongo.ChangeStream's getMores are its own)."""
        self.ensure_connection()
        with self.wrap_database_errors:
            return self.connection.command(cmd, db=db, drain=drain)
