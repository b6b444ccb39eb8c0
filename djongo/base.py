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
  PORT, USER, PASSWORD   as Django's other backends (PORT for a host name)
  OPTIONS / CLIENT       MongoDB's connection-string options (readPreference,
            readPreferenceTags, w, retryWrites, tlsCAFile, appname, ...: the
            README's "Settings" section) and the original djongo's CLIENT
            keys (host, port, username, password), in either; each is set
            through libmongoc's URI API (connection_settings()), checked by
            djongo.E012/E015
  ENFORCE_SCHEMA the original djongo's key: False (default) lets models work
            without migrations (integer ids included); True rejects writes
            to tables no migration created
  LOGGING   the original djongo's key, accepted (use Django's LOGGING and
            the "djongo" logger)
  OPTIONS["SCHEMA_VALIDATION"]  "strict", "moderate" or "off" (default):
            migrations write a $jsonSchema validator made from each model
            (djongo/jsonschema.py), with that validationLevel
  OPTIONS["TTL_MONITOR_SLEEP_SECS"]  embedded engine: seconds between the
            passes deleting what TTL indexes expire (default 60, as mongod)
  OPTIONS["ENCRYPTION"]  client-side field-level encryption: KMS providers,
            key vault, default key (djongo/encryption.py)
"""
import contextlib
import logging
import os
import time
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
from djongo.cursor import CursorWrapper
from djongo.features import DatabaseFeatures
from djongo.introspection import TABLES, DatabaseIntrospection
from djongo import encryption
from djongo import collations  # noqa: F401  (columns with a db_collation, for vendor "djongo")
from djongo import jsonfield  # noqa: F401  (Django's JSONField lookups for vendor "djongo")
from djongo.operations import DatabaseOperations
from djongo.schema import DatabaseSchemaEditor
from djongo.validation import DatabaseValidation, settings_errors

logger = logging.getLogger("djongo")
register_settings_check()

# keys of OPTIONS / CLIENT that are not MongoDB connection-string options:
# the original djongo's host/credentials and djongo's own
_CLIENT_NON_URI = {"host", "port", "username", "password", "name", "enforce_schema", "ENFORCE_SCHEMA", "autocommit",
                  "TTL_MONITOR_SLEEP_SECS", "ENCRYPTION", "SCHEMA_VALIDATION"}


# the connection-string options the embedded engine takes too
_CONCERN_OPTIONS = {"readpreference", "readpreferencetags", "maxstalenessseconds", "readconcernlevel", "w",
                    "wtimeoutms", "journal"}


def _get_varchar_column(data):
    if data["max_length"] is None:
        return "varchar"
    return "varchar(%(max_length)s)" % data


def _is_path(host):
    return host.startswith(("/", ".", "~", "file:")) or ("/" in host and "://" not in host)


def connection_settings(settings_dict):
    """(host, options): what the driver connects with. host is a data
    directory, a mongodb:// or mongodb+srv:// URI as written, or a host
    name; options the MongoDB connection-string options of OPTIONS and
    CLIENT (OPTIONS wins), with USER/PASSWORD/PORT (or the original
    djongo's username/password/port) as "username"/"password"/"port". The
    driver sets each through libmongoc's URI API
    (src/transport/uri.c): nothing here is pasted into a URI."""
    client = dict(settings_dict.get("CLIENT") or {})
    client.update(settings_dict.get("OPTIONS") or {})
    host = settings_dict.get("HOST") or client.get("host") or ""
    if host and _is_path(host):
        # the embedded engine takes the read/write concern options (one
        # node's semantics: src/transport/concerns.c) and no other
        return (os.path.expanduser(host[5:] if host.startswith("file:") else host),
                {k: v for k, v in client.items() if k.lower() in _CONCERN_OPTIONS and v is not None})
    options = {k: v for k, v in client.items() if k not in _CLIENT_NON_URI and v is not None}
    user = settings_dict.get("USER") or client.get("username")
    password = settings_dict.get("PASSWORD") or client.get("password")
    if user:
        options["username"] = str(user)
        if password:
            options["password"] = str(password)
    if not host.startswith(("mongodb://", "mongodb+srv://")):
        host = host or "localhost"  # the original djongo's default
        port = settings_dict.get("PORT") or client.get("port")
        if port:
            options["port"] = int(port) if str(port).isdigit() else port
    return host, options


def _uri_value(key, v):
    """One option as connection-string text (for tools given a URI)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return ",".join("%s:%s" % kv for kv in v.items())
    if isinstance(v, (list, tuple)) and key.lower() == "compressors":
        return ",".join(v)
    return str(v)


def host_for_settings(settings_dict):
    """The settings as one MongoDB URI (or a data directory), for the
    tools that take a URI on their command line (dbshell's mongosh and
    djongo-sql); connections themselves use connection_settings()."""
    host, options = connection_settings(settings_dict)
    if _is_path(host):
        return host
    options = dict(options)
    user, password, port = options.pop("username", None), options.pop("password", None), options.pop("port", 27017)
    if host.startswith(("mongodb://", "mongodb+srv://")):
        uri = host
        if user:
            scheme, rest = host.split("://", 1)
            rest = rest.rsplit("@", 1)[-1]
            auth = urllib.parse.quote_plus(user) + (":" + urllib.parse.quote_plus(password) if password else "")
            uri = "%s://%s@%s" % (scheme, auth, rest)
    else:
        auth = ""
        if user:
            auth = urllib.parse.quote_plus(user) + (":" + urllib.parse.quote_plus(password) if password else "") + "@"
        uri = "mongodb://%s%s:%s/" % (auth, host, port)
    pairs = []
    for k, v in options.items():
        for one in (v if isinstance(v, (list, tuple)) and k.lower() != "compressors" else [v]):
            pairs.append((k, _uri_value(k, one)))
    if pairs:
        uri += ("&" if "?" in uri else "?") + urllib.parse.urlencode(pairs)
    return uri


class DebugCursor(CursorDebugWrapper):
    """connection.queries (DEBUG, CaptureQueriesContext): each entry's "sql"
    is the statement as Django's other backends show it, and its "mongodb"
    key the MongoDB commands it ran (a list of Extended JSON texts); its
    "time_ms" the time in milliseconds unrounded ("time" is Django's, to the
    millisecond: djongo.debug_toolbar.MongoPanel shows time_ms)."""

    @contextlib.contextmanager
    def debug_sql(self, sql=None, params=None, use_last_executed_query=False, many=False):
        log = self.db.queries_log
        before = len(log)
        start = time.perf_counter()
        try:
            with super().debug_sql(sql, params, use_last_executed_query, many):
                yield
        finally:
            ms = (time.perf_counter() - start) * 1000
            if len(log) > before or (log and log.maxlen and len(log) == log.maxlen):
                log[-1]["mongodb"] = list(getattr(self.cursor, "last_commands", ()))
                log[-1]["time_ms"] = ms


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
        "DecimalField": "decimal(%(max_digits)s, %(decimal_places)s)",
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
        host, options = connection_settings(settings_dict)
        return {"host": host, "options": options, "db": settings_dict["NAME"],
                "tables": Database.TABLES_STRICT if strict else Database.TABLES_IMPLICIT,
                "ttl_monitor_secs": int((settings_dict.get("OPTIONS") or {}).get("TTL_MONITOR_SLEEP_SECS", 0))}

    @async_unsafe
    def get_new_connection(self, conn_params):
        conn = Database.connect(conn_params["host"], db=conn_params["db"], autocommit=True,
                                tables=conn_params["tables"], ttl_monitor_secs=conn_params["ttl_monitor_secs"],
                                options=conn_params["options"])
        encryption.configure(conn, self.settings_dict)
        concerns = getattr(self, "djongo_concerns", None)
        if concerns:  # a djongo.concerns() block open while the connection was remade
            conn.set_concerns(concerns)
        return conn

    def init_connection_state(self):
        pass  # no session settings: time zones are handled in operations.py

    # The C connection keeps each statement's MongoDB commands (its trace
    # flag) for connection.queries (DEBUG: Django then asks for the debug
    # cursor) and for the djongo logger at DEBUG; set here, where Django has
    # just asked queries_logged, and only when it changes.
    def make_debug_cursor(self, cursor):
        c = cursor.connection._c
        if not c.trace:
            c.trace = True
        return DebugCursor(cursor, self)

    def make_cursor(self, cursor):
        c = cursor.connection._c
        trace = logger.isEnabledFor(logging.DEBUG)
        if c.trace is not trace:
            c.trace = trace
        return CursorWrapper(cursor, self)  # djongo/cursor.py: Django's, with less Python per call

    # (no async_unsafe of its own: its one caller, cursor(), has it)
    def create_cursor(self, name=None):
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
        """Whether the connection still answers (Django asks this at a
        request's start when CONN_HEALTH_CHECKS is on, and after errors):
        a ping -- on a server, over a pooled socket of this process
        (src/transport/pool.c); a process forked since the connection was
        made gets its own sockets or LMDB environment first. A connection
        that does not answer is closed and made again by Django. The ping
        is never in the open transaction (Django asks inside atomic blocks:
        TestCase before its constraint check), which MongoDB would refuse.
        Inside a transaction on a server the answer is also whether the
        transaction still runs commands: a failed command aborts a MongoDB
        transaction, as an error does PostgreSQL's, whose SELECT 1 then
        fails too -- so Django does not run its constraint check in it."""
        if self.connection is None or self.connection._closed:
            return False
        try:
            self.connection.command({"ping": 1}, db="admin", outside_transaction=True)
            if not self.connection.autocommit and not self.embedded:
                # a read a transaction allows, of one document at most
                self.connection.command({"find": TABLES, "filter": {}, "limit": 1, "projection": {"_id": 1}})
        except Database.Error:
            return False
        return True

    @property
    def embedded(self):
        """Whether HOST names a data directory (the embedded engine)."""
        return _is_path(self.get_connection_params()["host"])

    def command(self, cmd, db=None, drain=True, outside_transaction=False):
        """Runs one MongoDB command (a dict) on this connection's database,
        in its open transaction if any (outside_transaction: never -- for
        the catalog and ping, which a MongoDB transaction refuses: driver.py);
        cursors are drained unless drain is false (djongo.mongo.ChangeStream's
        getMores are its own)."""
        self.ensure_connection()
        with self.wrap_database_errors:
            return self.connection.command(cmd, db=db, drain=drain, outside_transaction=outside_transaction)
