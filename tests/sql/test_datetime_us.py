"""Datetimes to the microsecond, executed (src/compile/exact_dt.c).

A DATETIME column holds a BSON date floored to the millisecond and the
remainder 1..999 in "<column>__us". Each statement runs on the embedded
engine (``djongo-sql --batch``) with DATETIME columns and exact datetime
parameters (binary subtype 0x80: microseconds since the epoch), and on
SQLite with the same instants as integer microseconds -- where comparing,
ordering, grouping and arithmetic are exact by construction. The rows must
be the same. Instants one microsecond apart, on both sides of a
millisecond, and before 1970 (the remainder is floored) are in the data.
"""
import json
import sqlite3
import struct

import pytest
from bson import Binary, json_util
from bson.codec_options import DatetimeConversion
from bson.datetime_ms import DatetimeMS

from test_exec_vs_sqlite import TOOL, Engine

pytestmark = pytest.mark.skipif(not TOOL, reason="djongo-sql not built")

MS = 1_000
# microseconds since the epoch
T0 = 1_700_000_000_123_000
ROWS = [
    (1, T0, T0 + 1),            # d: a whole millisecond
    (2, T0 + 1, T0),            # one microsecond later
    (3, T0 + 999, T0 + 999),    # the last microsecond of the millisecond
    (4, T0 + 1_000, None),      # the next millisecond
    (5, T0 - 1, T0 + 5),        # the last microsecond of the one before
    (6, None, T0),
    (7, -1_500_001, -1_500_001),  # before 1970: date -1501 ms, remainder 999
    (8, T0 + 1, T0 + 1),
]


def exact(us):
    """The engine's parameter for us: a BSON date for whole milliseconds,
    else an exact datetime (what the driver binds)."""
    if us is None:
        return None
    if us % MS == 0:
        return DatetimeMS(us // MS)
    return Binary(struct.pack("<q", us), 0x80)


# dates as milliseconds (DatetimeMS), before 1970 too
DATES_AS_MS = json_util.JSONOptions(datetime_conversion=DatetimeConversion.DATETIME_MS)


def to_us(v):
    """A cell back to microseconds."""
    if isinstance(v, Binary) and v.subtype == 0x80:
        return struct.unpack("<q", bytes(v))[0]
    if isinstance(v, DatetimeMS):
        return int(v) * MS
    return v


class ExactEngine(Engine):
    def run(self, sql, params):
        # Extended JSON: exact datetimes are binary, dates $date
        self.proc.stdin.write(json_util.dumps([sql, params]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "djongo-sql exited"
        return json_util.loads(line, json_options=DATES_AS_MS)


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    eng = ExactEngine(tmp_path_factory.mktemp("dtus"))
    eng.ok('CREATE TABLE "ev" ("id" integer NOT NULL PRIMARY KEY, "d" datetime NULL, "e" datetime NULL)')
    lite = sqlite3.connect(":memory:")
    lite.execute('CREATE TABLE "ev" ("id" integer NOT NULL PRIMARY KEY, "d" integer NULL, "e" integer NULL)')
    for i, d, e in ROWS:
        eng.ok('INSERT INTO "ev" ("id", "d", "e") VALUES (%s, %s, %s)', [i, exact(d), exact(e)])
        lite.execute('INSERT INTO "ev" ("id", "d", "e") VALUES (?, ?, ?)', (i, d, e))
    yield lite, eng
    eng.close()
    lite.close()


def rows_of(res):
    return [[to_us(v) for v in row] for row in res["rows"]]


class U(int):
    """A parameter that is an instant (microseconds), not a number."""


# (sql, params, ordered): U(us) an instant; the engine's SQL says %s, SQLite's ?
QUERIES = [
    ('SELECT "id", "d", "e" FROM "ev" ORDER BY "id"', [], True),
    ('SELECT "id" FROM "ev" WHERE "d" = %s', [U(T0 + 1)], False),
    ('SELECT "id" FROM "ev" WHERE "d" = %s', [U(T0)], False),
    ('SELECT "id" FROM "ev" WHERE "d" <> %s', [U(T0 + 1)], False),
    ('SELECT "id" FROM "ev" WHERE "d" <> %s', [U(T0)], False),
    ('SELECT "id" FROM "ev" WHERE "d" < %s', [U(T0 + 1)], False),
    ('SELECT "id" FROM "ev" WHERE "d" < %s', [U(T0)], False),
    ('SELECT "id" FROM "ev" WHERE "d" <= %s', [U(T0)], False),
    ('SELECT "id" FROM "ev" WHERE "d" <= %s', [U(T0 + 1)], False),
    ('SELECT "id" FROM "ev" WHERE "d" > %s', [U(T0)], False),
    ('SELECT "id" FROM "ev" WHERE "d" > %s', [U(T0 + 998)], False),
    ('SELECT "id" FROM "ev" WHERE "d" >= %s', [U(T0 + 999)], False),
    ('SELECT "id" FROM "ev" WHERE "d" >= %s', [U(T0 + 1_000)], False),
    ('SELECT "id" FROM "ev" WHERE NOT ("d" > %s)', [U(T0 + 1)], False),
    ('SELECT "id" FROM "ev" WHERE NOT ("d" = %s)', [U(T0 + 1)], False),
    ('SELECT "id" FROM "ev" WHERE "d" < %s', [U(-1_500_000)], False),
    ('SELECT "id" FROM "ev" WHERE "d" = %s', [U(-1_500_001)], False),
    ('SELECT "id" FROM "ev" WHERE "d" IN (%s, %s)', [U(T0 + 1), U(T0 + 999)], False),
    ('SELECT "id" FROM "ev" WHERE "d" NOT IN (%s, %s)', [U(T0 + 1), U(T0)], False),
    ('SELECT "id" FROM "ev" WHERE "d" BETWEEN %s AND %s', [U(T0 + 1), U(T0 + 999)], False),
    ('SELECT "id" FROM "ev" WHERE "d" NOT BETWEEN %s AND %s', [U(T0), U(T0 + 998)], False),
    # column against column ($expr: [date, remainder] pairs)
    ('SELECT "id" FROM "ev" WHERE "d" < "e"', [], False),
    ('SELECT "id" FROM "ev" WHERE "d" = "e"', [], False),
    ('SELECT "id" FROM "ev" WHERE "d" >= "e" OR "id" = 6', [], False),
    # ORDER BY: the remainder next (id breaks the one tie)
    ('SELECT "id", "d" FROM "ev" WHERE "d" IS NOT NULL ORDER BY "d", "id"', [], True),
    ('SELECT "id" FROM "ev" WHERE "d" IS NOT NULL ORDER BY "d" DESC, "id"', [], True),
    # aggregates and groups
    ('SELECT MIN("d"), MAX("d"), MAX("e") FROM "ev"', [], True),
    ('SELECT "d", COUNT(*) FROM "ev" WHERE "d" > %s GROUP BY "d" ORDER BY "d"', [U(0)], True),
    ('SELECT DISTINCT "d" FROM "ev" WHERE "d" > %s ORDER BY "d"', [U(0)], True),
    ('SELECT "id", COALESCE("e", "d") FROM "ev" ORDER BY "id"', [], True),
    ('SELECT "id", CASE WHEN "id" > %s THEN "d" ELSE "e" END FROM "ev" ORDER BY "id"', [4], True),
    # an INNER join on datetimes: the pairs must match
    ('SELECT "a"."id", "b"."id" FROM "ev" "a" INNER JOIN "ev" "b" ON ("a"."d" = "b"."e")', [], False),
    ('SELECT "a"."id", "b"."id" FROM "ev" "a" LEFT OUTER JOIN "ev" "b" ON ("a"."d" = "b"."e")', [], False),
    # correlated subqueries: the outer row's remainder is a `let` variable too
    ('SELECT "a"."id" FROM "ev" "a" WHERE EXISTS (SELECT 1 FROM "ev" "b" WHERE "b"."e" > "a"."d")', [], False),
    ('SELECT "a"."id", (SELECT COUNT(*) FROM "ev" "b" WHERE "b"."d" < "a"."d") FROM "ev" "a"', [], False),
    ('SELECT "a"."id" FROM "ev" "a" WHERE "a"."d" IN (SELECT "b"."e" FROM "ev" "b" WHERE "b"."id" <> "a"."id")', [],
     False),
    ('SELECT "a"."id" FROM "ev" "a" WHERE "a"."d" NOT IN (SELECT "b"."e" FROM "ev" "b" WHERE "b"."e" IS NOT NULL '
     'AND "b"."id" <> "a"."id")', [], False),
    # a scalar subquery's datetime, and comparisons with it
    ('SELECT "a"."id", (SELECT "b"."e" FROM "ev" "b" WHERE "b"."id" = "a"."id" + 1) FROM "ev" "a"', [], False),
    ('SELECT "a"."id" FROM "ev" "a" WHERE "a"."d" < (SELECT MAX("b"."e") FROM "ev" "b" WHERE "b"."id" > "a"."id")', [],
     False),
    # compound queries: rows compare with their microseconds
    ('SELECT "d" FROM "ev" WHERE "id" IN (1, 2, 8) UNION SELECT "e" FROM "ev" WHERE "id" IN (1, 2, 3)', [], False),
    ('SELECT "d" FROM "ev" INTERSECT SELECT "e" FROM "ev"', [], False),
    ('SELECT "d" FROM "ev" EXCEPT SELECT "e" FROM "ev"', [], False),
    ('SELECT "id", "d" FROM "ev" WHERE "id" < 4 UNION ALL SELECT "id", "e" FROM "ev" WHERE "id" < 4', [], False),
    # window functions: ORDER BY and PARTITION BY a datetime see its microseconds
    ('SELECT "id", RANK() OVER (ORDER BY "d") FROM "ev" WHERE "d" IS NOT NULL', [], False),
    ('SELECT "id", ROW_NUMBER() OVER (ORDER BY "d" DESC, "id") FROM "ev" WHERE "d" IS NOT NULL', [], False),
    ('SELECT "id", COUNT(*) OVER (PARTITION BY "e") FROM "ev"', [], False),
    # the parameter itself, read back
    ('SELECT "id", %s FROM "ev" WHERE "id" = 1', [U(T0 + 7)], True),
]


def lite_sql(sql):
    return sql.replace("%s", "?")


@pytest.mark.parametrize("sql,params,ordered", QUERIES)
def test_matches_integer_microseconds(dbs, sql, params, ordered):
    lite, eng = dbs
    got = rows_of(eng.ok(sql, [exact(p) if isinstance(p, U) else p for p in params]))
    want = [list(r) for r in lite.execute(lite_sql(sql), [int(p) for p in params]).fetchall()]
    if not ordered:
        got, want = sorted(got, key=repr), sorted(want, key=repr)
    assert got == want, sql


def test_arithmetic_with_durations(dbs):
    """datetime +/- a duration in microseconds, and datetime - datetime
    (djongo/operations.py emits these functions for Django's F() + timedelta)."""
    lite, eng = dbs
    for delta in (1, -1, 998, 1_001, -2_000_001, 86_400_000_000):
        got = rows_of(eng.ok('SELECT "id", DATETIME_ADD_US("d", %s), US_ADD_DATETIME(%s, "d") FROM "ev" ORDER BY "id"',
                             [delta, delta]))
        want = [[i, None if d is None else d + delta, None if d is None else d + delta] for i, d, _ in ROWS]
        assert got == want, delta
    got = rows_of(eng.ok('SELECT "id", DATETIME_DIFF_US("d", "e") FROM "ev" ORDER BY "id"'))
    assert got == [[i, None if d is None or e is None else d - e] for i, d, e in ROWS]


def test_writes_keep_the_remainder(tmp_path):
    """INSERT stores the pair, UPDATE to a whole millisecond removes the
    remainder, UPDATE from another column or an expression carries it."""
    eng = ExactEngine(tmp_path)
    try:
        eng.ok('CREATE TABLE "w" ("id" integer NOT NULL PRIMARY KEY, "d" datetime NULL, "e" datetime NULL, "n" integer NULL)')
        eng.ok('INSERT INTO "w" ("id", "d", "e", "n") VALUES (1, %s, %s, 0)', [exact(T0 + 5), exact(T0 + 7)])
        docs = eng.ok('SELECT "d", "e" FROM "w"')
        assert rows_of(docs) == [[U(T0 + 5), U(T0 + 7)]]
        eng.ok('UPDATE "w" SET "d" = %s', [exact(T0)])
        assert rows_of(eng.ok('SELECT "d" FROM "w" WHERE "d" = %s', [exact(T0)])) == [[U(T0)]]
        eng.ok('UPDATE "w" SET "d" = "e", "n" = "n" + 1')
        assert rows_of(eng.ok('SELECT "d", "n" FROM "w"')) == [[U(T0 + 7), U(1)]]
        eng.ok('UPDATE "w" SET "d" = DATETIME_ADD_US("d", %s), "n" = "n" + 1', [-8])
        assert rows_of(eng.ok('SELECT "d" FROM "w"')) == [[U(T0 - 1)]]
        eng.ok('UPDATE "w" SET "e" = %s, "n" = "n" + 1', [exact(T0 + 3)])
        assert rows_of(eng.ok('SELECT "e" FROM "w"')) == [[U(T0 + 3)]]
        eng.ok('UPDATE "w" SET "e" = NULL, "n" = "n" + 1')
        assert rows_of(eng.ok('SELECT "e" FROM "w"')) == [[None]]
        # ALTER TABLE: a renamed column keeps its microseconds, a dropped one
        # leaves none behind for a column of the same name added later
        eng.ok('UPDATE "w" SET "e" = %s', [exact(T0 + 9)])
        eng.ok('ALTER TABLE "w" RENAME COLUMN "d" TO "d2"')
        assert rows_of(eng.ok('SELECT "d2" FROM "w" WHERE "d2" = %s', [exact(T0 - 1)])) == [[T0 - 1]]
        eng.ok('ALTER TABLE "w" DROP COLUMN "e"')
        # (the remainder field itself, read as a column of its own)
        eng.ok('ALTER TABLE "w" ADD COLUMN "e__us" integer NULL')
        assert rows_of(eng.ok('SELECT "e__us" FROM "w"')) == [[None]]
    finally:
        eng.close()
