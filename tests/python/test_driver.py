"""The DB-API driver (djongo.driver over the C core djongo._driver), installed.

Round trips of every parameter type with their boundaries, PEP 249 cursor
behaviour, the error mapping, AUTOINCREMENT keys and the HOST rule. What
MongoDB keeps is documented here by assertion: datetimes to the millisecond,
Decimal128 to 34 significant digits, integers within int64.
"""
import datetime
import json
import decimal
import uuid

import bson
import pytest

from concurrently import in_threads
from djongo import driver


@pytest.fixture
def cur(tmp_path):
    conn = driver.connect(str(tmp_path / "db"), db="t")
    c = conn.cursor()
    c.execute('CREATE TABLE "x" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "v" text NULL)')
    yield c
    conn.close()


ROUND_TRIPS = [
    None, True, False, 0, -1, 2**31 - 1, 2**31, -2**31 - 1, 2**63 - 1, -2**63, 0.0, -1.5, 1e308, float("inf"),
    "", "héllo ✓", "a\x00b", "$where", b"", b"\x00\xff" * 100, bytearray(b"ab"),
    # text read as ASCII when it is: one character, and a non-ASCII one in
    # or after the first 8 bytes (read a word at a time) or last
    "a", "é", "abcdefgh", "abcdefghé", "abcdefgé", "éabcdefghij", "abcdefghijklmnopq" * 3 + "€",
    # and its short texts read and copied as two words that overlap
    "ab", "abc", "aéb", "abcd", "abcdefg", "abcéfg", "abcdefghi", "abcdefghijklméop", "abcdefghijklmnop",
    "abcdefghijklmnopq", "abcdefghijklmnoé",
    decimal.Decimal("0"), decimal.Decimal("-1.50"), decimal.Decimal("1234567890123456789012345678901234"),
    decimal.Decimal("1E-6176"), decimal.Decimal("NaN"),
    datetime.datetime(2024, 2, 29, 23, 59, 59, 999000), datetime.datetime(1, 1, 1), datetime.datetime(9999, 12, 31),
    uuid.UUID("12345678-1234-5678-1234-567812345678"), bson.ObjectId("0123456789abcdef01234567"),
    {"a": {"$gt": ""}, "b": [1, None, {"c": "d"}]}, [1, "two", [3]],
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=[repr(v)[:40] for v in ROUND_TRIPS])
def test_round_trip(cur, value):
    cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [value])
    cur.execute('SELECT "x"."v" FROM "x" WHERE "x"."id" = %s', [cur.lastrowid])
    (got,), = cur.fetchall()
    if isinstance(value, bytearray):
        value = bytes(value)
    if isinstance(value, decimal.Decimal) and value.is_nan():
        assert got.is_nan()
    elif isinstance(value, tuple):
        assert got == list(value)
    else:
        assert got == value and type(got) is type(value)


def test_rows_of_atoms_leave_the_collector(cur):
    """A row of numbers, text and NULL can be in no reference cycle: the
    driver hands it out untracked (as the collector itself would make it);
    a row holding a container stays tracked."""
    import gc
    cur.execute('INSERT INTO "x" ("v") VALUES (%s)', ["text"])
    cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [None])
    cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [{"a": [1]}])
    cur.execute('SELECT "x"."id", "x"."v" FROM "x" ORDER BY "x"."id"')
    rows = cur.fetchall()
    assert [gc.is_tracked(r) for r in rows] == [False, False, True]
    assert rows[2][1] == {"a": [1]} and gc.is_tracked(rows[2][1])


def test_rows_whose_fields_are_not_the_columns_in_order(cur):
    """A row is read in one walk while its document's fields are the
    columns in order (what a projection of the select list makes); a
    document in another order, missing a field or with one more between
    them gives the same cells, read by name, and so do the rows after it --
    whether the first row is in order or not, and whatever the rows hold."""
    docs = [{"id": 1, "a": 1, "b": "one"}, {"id": 2, "b": "two", "a": 2}, {"id": 3, "a": 3},
            {"id": 4, "a": 4, "b": "four"}, {"id": 5, "b": "five"}, {"id": 6, "a": [6], "b": {"six": 6}},
            {"id": 7, "a": 7, "b": None}, {"id": 8, "a": "", "b": ""}]
    cur.execute('CREATE TABLE "o" ("id" integer NOT NULL PRIMARY KEY, "a" text NULL, "b" text NULL)')
    cur.connection.command({"insert": "o", "documents": docs})
    want = [(1, "one"), (2, "two"), (3, None), (4, "four"), (None, "five"), ([6], {"six": 6}), (7, None), ("", "")]
    cur.execute('SELECT "o"."a", "o"."b" FROM "o" ORDER BY "o"."id"')
    assert cur.fetchall() == want
    cur.execute('SELECT "o"."b", "o"."a" FROM "o" ORDER BY "o"."id"')
    assert cur.fetchall() == [(b, a) for a, b in want]
    cur.execute('SELECT "o"."b", "o"."a" FROM "o" WHERE "o"."id" > 1 ORDER BY "o"."id"')
    assert cur.fetchall() == [(b, a) for a, b in want[1:]]
    # in order, a NULL or an empty text last (its key read near the document's end)
    cur.execute('SELECT "o"."a", "o"."b" FROM "o" WHERE "o"."id" >= 7 ORDER BY "o"."id"')
    assert cur.fetchall() == want[6:]


def test_what_mongodb_keeps(cur):
    # datetimes: milliseconds; aware values become naive UTC; dates become midnight UTC datetimes
    for given, kept in [
        (datetime.datetime(2024, 1, 1, 12, 0, 0, 123456), datetime.datetime(2024, 1, 1, 12, 0, 0, 123000)),
        (datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
         datetime.datetime(2024, 1, 1, 10, 0)),
        (datetime.date(2024, 3, 1), datetime.datetime(2024, 3, 1)),
        (datetime.time(13, 45, 1, 500), "13:45:01.000500"),
        ((1, 2), [1, 2]),
    ]:
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [given])
        cur.execute('SELECT "x"."v" FROM "x" WHERE "x"."id" = %s', [cur.lastrowid])
        assert cur.fetchone() == (kept,)
    # Decimal128 holds 34 significant digits: more is a DataError, never a silent rounding
    with pytest.raises(driver.DataError):
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [decimal.Decimal("1." + "1" * 40)])
    with pytest.raises(driver.DataError):
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [2**63])
    with pytest.raises(driver.ProgrammingError):
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [object()])


def test_a_commands_datetimes_are_bson_dates(cur):
    # only a statement's parameters carry microseconds below the millisecond
    # to the compiler (as a date and a remainder); a command is sent as it
    # is, to the engine or to MongoDB, and holds BSON dates -- the cache's
    # expires_at once reached the data as the compiler's private form
    conn = cur.connection
    at = datetime.datetime(2024, 1, 1, 12, 0, 0, 123456)
    conn.command({"insert": "d", "documents": [{"_id": 1, "at": at, "in": [{"at": at}]}]})
    doc = conn.command({"find": "d", "filter": {"at": {"$lte": at}}})["cursor"]["firstBatch"]
    kept = datetime.datetime(2024, 1, 1, 12, 0, 0, 123000)
    assert doc == [{"_id": 1, "at": kept, "in": [{"at": kept}]}]
    assert conn.command({"count": "d", "query": {"at": {"$type": "date"}}})["n"] == 1


def test_uuid_text_patterns(cur):
    # a UUID (binData subtype 4) matched as its canonical text, dashes
    # included, as PostgreSQL's uuid::text (Django's UUIDField contains,
    # startswith, iexact ...: djongo/operations.py lookup_cast); NULL stays NULL
    u = uuid.UUID("550e8400-e29b-41d4-a716-446655440000")
    for v in (u, uuid.UUID("25d405be-4895-4d50-9b2e-d6695359ce47"), None):
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [v])
    cur.execute('SELECT "x"."v", UUID_TEXT("x"."v") FROM "x" WHERE UUID_TEXT("x"."v") LIKE %s', ["%8400-e29b%"])
    assert cur.fetchall() == [(u, str(u))]
    cur.execute('SELECT COUNT(*) FROM "x" WHERE UUID_TEXT("x"."v") LIKE %s', ["%8400e29b%"])
    assert cur.fetchall() == [(0,)]
    cur.execute('SELECT COUNT(*) FROM "x" WHERE UUID_TEXT("x"."v") IS NULL')
    assert cur.fetchall() == [(1,)]


def test_pyformat_parameters(cur):
    # a mapping binds %(name)s placeholders (paramstyle pyformat, which
    # Django's backends accept: supports_paramstyle_pyformat); a name may
    # come twice, %% stays a percent sign
    cur.execute('INSERT INTO "x" ("v") VALUES (%(v)s)', {"v": "a%b"})
    cur.executemany('INSERT INTO "x" ("v") VALUES (%(v)s)', iter([{"v": "c"}, {"v": "d", "unused": 1}]))
    cur.execute('SELECT "x"."v" FROM "x" WHERE "x"."v" LIKE %(p)s OR "x"."v" = %(q)s OR "x"."v" = %(p)s '
                'ORDER BY "x"."v"', {"p": "a%%", "q": "d"})
    assert cur.fetchall() == [("a%b",), ("d",)]
    with pytest.raises(driver.ProgrammingError):
        cur.execute('SELECT "x"."v" FROM "x" WHERE "x"."v" = %(missing)s', {"v": 1})


def test_column_defaults_fill_inserts(cur):
    # an INSERT that leaves a column out gets its DEFAULT (Django's
    # db_default, a raw INSERT or a bulk_create of database defaults);
    # a value given, even NULL, is kept; SET/DROP DEFAULT and RENAME follow
    cur.execute('CREATE TABLE "d" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "a" integer DEFAULT 2 NOT NULL, '
                '"b" text NULL DEFAULT %s, "c" real NULL)', ["x"])
    cur.execute('INSERT INTO "d" ("c") VALUES (%s)', [1.5])
    cur.execute('INSERT INTO "d" ("a", "b") VALUES (%s, %s)', [7, None])
    cur.execute('ALTER TABLE "d" ALTER COLUMN "a" SET DEFAULT 5')
    cur.execute('ALTER TABLE "d" ALTER COLUMN "b" DROP DEFAULT')
    cur.execute('ALTER TABLE "d" RENAME COLUMN "a" TO "a2"')
    cur.execute('ALTER TABLE "d" ADD COLUMN "e" integer DEFAULT 9 NULL')
    cur.execute('INSERT INTO "d" DEFAULT VALUES')
    cur.execute('SELECT "d"."a2", "d"."b", "d"."c", "d"."e" FROM "d" ORDER BY "d"."id"')
    assert cur.fetchall() == [(2, "x", 1.5, 9), (7, None, None, 9), (5, None, None, 9)]


def test_unknown_date_unit_is_a_data_error(cur):
    # a unit no database knows is an error in the value (PostgreSQL's
    # 22023, psycopg's DataError), not a construct djongo lacks
    with pytest.raises(driver.DataError):
        cur.execute('SELECT DATE_TRUNC(%s, "x"."v") FROM "x"', ["year', v)) OR 1=1;--"])
    with pytest.raises(driver.NotSupportedError):
        cur.execute('SELECT DATE_TRUNC(%s, "x"."v") FROM "x"', ["millennium"])


def test_explain_gives_the_plan_as_json(cur):
    # EXPLAIN SELECT: one row, one column, MongoDB's explain reply as JSON
    # (Django's QuerySet.explain()); the rows are not read
    cur.execute('INSERT INTO "x" ("v") VALUES (%s)', ["a"])
    cur.execute('EXPLAIN SELECT "x"."id" FROM "x" WHERE "x"."v" = %s', ["a"])
    assert [d[0] for d in cur.description] == ["QUERY PLAN"]
    (plan,), = cur.fetchall()
    assert "queryPlanner" in json.loads(plan)


def test_cast_to_time(cur):
    # CAST(x AS time): a date's UTC wall-clock time as a TimeField stores it
    # (ISO text, to the millisecond a BSON date keeps); text stays text
    for v in (datetime.datetime(2018, 9, 28, 12, 42, 10, 234567), datetime.datetime(2018, 9, 28, 7, 5), "10:11:12",
              None):
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [v])
    cur.execute('SELECT CAST("x"."v" AS time) FROM "x" ORDER BY "x"."id"')
    assert cur.fetchall() == [("12:42:10.234000",), ("07:05:00",), ("10:11:12",), (None,)]


def test_time_text_as_microseconds(cur):
    # TIME_US: a TimeField's ISO text as microseconds since midnight (the
    # subtraction of two TimeFields, a DurationField in microseconds)
    for v in ("10:11:12", "23:59:59.999999", "00:00:00.000500", None):
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [v])
    cur.execute('SELECT TIME_US("x"."v"), TIME_US("x"."v") - TIME_US(%s) FROM "x" ORDER BY "x"."id"', ["10:11:12"])
    day = 86400 * 10**6
    assert cur.fetchall() == [(36672 * 10**6, 0), (day - 1, day - 1 - 36672 * 10**6), (500, 500 - 36672 * 10**6),
                              (None, None)]


def test_views(cur):
    # CREATE VIEW: a MongoDB view whose documents are the SELECT's columns
    # (read by name and by *); DROP VIEW removes it
    for v in ("a", "bb", None):
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [v])
    cur.execute('CREATE VIEW "xv" AS SELECT "x"."id" AS "key", LENGTH("x"."v") AS "len" FROM "x" WHERE "x"."v" IS NOT NULL')
    cur.execute('SELECT "xv"."len" FROM "xv" WHERE "xv"."key" > %s', [1])
    assert cur.fetchall() == [(2,)]
    cur.execute('SELECT * FROM "xv" ORDER BY "xv"."key"')
    assert [d[0] for d in cur.description] == ["key", "len"] and cur.fetchall() == [(1, 1), (2, 2)]
    cur.execute('DROP VIEW "xv"')
    with pytest.raises(driver.DatabaseError):
        cur.execute('SELECT "xv"."len" FROM "xv"')


def test_cursor_protocol(cur):
    cur.executemany('INSERT INTO "x" ("v") VALUES (%s)', [["a"], ["b"], [None]])
    assert cur.rowcount == 3 and cur.description is None
    cur.execute('SELECT "x"."id", "x"."v" AS "value" FROM "x" ORDER BY "x"."id"')
    assert [d[0] for d in cur.description] == ["id", "value"] and cur.rowcount == 3
    assert cur.fetchone() == (1, "a")
    assert cur.fetchmany(5) == [(2, "b"), (3, None)]
    assert cur.fetchone() is None and cur.fetchall() == []
    cur.execute('SELECT "x"."v" FROM "x" WHERE "x"."v" IS NULL')
    assert list(cur) == [(None,)]
    cur.execute('UPDATE "x" SET "v" = %s WHERE "x"."v" IS NOT NULL', ["z"])
    assert cur.rowcount == 2 and cur.description is None
    with pytest.raises(driver.ProgrammingError):
        cur.fetchall()
    cur.execute('INSERT INTO "x" ("v") VALUES (%s), (%s) RETURNING "x"."id"', ["p", "q"])
    assert cur.fetchall() == [(4,), (5,)] and cur.lastrowid == 5
    cur.close()
    with pytest.raises(driver.InterfaceError):
        cur.execute('SELECT "x"."v" FROM "x"')


def test_errors_are_pep249_classes(cur):
    cur.execute('CREATE UNIQUE INDEX "x_v" ON "x" ("v")')
    cur.execute('INSERT INTO "x" ("v") VALUES (%s)', ["dup"])
    with pytest.raises(driver.IntegrityError) as e:
        cur.execute('INSERT INTO "x" ("v") VALUES (%s)', ["dup"])
    assert e.value.code == 11000 and "duplicate key" in str(e.value)
    with pytest.raises(driver.ProgrammingError) as e:
        cur.execute('SELECT "x"."v" FROM "x" WHERE')
    assert "syntax error at end of input" in str(e.value)
    # a refusal says so first, then names the construct and where it stands
    with pytest.raises(driver.NotSupportedError, match=r"^not supported: window function RATIO_TO_REPORT\(\) \(at offset 7\)"):
        cur.execute('SELECT RATIO_TO_REPORT("x"."id") OVER (ORDER BY "x"."v") FROM "x"')
    with pytest.raises(driver.ProgrammingError, match="takes 1 parameter, 0 given"):
        cur.execute('SELECT "x"."v" FROM "x" WHERE "x"."id" = %s', [])
    with pytest.raises(driver.ProgrammingError) as e:
        cur.execute('DROP INDEX "nope" ON "x"')
    assert e.value.code == 27  # IndexNotFound
    # (DROP TABLE of a missing table succeeds: MongoDB's drop rule since 7.0, which the engine follows)
    assert issubclass(driver.IntegrityError, driver.DatabaseError) and issubclass(driver.DatabaseError, driver.Error)


def test_not_null(cur):
    """NOT NULL columns refuse NULL on INSERT and UPDATE (IntegrityError, SQLite's
    words); ALTER COLUMN SET/DROP NOT NULL and RENAME COLUMN follow; a column an
    INSERT leaves out is not checked (a database default may stand for it)."""
    cur.execute('CREATE TABLE "n" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "a" text NOT NULL, "b" text NULL)')
    cur.execute('INSERT INTO "n" ("a", "b") VALUES (%s, %s)', ["x", None])
    with pytest.raises(driver.IntegrityError, match=r"NOT NULL constraint failed: n\.a"):
        cur.execute('INSERT INTO "n" ("a", "b") VALUES (%s, %s), (%s, %s)', ["y", "1", None, "2"])
    cur.execute('SELECT COUNT(*) FROM "n"')
    assert cur.fetchone() == (1,)  # the statement is atomic: no row of it stayed
    with pytest.raises(driver.IntegrityError):
        cur.execute('UPDATE "n" SET "a" = %s', [None])
    with pytest.raises(driver.IntegrityError):
        cur.execute('UPDATE "n" SET "a" = %s, "b" = "n"."a" || %s', [None, "!"])
    cur.execute('INSERT INTO "n" ("b") VALUES (%s)', ["left out"])
    cur.execute('ALTER TABLE "n" ALTER COLUMN "b" SET NOT NULL')
    cur.execute('ALTER TABLE "n" RENAME COLUMN "b" TO "c"')
    with pytest.raises(driver.IntegrityError, match=r"n\.c"):
        cur.execute('UPDATE "n" SET "c" = %s', [None])
    cur.execute('ALTER TABLE "n" ALTER COLUMN "a" DROP NOT NULL')
    cur.execute('UPDATE "n" SET "a" = %s', [None])
    cur.execute('SELECT "n"."a" FROM "n"')
    assert cur.fetchall() == [(None,), (None,)]


def test_alter_column_type_converts_values(cur):
    """ALTER COLUMN TYPE converts the stored values SQL would (and keeps
    what does not convert): queries with the new type's values then match."""
    cur.execute('CREATE TABLE "m" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "a" varchar(10) NULL, '
                '"b" integer NULL, "d" text NULL)')
    cur.executemany('INSERT INTO "m" ("a", "b", "d") VALUES (%s, %s, %s)',
                    [("5", 1, "2020-01-02"), ("x", 22, "nope"), (None, None, None)])
    cur.execute('ALTER TABLE "m" ALTER COLUMN "a" TYPE integer')
    cur.execute('ALTER TABLE "m" ALTER COLUMN "b" TYPE varchar(20)')
    cur.execute('ALTER TABLE "m" ALTER COLUMN "d" TYPE datetime')
    cur.execute('SELECT "m"."a", "m"."b", "m"."d" FROM "m" ORDER BY "m"."id"')
    assert cur.fetchall() == [(5, "1", datetime.datetime(2020, 1, 2)), ("x", "22", "nope"), (None, None, None)]
    cur.execute('SELECT "m"."id" FROM "m" WHERE "m"."a" = %s AND "m"."b" = %s', [5, "1"])
    assert cur.fetchall() == [(1,)]
    assert [d[1] for d in cur.description] == ["INTEGER"]  # declared types follow


def test_hostile_parameters_stay_values(cur):
    cur.execute('INSERT INTO "x" ("v") VALUES (%s)', ["secret"])
    for p in ({"$ne": None}, {"$gt": ""}, "$v", ".*", "%"):
        cur.execute('SELECT "x"."id" FROM "x" WHERE "x"."v" = %s', [p])
        assert cur.fetchall() == []
    cur.execute('SELECT "x"."id" FROM "x" WHERE "x"."v" LIKE %s', ["%cre%"])
    assert cur.fetchall() == [(1,)]


def test_keys_with_nul_are_refused(cur):
    # BSON field names are C strings: {"role\x00junk": ...} used to be stored as
    # {"role": ...}, and two such keys became duplicates (issue 19)
    for doc in ({"role\x00junk": "admin"}, {"a\x00x": 1, "a\x00y": 2}, {"ok": {"deep\x00": 1}}, [{"k\x00": 1}]):
        with pytest.raises(driver.DataError, match="NUL"):
            cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [doc])
    cur.execute('SELECT COUNT(*) FROM "x"')
    assert cur.fetchall() == [(0,)]
    # a NUL inside a value is data, kept whole
    cur.execute('INSERT INTO "x" ("v") VALUES (%s)', [{"role": "ad\x00min"}])
    cur.execute('SELECT "x"."v" FROM "x"')
    assert cur.fetchall() == [({"role": "ad\x00min"},)]


def test_host_rule_and_bad_hosts(tmp_path):
    conn = driver.connect("file:" + str(tmp_path / "f"), db="t")
    conn.cursor().execute("SELECT 1")
    conn.close()
    bad = driver.connect("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", db="t")
    with pytest.raises(driver.OperationalError, match="No suitable servers"):
        bad.cursor().execute("SELECT 1")
    with pytest.raises(driver.ProgrammingError):
        driver.connect(str(tmp_path / "g"), db="bad.name")
    with pytest.raises(driver.InterfaceError):
        bad.close() or bad.cursor()


def test_data_directory_with_missing_parents(tmp_path):
    """A fresh checkout has no var/: the data directory and its parents are made."""
    conn = driver.connect(str(tmp_path / "var" / "site" / "data"), db="t")
    assert (tmp_path / "var" / "site" / "data").is_dir()
    conn.close()
    with pytest.raises(driver.OperationalError, match="cannot create data directory"):
        driver.connect("/proc/no/such/place", db="t")


def test_connections_in_threads(tmp_path):
    """One connection per thread: the intended use, on one data directory."""
    path = str(tmp_path / "mt")
    setup = driver.connect(path, db="t", autocommit=True)
    setup.cursor().execute('CREATE TABLE "c" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "w" integer)')

    def work(w):
        c = driver.connect(path, db="t", autocommit=True).cursor()
        for _ in range(50):
            c.execute('INSERT INTO "c" ("w") VALUES (%s)', [w])

    assert not in_threads(work, 4)
    cur = setup.cursor()
    cur.execute('SELECT COUNT(*), COUNT(DISTINCT "c"."id") FROM "c"')
    assert cur.fetchone() == (200, 200)  # no id handed out twice


def test_module_surface():
    assert (driver.apilevel, driver.threadsafety, driver.paramstyle) == ("2.0", 1, "format")
    assert driver.Binary(b"x") == b"x" and driver.Date(2024, 1, 2) == datetime.date(2024, 1, 2)
    assert driver.Timestamp(2024, 1, 2, 3, 4, 5) == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert isinstance(driver.TimestampFromTicks(0), datetime.datetime)
    assert isinstance(driver.DateFromTicks(0), datetime.date) and isinstance(driver.TimeFromTicks(0), datetime.time)
    assert driver.STRING == "varchar" and driver.NUMBER == "BIGINT" and driver.DATETIME != "TEXT"
    for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
                 "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError"):
        assert getattr(driver, name) is getattr(driver.Connection, name)


def test_percent_rule(cur):
    """Format paramstyle (psycopg's rule): with parameters, quoted %% is %;
    without (None), the text is as written. Outside quotes %% is modulo."""
    cur.execute("SELECT '100%%', 7 %% 4", [])
    assert cur.fetchone() == ("100%", 3)
    cur.execute("SELECT '100%%' -- it's a comment with a quote\n, %s", ["%%"])
    assert cur.fetchone() == ("100%", "%%")  # parameters are never touched
    cur.execute("SELECT '100%%'")
    assert cur.fetchone() == ("100%%",)


def test_insert_without_columns_and_declared_types(cur):
    """CREATE TABLE records the columns (in order) and their declared types;
    ALTER TABLE keeps them; INSERT without a column list and
    cursor.description use them."""
    cur.execute('INSERT INTO "x" VALUES (NULL, %s)', ["a"])
    cur.execute('ALTER TABLE "x" ADD COLUMN "n" integer NULL')
    cur.execute('ALTER TABLE "x" RENAME COLUMN "v" TO "w"')
    cur.execute('INSERT INTO "x" VALUES (10, %s, %s)', ["b", 5])
    cur.execute('SELECT "x"."id", "x"."w", "x"."n" FROM "x" ORDER BY "x"."id"')
    assert cur.fetchall() == [(1, "a", None), (10, "b", 5)]
    assert [d[1] for d in cur.description] == ["INTEGER", "TEXT", "INTEGER"]
    assert cur.description[1][1] == driver.STRING and cur.description[2][1] == driver.NUMBER
    cur.execute('SELECT COUNT(*) AS "c" FROM "x"')
    assert cur.description[0][1] == "INTEGER"  # computed: the value's type
    # ... also when asked after the rows were fetched (it is worked out when asked)
    cur.execute('SELECT "x"."w" || %s AS "s", NULL AS "z" FROM "x" ORDER BY "x"."id"', ["!"])
    assert cur.fetchall() == [("a!", None), ("b!", None)]
    assert [d[:2] for d in cur.description] == [("s", "TEXT"), ("z", None)]
    cur.execute('DELETE FROM "x" WHERE "x"."id" = %s', [0])
    assert cur.description is None
    cur.execute('ALTER TABLE "x" DROP COLUMN "n"')
    with pytest.raises(driver.ProgrammingError, match="has 2 columns but 3 values"):
        cur.execute('INSERT INTO "x" VALUES (11, %s, %s)', ["c", 6])
    with pytest.raises(driver.ProgrammingError, match="columns are unknown"):
        cur.execute('INSERT INTO "nosuch" VALUES (1)')


def test_executemany_batches_inserts(tmp_path):
    """One-row INSERTs run as multi-row batches (10,000 rows each): ids in
    order, rowcount and lastrowid as if run one by one; a duplicate fails
    its batch as a whole; other statements run row by row."""
    conn = driver.connect(str(tmp_path / "m"), db="t", autocommit=True)
    cur = conn.cursor()
    cur.execute('CREATE TABLE "m" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "k" integer NOT NULL UNIQUE)')
    cur.executemany('INSERT INTO "m" ("k") VALUES (%s)', [(i,) for i in range(25000)])
    assert cur.rowcount == 25000 and cur.lastrowid == 25000
    cur.execute('SELECT MIN("m"."id"), MAX("m"."id"), COUNT(DISTINCT "m"."id"), SUM("m"."k") FROM "m"')
    assert cur.fetchone() == (1, 25000, 25000, sum(range(25000)))
    cur.execute('SELECT "m"."k" FROM "m" WHERE "m"."id" = %s', [12345])
    assert cur.fetchone() == (12344,)
    with pytest.raises(driver.IntegrityError):
        cur.executemany('INSERT INTO "m" ("k") VALUES (%s)', [(-1,), (-2,), (5,), (-3,)])
    cur.execute('SELECT COUNT(*) FROM "m" WHERE "m"."k" < 0')
    assert cur.fetchone() == (0,)  # the failed batch left nothing
    cur.executemany('UPDATE "m" SET "k" = "k" + 100000 WHERE "m"."id" = %s', [(1,), (2,)])
    assert cur.rowcount == 2
    with pytest.raises(driver.ProgrammingError, match="parameter"):
        cur.executemany('INSERT INTO "m" ("k") VALUES (%s)', [(1, 2)])
    conn.close()


def test_numbered_rows_leave_with_their_key_as_id_first(tmp_path):
    """The rows of a table whose key numbers itself (AUTOINCREMENT) leave
    the driver with their key as their _id, first, as MongoDB's drivers send
    documents: the engine stores them as they come (no copy to put an _id
    first), an insert retried over the wire carries the same _id, and the
    table's _id index, record-keyed, has no entries of its own
    (src/engine/storage/ridkey.c). A row given its key keeps it as its _id
    too; a row naming its own _id keeps it, and the table goes on."""
    conn = driver.connect(str(tmp_path / "i"), db="t", autocommit=True)
    conn.trace = True
    cur = conn.cursor()
    cur.execute('CREATE TABLE "i" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "v" text NULL)')
    for sql, params in (('INSERT INTO "i" ("v") VALUES (%s)', ["a"]),
                        ('INSERT INTO "i" ("v") VALUES (%s), (%s)', ["b", "c"]),
                        ('INSERT INTO "i" ("id", "v") VALUES (%s, %s)', [7, "x"]),
                        ('INSERT INTO "i" ("v", "id") VALUES (%s, NULL)', ["y"])):
        cur.execute(sql, params)
        insert = json.loads(next(c for c in cur.last_commands if c.startswith('{ "insert"')))
        assert all(list(d)[0] == "_id" and d["_id"] == d["id"] for d in insert["documents"]), insert
    cur.execute('SELECT "id", "v" FROM "i" WHERE "id" > %s ORDER BY "id"', [2])
    assert cur.fetchall() == [(3, "c"), (7, "x"), (8, "y")]
    # neither index has entries of its own: the records are keyed by both
    assert conn.command({"collStats": "i"})["indexSizes"] == {"_id_": 0, "i_id_pk": 0}
    cur.execute('INSERT INTO "i" ("_id", "v") VALUES (%s, %s)', ["mine", "d"])
    sizes = conn.command({"collStats": "i"})["indexSizes"]
    assert sizes["_id_"] > 0 and sizes["i_id_pk"] == 0  # (an _id of its own: the _id index turned plain)
    cur.execute('UPDATE "i" SET "id" = %s WHERE "id" = %s', [100, 1])
    docs = conn.command({"find": "i", "filter": {}, "sort": {"id": 1}})["cursor"]["firstBatch"]
    assert [(d["_id"], d["id"], d["v"]) for d in docs] == [
        (2, 2, "b"), (3, 3, "c"), (7, 7, "x"), (8, 8, "y"), ("mine", 9, "d"), (1, 100, "a")]
    assert conn.command({"find": "i", "filter": {"_id": 7}})["cursor"]["firstBatch"][0]["v"] == "x"
    with pytest.raises(driver.IntegrityError):
        cur.execute('INSERT INTO "i" ("id", "v") VALUES (%s, %s)', [3, "again"])
    names = [ix["name"] for ix in conn.command({"listIndexes": "i"})["cursor"]["firstBatch"]]
    assert names == ["_id_", "i_id_pk"]
    conn.close()


def test_tables_modes(tmp_path):
    """Tables CREATE TABLE never made: plain collections (default), implicit
    (an INSERT RETURNING a column it does not give makes that column the
    auto-increment key: Django models without migrations) or strict (writes
    refused: no such table)."""
    path = str(tmp_path / "modes")
    plain = driver.connect(path, db="t", autocommit=True)
    cur = plain.cursor()
    cur.execute('INSERT INTO "p" ("v") VALUES (%s) RETURNING "p"."id"', ["a"])
    assert cur.fetchall() == [(None,)] and cur.lastrowid is None
    plain.close()
    implicit = driver.connect(path, db="t", autocommit=True, tables=driver.TABLES_IMPLICIT)
    cur = implicit.cursor()
    cur.execute('INSERT INTO "n" ("v") VALUES (%s) RETURNING "n"."id"', ["a"])
    assert cur.fetchall() == [(1,)] and cur.lastrowid == 1
    cur.execute('INSERT INTO "n" ("v") VALUES (%s), (%s) RETURNING "n"."id"', ["b", "c"])
    assert cur.fetchall() == [(2,), (3,)]
    cur.execute('INSERT INTO "n" ("id", "v") VALUES (%s, %s)', [10, "d"])
    cur.execute('INSERT INTO "n" ("v") VALUES (%s) RETURNING "n"."id"', ["e"])
    assert cur.fetchall() == [(11,)]
    cur.execute('INSERT INTO "m" ("k", "v") VALUES (%s, %s) RETURNING "m"."k"', [5, "x"])  # given: no key made
    assert cur.fetchall() == [(5,)]
    implicit.close()
    strict = driver.connect(path, db="t", autocommit=True, tables=driver.TABLES_STRICT)
    cur = strict.cursor()
    with pytest.raises(driver.ProgrammingError, match="no such table: q"):
        cur.execute('INSERT INTO "q" ("v") VALUES (%s)', ["a"])
    with pytest.raises(driver.ProgrammingError, match="no such table: q"):
        cur.execute('UPDATE "q" SET "v" = %s', ["a"])
    cur.execute('INSERT INTO "n" ("v") VALUES (%s)', ["f"])  # n has an entry now
    cur.execute('CREATE TABLE "q" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "v" text)')
    cur.execute('INSERT INTO "q" ("v") VALUES (%s)', ["a"])
    assert cur.lastrowid == 1
    strict.close()
    with pytest.raises(ValueError):
        driver.connect(path, db="t", tables=7)


def test_select_from_a_table_that_does_not_exist(cur):
    """SQLite's words for a mistyped table; a collection CREATE TABLE did not
    make (a plain MongoDB collection) is a table all the same."""
    with pytest.raises(driver.ProgrammingError, match="^no such table: nosuch$") as e:
        cur.execute('SELECT "nosuch"."v" FROM "nosuch"')
    assert e.value.code == 26  # NamespaceNotFound
    cur.connection.command({"create": "plain"})
    cur.execute('SELECT COUNT(*) FROM "plain"')
    assert cur.fetchone() == (0,)
    cur.execute('SELECT "x"."v" FROM "x"')  # a table CREATE TABLE made, still empty
    assert cur.fetchall() == []


def test_description_kept_per_statement_until_the_schema_changes(cur):
    """cursor.description is built once per statement text (the C half
    keeps it, src/pydriver/describe.c) and built again after DDL: a
    column's declared type follows ALTER TABLE, a rollback of DDL, and a
    column added to SELECT * shows; a computed column's type_code still
    follows each execution's rows."""
    cur.execute('INSERT INTO "x" ("v") VALUES (%s)', ["a"])
    read = 'SELECT "x"."id", "x"."v" FROM "x" WHERE "x"."id" = %s'
    cur.execute(read, [1])
    first = cur.description
    cur.execute(read, [2])
    assert cur.description is first  # kept, not built again
    assert [d[1] for d in first] == ["INTEGER", "TEXT"]
    cur.execute('ALTER TABLE "x" ALTER COLUMN "v" TYPE varchar(20)')
    cur.execute(read, [1])
    assert cur.description is not first and [d[1] for d in cur.description] == ["INTEGER", "VARCHAR(20)"]
    cur.execute('SELECT * FROM "x"')
    assert [d[0] for d in cur.description] == ["id", "v"]
    cur.execute('ALTER TABLE "x" ADD COLUMN "n" integer NULL')
    cur.execute('SELECT * FROM "x"')
    assert [(d[0], d[1]) for d in cur.description] == [("id", "INTEGER"), ("v", "VARCHAR(20)"), ("n", "INTEGER")]
    # DDL rolled back: the type it gave is gone again
    conn = cur.connection
    conn.commit()
    cur.execute('ALTER TABLE "x" ALTER COLUMN "n" TYPE text')
    cur.execute('SELECT * FROM "x"')
    assert cur.description[2][1] == "TEXT"
    conn.rollback()
    cur.execute('SELECT * FROM "x"')
    assert cur.description[2][1] == "INTEGER"
    # computed: named from each execution's first non-NULL value
    computed = 'SELECT COALESCE("x"."v", %s) AS "c" FROM "x"'
    cur.execute('UPDATE "x" SET "v" = NULL')
    cur.execute(computed, [5])
    assert cur.description[0][1] == "INTEGER"
    cur.execute(computed, ["five"])
    assert cur.description[0][1] == "TEXT"


def test_insert_returning_is_described_by_the_table(cur):
    """An INSERT's RETURNING columns are its table's: their type_code is
    the declared one, as a SELECT of them gives (describe.c), kept per
    statement rather than named from each execution's values."""
    cur.execute('ALTER TABLE "x" ALTER COLUMN "v" TYPE varchar(20)')
    insert = 'INSERT INTO "x" ("v") VALUES (%s) RETURNING "x"."id", "x"."v"'
    cur.execute(insert, ["a"])
    first = cur.description
    assert [(d[0], d[1]) for d in first] == [("id", "INTEGER"), ("v", "VARCHAR(20)")]
    cur.execute(insert, ["b"])
    assert cur.description is first and cur.fetchone() == (2, "b")
