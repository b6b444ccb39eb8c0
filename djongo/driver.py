"""djongo's DB-API 2.0 driver (PEP 249): SQL on MongoDB or the embedded engine.

    from djongo import driver
    conn = driver.connect("./var/data", db="demo")        # embedded engine
    conn = driver.connect("mongodb://host:27017", db="x")   # a MongoDB server
    cur = conn.cursor()
    cur.execute('SELECT "t"."a" FROM "t" WHERE "t"."b" = %s', [1])

The work is in C (djongo._driver, src/pydriver/module.c): compiling SQL,
running it, BSON <-> Python. This module is the PEP 249 surface over it, as
Django's own backends sit on sqlite3/psycopg. HOST rule: a path (absolute,
./relative or file:) is the embedded engine; mongodb://, mongodb+srv:// or a
host name is a server.

Transactions, as PEP 249 says: with autocommit off (the default) the first
statement -- a read too, or a command() -- begins a transaction that lasts
until commit() or rollback(), so every read in it sees one snapshot plus the
transaction's own writes (a read that ran outside would let two "read, +1,
save" transactions lose an update); with autocommit on (what Django's
backend uses between atomic() blocks) each statement commits by itself.
BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE and ROLLBACK TO work as SQL
statements. Every write statement is atomic: a multi-row INSERT that hits a
duplicate key leaves no rows.

  - embedded engine (LMDB: one writer at a time, readers never blocked):
    a transaction begun by a read is a snapshot that holds no lock, as
    SQLite's in WAL mode; its first write (or SAVEPOINT, or SELECT ... FOR
    UPDATE) takes the data directory's write lock, waiting for another
    writer -- unless another transaction committed since the snapshot was
    taken: then that statement raises OperationalError with code 112
    (WriteConflict), and the transaction must be rolled back and retried
    (it would otherwise write on stale reads). Within one process, a
    snapshot transaction that finds another one writing fails so at once
    (that one's commit would make it stale). A transaction begun by a
    write, DDL, SAVEPOINT or SELECT ... FOR UPDATE, or by SQL's BEGIN,
    takes the write lock at once and cannot meet that conflict. Why not
    always take the lock at the first statement: read-only transactions
    (and Django's TestCase blocks that only read) would then queue behind
    each other and behind every writer, for nothing. SELECT ... FOR UPDATE
    is the way to read-then-write without a retry loop. Savepoints are
    LMDB nested transactions; a transaction belongs to the thread that
    began it.
  - MongoDB server: a session with a multi-document transaction (needs a
    replica set), started at the first statement, so MongoDB's snapshot
    and WriteConflict rules apply (WriteConflict, code 112, labelled
    TransientTransactionError: retry the transaction); savepoints raise
    NotSupportedError, as MongoDB has none -- except on djongo-server,
    which has them (djongo_has("savepoints")): nested engine transactions
    inside the MongoDB one, where a failed statement under a savepoint
    leaves the transaction open for ROLLBACK TO, as SQL does.
  - SELECT ... FOR UPDATE claims the rows it reads (of its first table) by
    writing them, unchanged, in the transaction (the reserved field
    __djongo_claim is set and unset), so another claimer or writer of them
    waits (embedded) or gets WriteConflict (MongoDB); outside a transaction
    it is a plain read. OF, NOWAIT, SKIP LOCKED and NO KEY raise
    NotSupportedError.
"""
import os as _os

# libmongoc keeps performance counters in /dev/shm/mongoc-<pid>, created when
# the library loads and removed only at a normal exit: a process that ends
# with os._exit (Django's forked test workers) leaves the file behind, and a
# later process given that pid prints "Falling back to malloc for counters".
# djongo reads none of them; libmongoc's documented switch turns them off,
# and it must be set before the extension (and so libmongoc) is loaded. A
# user's own setting wins.
# https://www.mongodb.com/docs/languages/c/c-driver/current/libmongoc/basic-troubleshooting/
_os.environ.setdefault("MONGOC_DISABLE_SHM", "1")

from djongo._exceptions import (DatabaseError, DataError, Error, IntegrityError, InterfaceError,  # noqa: E402,F401
                                InternalError, NotSupportedError, OperationalError, ProgrammingError, Warning)
from djongo import _driver  # noqa: E402

import collections.abc as _abc
import datetime as _dt
import logging as _logging
import re as _re
import time as _time

# DEBUG: each statement with the MongoDB commands it ran
_log = _logging.getLogger("djongo")

apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections
paramstyle = "format"  # and pyformat: parameters given as a mapping (_pyformat)

_PYFORMAT = _re.compile(r"%%|%\(([^)]*)\)s")


def _pyformat(sql, params):
    """paramstyle pyformat -- %(name)s placeholders and a mapping, which
    Django's backends accept beside %s (features.supports_paramstyle_pyformat)
    -- as format: each %(name)s becomes %s and its value the next in the
    list (a name may come twice); %% stays as it is."""
    values = []

    def placeholder(m):
        if m.group(1) is None:
            return "%%"
        try:
            values.append(params[m.group(1)])
        except KeyError:
            raise ProgrammingError("no parameter named %r in the mapping" % m.group(1)) from None
        return "%s"

    return _PYFORMAT.sub(placeholder, sql), values


def _bind(sql, params):
    """(sql, params) as the C driver takes them: a list or tuple, or None."""
    if isinstance(params, _abc.Mapping):
        return _pyformat(sql, params)
    if params is not None and not isinstance(params, (list, tuple)):
        raise ProgrammingError("parameters must be a list or tuple (paramstyle 'format': %s) or a mapping "
                               "(paramstyle 'pyformat': %(name)s)")
    return sql, params

# PEP 249 constructors: the Python values the driver binds (see _driver.c)
Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime
Binary = bytes


def DateFromTicks(ticks):
    return Date(*_time.localtime(ticks)[:3])


def TimeFromTicks(ticks):
    return Time(*_time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks):
    return Timestamp(*_time.localtime(ticks)[:6])


_TYPE_NAMES = {str: "TEXT", int: "INTEGER", bool: "BOOLEAN", float: "REAL", bytes: "BLOB",
               _dt.datetime: "TIMESTAMP", _dt.date: "DATE", _dt.time: "TIME", dict: "OBJECT", list: "ARRAY"}


def _type_code(rows, i):
    """A column's type_code is the type CREATE TABLE declared for it; for
    computed columns and tables made by other tools (documents carry no
    column types), the SQL name of its first non-NULL value's type (None
    when all are NULL)."""
    for row in rows:
        v = row[i]
        if v is not None:
            t = type(v)
            return _TYPE_NAMES.get(t) or {"Decimal": "DECIMAL", "ObjectId": "OBJECTID", "UUID": "UUID"}.get(
                t.__name__, t.__name__.upper())
    return None


class _DBAPITypeObject:
    """A PEP 249 type object: compares equal to the names of the SQL types
    it stands for (cursor.description's type_code is such a name)."""

    def __init__(self, *names):
        self.names = frozenset(n.upper() for n in names)

    def __eq__(self, other):
        # "varchar(20)", "integer unsigned": the type's first word decides
        if not isinstance(other, str):
            return False
        words = other.upper().split("(")[0].split()
        return bool(words) and words[0] in self.names

    def __hash__(self):
        return hash(self.names)


STRING = _DBAPITypeObject("TEXT", "VARCHAR", "CHAR", "STRING", "UUID")
BINARY = _DBAPITypeObject("BLOB", "BINARY", "BYTEA", "VARBINARY")
NUMBER = _DBAPITypeObject("INTEGER", "INT", "BIGINT", "SMALLINT", "REAL", "FLOAT", "DOUBLE", "DECIMAL", "NUMERIC",
                          "BOOL", "BOOLEAN")
DATETIME = _DBAPITypeObject("DATETIME", "TIMESTAMP", "DATE", "TIME")
ROWID = _DBAPITypeObject("ROWID", "OBJECTID")


def translate(sql, params=None, db="test"):
    """The MongoDB commands (relaxed Extended JSON strings) SQL compiles to,
    without running it. Auto-increment ids are only given when it runs."""
    return _driver.translate(sql, params, db)


# tables= of connect(): how tables CREATE TABLE never made are treated
TABLES_PLAIN, TABLES_IMPLICIT, TABLES_STRICT = 0, 1, 2


def connect(host, db="test", autocommit=False, tables=TABLES_PLAIN, ttl_monitor_secs=0, options=None):
    """A connection to HOST (see the module docstring), database DB.
    tables: TABLES_PLAIN (collections as they are), TABLES_IMPLICIT (an
    INSERT ... RETURNING a column it does not give makes that column the
    table's auto-increment key: models used without migrations) or
    TABLES_STRICT (writes to a table CREATE TABLE never made fail).
    ttl_monitor_secs: on the embedded engine, seconds between the passes
    that delete what TTL indexes expire (0: 60, as mongod; the first
    connection to a data directory in the process sets it).
    options (a server HOST only): MongoDB connection-string options as a
    dict -- {"readPreference": "secondary", "readPreferenceTags": [{"dc":
    "ny"}], "w": "majority", "retryWrites": True, "tlsCAFile": path,
    "appname": "shop", "compressors": ["zstd"], ...} -- plus "username",
    "password" and, with a host name, "port"; each is set through
    libmongoc's URI API over what HOST's URI says. A bad one raises
    OperationalError naming it."""
    return Connection(host, db, autocommit, tables, ttl_monitor_secs, options)


def check_server_options(host, options):
    """What connect() would refuse in a server HOST and its options (a
    message), or None; no network. The settings check's words."""
    return _driver.check_server_options(host, options or {})



def _c_flag(name, doc):
    """A Connection property that is the C connection's flag of that name."""
    return property(lambda self: getattr(self._c, name), lambda self, on: setattr(self._c, name, bool(on)), doc=doc)

class Connection:
    def __init__(self, host, db, autocommit=False, tables=TABLES_PLAIN, ttl_monitor_secs=0, options=None):
        self._c = _driver.Connection(host, db, autocommit, tables, ttl_monitor_secs, options)
        self._db = db
        self._closed = False

    def cursor(self):
        if self._closed:
            raise InterfaceError("the connection is closed")
        return Cursor(self)

    def commit(self):
        if self._closed:
            raise InterfaceError("the connection is closed")
        self._c.commit()

    def rollback(self):
        if self._closed:
            raise InterfaceError("the connection is closed")
        self._c.rollback()

    def close(self):
        """Closes the connection; an uncommitted transaction is rolled back.
        PEP 249: the connection is unusable afterwards, closing included."""
        if self._closed:
            raise InterfaceError("the connection is already closed")
        self._c.close()
        self._closed = True

    @property
    def autocommit(self):
        return self._c.autocommit

    @autocommit.setter
    def autocommit(self, on):
        """Turning autocommit on commits the open transaction."""
        if self._closed:
            raise InterfaceError("the connection is closed")
        self._c.autocommit = bool(on)

    # client-side field-level encryption (src/crypt; djongo/encryption.py)
    def set_encryption(self, kms_providers, key_vault):
        """KMS providers (MongoDB's kmsProviders) and the key vault
        ("db.collection") for encrypt/decrypt on this connection."""
        self._c.set_encryption(kms_providers, key_vault)

    def encrypt(self, value, algorithm, key_alt_name):
        """value -> djongo._values.Encrypted (BSON binary subtype 6)."""
        return self._c.encrypt(value, algorithm, key_alt_name)

    def decrypt(self, value):
        return self._c.decrypt(value)

    def create_data_key(self, master_key, alt_names=()):
        return self._c.create_data_key(master_key, list(alt_names))

    def rewrap_many_data_key(self, filter=None, master_key=None):
        return self._c.rewrap_many_data_key(filter, master_key)

    def command(self, cmd, db=None, drain=True, outside_transaction=False):
        """Runs one MongoDB command (a dict, the command's name first) on
        database DB (default: the connection's), in the open transaction if
        any (with autocommit off it begins one, as a statement does; on a
        MongoDB server, commands a transaction cannot run, listCollections
        for one, then need autocommit or outside_transaction) -- for what SQL
        does not say (listing collections and indexes, dropping a database).
        outside_transaction: never in the open transaction, and beginning
        none (on a server it goes without the transaction's session; the
        embedded engine runs it as any command). A reply's cursor is
        drained: its firstBatch holds every document -- unless drain is
        false (a change stream's cursor never ends: its caller asks for
        each batch)."""
        if self._closed:
            raise InterfaceError("the connection is closed")
        db = db or self._db
        reply = self._c.command(db, cmd, outside_transaction)
        cursor = reply.get("cursor")
        if drain and isinstance(cursor, dict) and "firstBatch" in cursor and cursor.get("id"):
            docs = list(cursor["firstBatch"])
            coll = cursor.get("ns", "").split(".", 1)[-1]
            cid = cursor["id"]
            from bson import Int64  # getMore takes a long, as MongoDB's cursor ids are
            while cid:
                more = self._c.command(db, {"getMore": Int64(cid), "collection": coll}, outside_transaction)["cursor"]
                docs.extend(more["nextBatch"])
                cid = more["id"]
            cursor["firstBatch"], cursor["id"] = docs, 0
        return reply

    def set_concerns(self, options):
        """Read preference, read concern and write concern (a dict of
        connection-string options: readPreference, readConcernLevel, w,
        wTimeoutMS, journal, ...) for what runs from now on, over the
        connection's own; None: the connection's own again
        (src/transport/dj_transport.h, dj_transport_set_concerns)."""
        if self._closed:
            raise InterfaceError("the connection is closed")
        self._c.set_concerns(options)

    def djongo_has(self, name):
        """Whether the server is djongo's and has that extension (hello's
        djongo document, e.g. "savepoints": SAVEPOINT, RELEASE and ROLLBACK
        TO inside a transaction); always true on the embedded engine."""
        if self._closed:
            raise InterfaceError("the connection is closed")
        return self._c.djongo_has(name)

    trace = _c_flag("trace", "Keep each statement's MongoDB commands (Cursor.last_commands).")
    fk_checks = _c_flag("fk_checks", "Whether writes check FOREIGN KEYs (src/exec/constraint.c).")

    @property
    def in_transaction(self):
        return not self._closed and self._c.in_transaction

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._closed:
            self.close()

    Error, InterfaceError, DatabaseError, DataError = Error, InterfaceError, DatabaseError, DataError
    OperationalError, IntegrityError, InternalError = OperationalError, IntegrityError, InternalError
    ProgrammingError, NotSupportedError, Warning = ProgrammingError, NotSupportedError, Warning


class Cursor:
    arraysize = 1
    # a new cursor's state (class attributes until a statement sets them:
    # a cursor is made per ORM query, and each attribute set costs)
    _desc = _desc_rows = lastrowid = None
    rowcount = -1
    _pos = 0
    _closed = False

    def __init__(self, connection):
        self.connection = connection
        self._rows = []

    @property
    def description(self):
        """PEP 249's description. The C half keeps it per statement with the
        declared types; a column without one (computed, joined, a table
        made by other tools) is named from this execution's rows -- here,
        when asked: the ORM never asks, so its queries skip that walk."""
        if self._desc_rows is not None:
            rows, self._desc_rows = self._desc_rows, None
            self._desc = tuple(d if d[1] is not None else (d[0], _type_code(rows, i)) + d[2:]
                               for i, d in enumerate(self._desc))
        return self._desc

    @description.setter
    def description(self, value):
        self._desc, self._desc_rows = value, None

    def _check(self):
        if self._closed or self.connection._closed:
            raise InterfaceError("the cursor is closed")

    def execute(self, sql, params=None):
        # (the checks of _check and _bind written out for the common case:
        # one statement per ORM query, each Python call counts)
        if self._closed or self.connection._closed:
            raise InterfaceError("the cursor is closed")
        if params is not None and type(params) is not list and type(params) is not tuple:
            sql, params = _bind(sql, params)
        c = self.connection._c
        logging = _log.isEnabledFor(_logging.DEBUG)
        if logging:
            c.trace = True
        try:
            description, rows, rowcount, lastrowid, _txn, untyped = c.execute(sql, params)
        finally:
            if logging:
                _log.debug("%s; params=%r -> %s", sql, params, " ; ".join(c.last_commands))
        self._desc, self._desc_rows = description, rows if untyped else None  # (see description)
        self._rows, self._pos = rows, 0
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        return self

    def executemany(self, sql, seq_of_params):
        """An INSERT of one VALUES row runs as multi-row inserts (in C);
        anything else runs row by row."""
        self._check()
        seq = seq_of_params if isinstance(seq_of_params, (list, tuple)) else list(seq_of_params)
        if seq and isinstance(seq[0], _abc.Mapping):
            bound = [_bind(sql, params) for params in seq]
            sql, seq = bound[0][0], [params for _, params in bound]
        for params in seq:
            _bind(sql, params)
        done = self.connection._c.insertmany(sql, seq) if seq else None
        if done is not None:
            self.rowcount, self.lastrowid = done
            self.description = None
            self._rows, self._pos = [], 0
            return
        total = 0
        for params in seq:
            self.execute(sql, params)
            total += max(self.rowcount, 0)
        self.rowcount = total
        self.description = None

    @property
    def last_commands(self):
        """The MongoDB commands (relaxed Extended JSON) of the last statement,
        when the connection's tracing is on (connection.trace = True)."""
        return self.connection._c.last_commands

    def fetchone(self):
        self._check()
        if self._desc is None:
            raise ProgrammingError("the last statement returned no rows")
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return row

    def fetchmany(self, size=None):
        if self._closed or self.connection._closed:  # _check, written out: Django fetches by fetchmany
            raise InterfaceError("the cursor is closed")
        if self._desc is None:
            raise ProgrammingError("the last statement returned no rows")
        size = self.arraysize if size is None else size
        rows = self._rows[self._pos:self._pos + size]
        self._pos += len(rows)
        return rows

    def fetchall(self):
        self._check()
        if self._desc is None:
            raise ProgrammingError("the last statement returned no rows")
        rows = self._rows[self._pos:]
        self._pos = len(self._rows)
        return rows

    def __iter__(self):
        return iter(self.fetchone, None)

    def close(self):
        self._closed = True
        self._rows = []

    def setinputsizes(self, sizes):
        pass

    def setoutputsize(self, size, column=None):
        pass
