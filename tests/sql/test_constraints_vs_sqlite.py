"""CHECK and FOREIGN KEY constraints, executed: each statement runs on SQLite
(foreign keys on) and on the embedded engine (``djongo-sql --batch``); it
must succeed on both or fail on both -- IntegrityError on SQLite, the
engine's DocumentValidationFailure (121) -- and the tables must then hold
the same rows.

SQLite is the reference: a CHECK passes when its condition is TRUE or NULL
(UNKNOWN); a NOT DEFERRABLE foreign key is checked at the end of each
statement; a DEFERRABLE INITIALLY DEFERRED one at COMMIT, which fails and
leaves the transaction open. What SQLite cannot do (ALTER TABLE ADD/DROP
CONSTRAINT, RENAME COLUMN inside a CHECK it keeps as text) is checked
against the engine alone, at the end.
"""
import sqlite3

import pytest

from test_exec_vs_sqlite import TOOL, Engine, norm_rows, run_both

SCHEMA = [
    'CREATE TABLE "prod" ("id" integer NOT NULL PRIMARY KEY, "qty" integer unsigned NULL CHECK ("qty" >= 0), '
    '"price" integer NULL, "sale" integer NULL, "unit" varchar(10) NULL, '
    'CONSTRAINT "price_gt_sale" CHECK ("price" > "sale"), '
    'CONSTRAINT "unit_list" CHECK (("unit" IS NULL OR "unit" IN (\'kg\', \'l\'))), '
    'CONSTRAINT "not_both" CHECK (NOT ("qty" = 0 AND "price" = 0)))',
    'CREATE TABLE "parent" ("id" integer NOT NULL PRIMARY KEY, "name" varchar(10) NULL)',
    'CREATE TABLE "child" ("id" integer NOT NULL PRIMARY KEY, "p_id" integer NULL, '
    'CONSTRAINT "child_p" FOREIGN KEY ("p_id") REFERENCES "parent" ("id") DEFERRABLE INITIALLY DEFERRED)',
    'CREATE TABLE "strict" ("id" integer NOT NULL PRIMARY KEY, "p_id" integer NULL, '
    'CONSTRAINT "strict_p" FOREIGN KEY ("p_id") REFERENCES "parent" ("id"))',
]

# (sql, params); each runs on both and must succeed or fail alike
STEPS = [
    # CHECK: TRUE or NULL passes, FALSE fails
    ('INSERT INTO "prod" ("id", "qty", "price", "sale") VALUES (%s, %s, %s, %s)', [1, 5, 10, 5]),
    ('INSERT INTO "prod" ("id", "qty", "price", "sale") VALUES (%s, %s, %s, %s)', [2, -1, 10, 5]),
    ('INSERT INTO "prod" ("id", "qty", "price", "sale") VALUES (%s, %s, %s, %s)', [3, None, 10, 20]),
    ('INSERT INTO "prod" ("id", "qty", "price", "sale") VALUES (%s, %s, %s, %s)', [4, None, None, 20]),
    ('INSERT INTO "prod" ("id", "price") VALUES (%s, %s)', [5, 3]),
    ('INSERT INTO "prod" ("id", "unit") VALUES (%s, %s)', [6, "kg"]),
    ('INSERT INTO "prod" ("id", "unit") VALUES (%s, %s)', [7, "oz"]),
    ('INSERT INTO "prod" ("id", "qty", "price") VALUES (%s, %s, %s)', [8, 0, 0]),
    ('INSERT INTO "prod" ("id", "qty", "price") VALUES (%s, %s, %s)', [9, 0, None]),
    # a multi-row INSERT with one bad row leaves none
    ('INSERT INTO "prod" ("id", "qty") VALUES (%s, %s), (%s, %s)', [10, 1, 11, -5]),
    # UPDATE: constant and computed values
    ('UPDATE "prod" SET "qty" = %s WHERE "prod"."id" = %s', [-3, 1]),
    ('UPDATE "prod" SET "qty" = ("prod"."qty" - %s) WHERE "prod"."id" = %s', [9, 1]),
    ('UPDATE "prod" SET "qty" = ("prod"."qty" - %s) WHERE "prod"."id" = %s', [5, 1]),
    ('UPDATE "prod" SET "sale" = %s WHERE "prod"."sale" IS NULL', [100]),
    ('UPDATE "prod" SET "sale" = %s WHERE "prod"."id" = %s', [1, 5]),
    # FOREIGN KEY, NOT DEFERRABLE: checked at the statement's end
    ('INSERT INTO "parent" ("id", "name") VALUES (%s, %s), (%s, %s)', [1, "a", 2, "b"]),
    ('INSERT INTO "strict" ("id", "p_id") VALUES (%s, %s)', [1, 1]),
    ('INSERT INTO "strict" ("id", "p_id") VALUES (%s, %s)', [2, 3]),
    ('INSERT INTO "strict" ("id", "p_id") VALUES (%s, %s)', [3, None]),
    ('UPDATE "strict" SET "p_id" = %s WHERE "strict"."id" = %s', [9, 1]),
    ('UPDATE "strict" SET "p_id" = %s WHERE "strict"."id" = %s', [2, 1]),
    ('DELETE FROM "parent" WHERE "parent"."id" = %s', [2]),
    ('UPDATE "parent" SET "id" = %s WHERE "parent"."id" = %s', [7, 2]),
    ('UPDATE "parent" SET "name" = %s WHERE "parent"."id" = %s', ["bb", 2]),
    ('DELETE FROM "parent" WHERE "parent"."id" = %s', [1]),
    # DEFERRABLE INITIALLY DEFERRED outside a transaction: at the statement's end
    ('INSERT INTO "child" ("id", "p_id") VALUES (%s, %s)', [1, 5]),
    ('INSERT INTO "child" ("id", "p_id") VALUES (%s, %s)', [1, 1]),
    ('DELETE FROM "parent" WHERE "parent"."id" = %s', [1]),
    # ... inside one: at COMMIT, so the order of the writes is free
    ('BEGIN', []),
    ('INSERT INTO "child" ("id", "p_id") VALUES (%s, %s)', [2, 3]),
    ('INSERT INTO "parent" ("id", "name") VALUES (%s, %s)', [3, "c"]),
    ('COMMIT', []),
    ('BEGIN', []),
    ('INSERT INTO "child" ("id", "p_id") VALUES (%s, %s)', [3, 4]),
    ('COMMIT', []),
    ('DELETE FROM "child" WHERE "child"."id" = %s', [3]),
    ('COMMIT', []),
    ('BEGIN', []),
    ('DELETE FROM "parent" WHERE "parent"."id" = %s', [3]),
    ('COMMIT', []),
    ('ROLLBACK', []),
    ('BEGIN', []),
    ('DELETE FROM "child" WHERE "child"."p_id" = %s', [3]),
    ('DELETE FROM "parent" WHERE "parent"."id" = %s', [3]),
    ('COMMIT', []),
    ('BEGIN', []),
    ('INSERT INTO "child" ("id", "p_id") VALUES (%s, %s)', [4, 8]),
    ('ROLLBACK', []),
]

TABLES = {
    "prod": '"id", "qty", "price", "sale", "unit"',
    "parent": '"id", "name"',
    "child": '"id", "p_id"',
    "strict": '"id", "p_id"',
}


def read(run, table):
    return norm_rows(run('SELECT %s FROM "%s" ORDER BY "id"' % (TABLES[table], table)))


@pytest.fixture
def both(tmp_path):
    if TOOL is None:
        pytest.fail("djongo-sql is not installed (pip install . puts it on PATH)")
    lite = sqlite3.connect(":memory:", isolation_level=None)
    lite.execute("PRAGMA foreign_keys = ON")
    eng = Engine(tmp_path / "c")
    yield lite, eng
    eng.close()
    lite.close()


def test_constraints_match_sqlite(both):
    lite, eng = both
    for ddl in SCHEMA:
        lite.execute(ddl)
        res = eng.run(ddl, [])
        assert "error" not in res, res
    failures = 0
    for sql, params in STEPS:
        error, res = run_both(lite, eng, sql, params, sqlite3.IntegrityError)
        if error:
            failures += 1
            assert res["error"]["code"] == 121, (sql, params, res)
        for table in TABLES:
            want = read(lambda s: lite.execute(s).fetchall(), table)
            assert read(lambda s: eng.run(s, [])["rows"], table) == want, (sql, params, table)
    assert failures == 16  # the steps that break a constraint, so that a check that never fires fails here


def test_alter_table_constraints(tmp_path):
    """What SQLite's ALTER TABLE cannot do: add and drop CHECKs by name
    (existing rows are checked first), rename a column a CHECK reads, drop
    a column and the CHECKs on it, and the FOREIGN KEYs added by Django's
    ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY."""
    if TOOL is None:
        pytest.fail("djongo-sql is not installed (pip install . puts it on PATH)")
    eng = Engine(tmp_path / "a")

    def ok(sql, params=()):
        res = eng.run(sql, list(params))
        assert "error" not in res, (sql, res)
        return res

    def fails(sql, params=(), code=121):
        res = eng.run(sql, list(params))
        assert "error" in res and res["error"]["code"] == code, (sql, res)

    try:
        ok('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "a" integer NULL, "b" integer NULL)')
        ok('INSERT INTO "t" ("id", "a", "b") VALUES (1, 5, 1), (2, NULL, 1)')
        # a row breaks it: refused, and nothing changes
        fails('ALTER TABLE "t" ADD CONSTRAINT "a_lt_b" CHECK ("a" < "b")')
        ok('INSERT INTO "t" ("id", "a", "b") VALUES (3, 9, 1)')
        ok('DELETE FROM "t" WHERE "a" > 1')
        ok('ALTER TABLE "t" ADD CONSTRAINT "a_lt_b" CHECK ("a" < "b")')
        fails('INSERT INTO "t" ("id", "a", "b") VALUES (4, 9, 1)')
        # the CHECK follows a renamed column
        ok('ALTER TABLE "t" RENAME COLUMN "a" TO "z"')
        fails('INSERT INTO "t" ("id", "z", "b") VALUES (4, 9, 1)')
        ok('INSERT INTO "t" ("id", "z", "b") VALUES (4, 0, 1)')
        # dropped by name; an unknown name is an error
        ok('ALTER TABLE "t" DROP CONSTRAINT "a_lt_b"')
        ok('INSERT INTO "t" ("id", "z", "b") VALUES (5, 9, 1)')
        fails('ALTER TABLE "t" DROP CONSTRAINT "a_lt_b"', code=27)
        # a column's CHECK goes with the column
        ok('ALTER TABLE "t" ADD COLUMN "n" integer unsigned NULL CHECK ("n" >= 0)')
        fails('UPDATE "t" SET "n" = -1 WHERE "id" = 2')
        ok('ALTER TABLE "t" DROP COLUMN "n"')
        fails('UPDATE "t" SET "n" = -1 WHERE "id" = 2', code=6)  # no such column, as in SQLite
        ok('ALTER TABLE "t" ADD COLUMN "n" integer NULL')
        ok('UPDATE "t" SET "n" = -1 WHERE "id" = 2')
        # Django's foreign keys: added after the tables, deferred
        ok('CREATE TABLE "c" ("id" integer NOT NULL PRIMARY KEY, "t_id" integer NULL)')
        ok('ALTER TABLE "c" ADD CONSTRAINT "c_t_id_fk_t_id" FOREIGN KEY ("t_id") REFERENCES "t" ("id") '
           'DEFERRABLE INITIALLY DEFERRED')
        fails('INSERT INTO "c" ("id", "t_id") VALUES (1, 77)')
        ok('INSERT INTO "c" ("id", "t_id") VALUES (1, 2)')
        fails('DELETE FROM "t" WHERE "id" = 2')
        # the key follows a renamed parent table and column
        ok('ALTER TABLE "t" RENAME TO "tt"')
        ok('ALTER TABLE "c" RENAME COLUMN "t_id" TO "tt_id"')
        fails('DELETE FROM "tt" WHERE "id" = 2')
        fails('UPDATE "c" SET "tt_id" = 78 WHERE "id" = 1')
        # ... and a renamed referenced column
        ok('CREATE TABLE "u" ("id" integer NOT NULL PRIMARY KEY, "code" integer NULL)')
        ok('INSERT INTO "u" ("id", "code") VALUES (1, 10)')
        ok('CREATE TABLE "v" ("id" integer NOT NULL PRIMARY KEY, "code" integer NULL, '
           'CONSTRAINT "v_u" FOREIGN KEY ("code") REFERENCES "u" ("code"))')
        ok('INSERT INTO "v" ("id", "code") VALUES (1, 10)')
        ok('ALTER TABLE "u" RENAME COLUMN "code" TO "ref"')
        fails('DELETE FROM "u" WHERE "ref" = 10')
        fails('INSERT INTO "v" ("id", "code") VALUES (2, 11)')
        ok('INSERT INTO "u" ("id", "ref") VALUES (2, 11)')
        ok('INSERT INTO "v" ("id", "code") VALUES (2, 11)')
        ok('ALTER TABLE "c" DROP CONSTRAINT "c_t_id_fk_t_id"')
        ok('UPDATE "c" SET "tt_id" = 78 WHERE "id" = 1')
        ok('DELETE FROM "tt" WHERE "id" = 2')
    finally:
        eng.close()
