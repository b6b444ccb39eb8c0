"""Stored generated columns (GENERATED ALWAYS AS (e) STORED, Django's
GeneratedField), executed: each statement runs on SQLite and on the embedded
engine (``djongo-sql --batch``); both must succeed or both fail, and the
table -- generated columns included -- must then hold the same rows.

SQLite is the reference: the column is computed from the row's final
values on every INSERT and UPDATE (also UPDATEs that change other columns
only, and the update half of an upsert), a column may read one defined
before it, and writing one is refused. What SQLite's ALTER TABLE cannot do
(ADD COLUMN ... STORED) is checked against the engine alone.
"""
import sqlite3

import pytest

from test_constraints_vs_sqlite import both  # noqa: F401  (the fixture: SQLite and the engine)
from test_exec_vs_sqlite import TOOL, Engine, norm_rows, run_both

SCHEMA = (
    'CREATE TABLE "g" ("id" integer NOT NULL PRIMARY KEY, "a" integer NOT NULL, "b" integer NULL, '
    '"name" varchar(20) NULL, '
    '"total" integer GENERATED ALWAYS AS (("a" + "b")) STORED, '
    '"twice" integer GENERATED ALWAYS AS (("total" * 2)) STORED, '
    '"low" varchar(30) GENERATED ALWAYS AS (LOWER(("name" || %s))) STORED, '
    '"size" varchar(5) GENERATED ALWAYS AS (CASE WHEN "a" > %s THEN %s ELSE %s END) STORED)'
)
SCHEMA_PARAMS = ["-X", 10, "big", "small"]

# (sql, params); each runs on both and must succeed or fail alike
STEPS = [
    ('INSERT INTO "g" ("id", "a", "b", "name") VALUES (%s, %s, %s, %s)', [1, 1, 2, "Ann"]),
    ('INSERT INTO "g" ("id", "a", "b", "name") VALUES (%s, %s, %s, %s), (%s, %s, %s, %s)',
     [2, 20, None, "BOB", 3, 5, 5, None]),
    ('INSERT INTO "g" ("id", "a") VALUES (%s, %s)', [4, 30]),
    # writing a generated column is refused
    ('INSERT INTO "g" ("id", "a", "total") VALUES (%s, %s, %s)', [5, 1, 9]),
    ('UPDATE "g" SET "total" = %s WHERE "g"."id" = %s', [9, 1]),
    ('UPDATE "g" SET "a" = %s, "twice" = %s WHERE "g"."id" = %s', [2, 9, 1]),
    # constant SET, expression SET, other columns only
    ('UPDATE "g" SET "b" = %s WHERE "g"."id" = %s', [7, 2]),
    ('UPDATE "g" SET "a" = ("g"."a" + %s) WHERE "g"."id" IN (%s, %s)', [10, 1, 3]),
    ('UPDATE "g" SET "a" = "g"."b", "b" = "g"."a" WHERE "g"."id" = %s', [3]),
    ('UPDATE "g" SET "name" = %s WHERE "g"."name" IS NULL', ["Zed"]),
    ('UPDATE "g" SET "b" = NULL WHERE "g"."id" = %s', [1]),
    # the update half of an upsert recomputes too
    ('INSERT INTO "g" ("id", "a", "b", "name") VALUES (%s, %s, %s, %s), (%s, %s, %s, %s) '
     'ON CONFLICT("id") DO UPDATE SET "a" = EXCLUDED."a", "b" = EXCLUDED."b"',
     [1, 40, 1, "no", 6, 3, 4, "New"]),
]

READ = 'SELECT "id", "a", "b", "name", "total", "twice", "low", "size" FROM "g" ORDER BY "id"'


def inline(sql, params):
    """SQLite takes no parameters in a generated column's expression: they
    go in as literals (Django's SQLite backend quotes them the same way)."""
    for p in params:
        sql = sql.replace("%s", "'%s'" % p if isinstance(p, str) else str(p), 1)
    return sql


def test_generated_columns_match_sqlite(both):
    lite, eng = both
    lite.execute(inline(SCHEMA, SCHEMA_PARAMS))
    eng.ok(SCHEMA, SCHEMA_PARAMS)
    refused = 0
    for sql, params in STEPS:
        error, res = run_both(lite, eng, sql, params, sqlite3.OperationalError)
        if error:
            refused += 1
            assert "generated column" in str(error) and "generated column" in res["error"]["message"], (sql, res)
        want = norm_rows(lite.execute(READ).fetchall())
        assert norm_rows(eng.run(READ, [])["rows"]) == want, (sql, params)
    assert refused == 3


def test_insert_returning_reads_the_computed_value(both):
    lite, eng = both
    lite.execute(inline(SCHEMA, SCHEMA_PARAMS))
    eng.run(SCHEMA, SCHEMA_PARAMS)
    sql = 'INSERT INTO "g" ("id", "a", "b", "name") VALUES (%s, %s, %s, %s) RETURNING "id", "total", "low"'
    want = lite.execute(sql.replace("%s", "?"), [1, 4, 5, "Q"]).fetchall()
    assert norm_rows(eng.run(sql, [1, 4, 5, "Q"])["rows"]) == norm_rows(want) == [(1, 9, "q-x")]


def test_alter_table_add_and_drop_generated_column(tmp_path):
    """SQLite cannot ALTER TABLE ADD a STORED column (PostgreSQL can, and
    Django's migrations do): existing rows get it computed, later writes
    keep it up to date, and once dropped it is neither computed nor kept."""
    if TOOL is None:
        pytest.fail("djongo-sql is not installed (pip install . puts it on PATH)")
    eng = Engine(tmp_path / "a")
    ok = eng.ok
    try:
        ok('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "a" integer NULL)')
        ok('INSERT INTO "t" ("id", "a") VALUES (1, 5), (2, NULL)')
        ok('ALTER TABLE "t" ADD COLUMN "sq" integer GENERATED ALWAYS AS (("a" * "a")) STORED')
        assert ok('SELECT "id", "sq" FROM "t" ORDER BY "id"')["rows"] == [[1, 25], [2, None]]
        ok('UPDATE "t" SET "a" = 3 WHERE "id" = 2')
        ok('INSERT INTO "t" ("id", "a") VALUES (3, 4)')
        assert ok('SELECT "id", "sq" FROM "t" ORDER BY "id"')["rows"] == [[1, 25], [2, 9], [3, 16]]
        res = eng.run('UPDATE "t" SET "sq" = 1', [])
        assert res["error"]["message"] == 'cannot UPDATE generated column "sq"', res
        # renamed, it is still computed
        ok('ALTER TABLE "t" RENAME COLUMN "sq" TO "square"')
        ok('UPDATE "t" SET "a" = 6 WHERE "id" = 1')
        assert ok('SELECT "id", "square" FROM "t" ORDER BY "id"')["rows"] == [[1, 36], [2, 9], [3, 16]]
        # ... and so it is when a column it reads is renamed
        ok('ALTER TABLE "t" RENAME COLUMN "a" TO "x"')
        ok('UPDATE "t" SET "x" = 7 WHERE "id" = 3')
        assert ok('SELECT "id", "square" FROM "t" ORDER BY "id"')["rows"] == [[1, 36], [2, 9], [3, 49]]
        ok('ALTER TABLE "t" DROP COLUMN "square"')
        # a dropped generated column is no longer computed, nor may it be written
        res = eng.run('INSERT INTO "t" ("id", "x", "square") VALUES (4, 2, 7)', [])
        assert res["error"]["message"].startswith("no such column: square"), res
        ok('INSERT INTO "t" ("id", "x") VALUES (4, 2)')
        assert ok('SELECT "id", "x" FROM "t" ORDER BY "id"')["rows"] == [[1, 6], [2, 3], [3, 7], [4, 2]]
        # a dropped column is no column of the table any more, as in SQL
        res = eng.run('SELECT "id", "square" FROM "t" ORDER BY "id"', [])
        assert res["error"]["message"].startswith("no such column: square"), res
    finally:
        eng.close()


# An index on expressions is an index on hidden computed fields
# (src/compile/ddl.c): a UNIQUE one is enforced by INSERT and UPDATE as
# SQLite's expression index is, NULLs apart; DROP INDEX lifts it.
INDEX_STEPS = [
    ('CREATE TABLE "u" ("id" integer NOT NULL PRIMARY KEY, "name" varchar(10) NULL, "k" integer NULL)', []),
    ('INSERT INTO "u" ("id", "name", "k") VALUES (%s, %s, %s), (%s, %s, %s)', [1, "Ann", 1, 2, "Bob", 1]),
    ('CREATE UNIQUE INDEX "u_lower_k" ON "u" ((LOWER("name")), "k")', []),
    ('INSERT INTO "u" ("id", "name", "k") VALUES (%s, %s, %s)', [3, "ANN", 1]),
    ('INSERT INTO "u" ("id", "name", "k") VALUES (%s, %s, %s)', [3, "ANN", 2]),
    ('INSERT INTO "u" ("id", "name", "k") VALUES (%s, %s, %s), (%s, %s, %s)', [4, None, 1, 5, None, 1]),
    ('UPDATE "u" SET "name" = %s WHERE "id" = %s', ["bOB", 1]),
    ('UPDATE "u" SET "k" = "k" - %s WHERE "id" = %s', [1, 3]),
    ('DROP INDEX "u_lower_k"', []),
    ('UPDATE "u" SET "name" = %s WHERE "id" = %s', ["bOB", 1]),
]


def test_expression_index_matches_sqlite(both):
    lite, eng = both
    refused = 0
    for sql, params in INDEX_STEPS:
        mine = sql.replace('DROP INDEX "u_lower_k"', 'DROP INDEX "u_lower_k" ON "u"')
        try:
            lite.execute(sql.replace("%s", "?"), params)
            error = None
        except sqlite3.IntegrityError as e:
            error = e
        res = eng.run(mine, params)
        assert ("error" in res) == (error is not None), (sql, res)
        if error:
            refused += 1
            assert res["error"]["code"] == 11000, res
        read = 'SELECT * FROM "u" ORDER BY "id"'
        assert norm_rows(eng.ok(read)["rows"]) == norm_rows(lite.execute(read).fetchall()), sql
    assert refused == 3
