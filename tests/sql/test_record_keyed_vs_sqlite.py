"""A table's INTEGER PRIMARY KEY keys its rows (the engine's record-keyed
index, src/engine/storage/ridkey.c), as SQLite's rowid table does: rows
come back in key order without ORDER BY, a duplicate key is an
IntegrityError on both (11000 on the engine), an UPDATE of the key moves
the row, and a key that is no positive integer still works. Each statement
runs on SQLite and on the embedded engine (djongo-sql --batch) and must
give the same rows. (Once a key is no positive integer, the engine's rows
keep the order they had: from then on the table is compared sorted.)"""
import sqlite3

from test_exec_vs_sqlite import Engine, norm_rows, run_both

TABLES = [
    'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "name" varchar(10) NULL)',
    'CREATE TABLE "b" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "t_id" integer NULL)',
    'CREATE TABLE "c" ("k" integer NOT NULL, "v" text NULL, PRIMARY KEY ("k"))',
]

# (sql, params) run on both, then every table compared without ORDER BY
STEPS = [
    ('INSERT INTO "t" ("id", "name") VALUES (%s, %s), (%s, %s), (%s, %s)', [30, "c", 10, "a", 20, "b"]),
    ('INSERT INTO "t" ("id", "name") VALUES (%s, %s)', [10, "dup"]),
    ('INSERT INTO "b" ("t_id") VALUES (%s), (%s), (%s)', [30, 10, 20]),
    ('INSERT INTO "c" ("k", "v") VALUES (%s, %s), (%s, %s)', [5, "five", 2, "two"]),
    ('INSERT INTO "c" ("k", "v") VALUES (%s, %s)', [2, "again"]),
    ('UPDATE "t" SET "id" = %s WHERE "t"."id" = %s', [5, 30]),
    ('UPDATE "t" SET "id" = %s WHERE "t"."id" = %s', [20, 10]),
    ('UPDATE "t" SET "id" = ("t"."id" + %s) WHERE "t"."id" >= %s', [100, 10]),
    ('DELETE FROM "t" WHERE "t"."id" = %s', [120]),
    ('INSERT INTO "t" ("id", "name") VALUES (%s, %s)', [7, "g"]),
    ('UPDATE "c" SET "k" = %s WHERE "c"."k" = %s', [-1, 5]),
    ('INSERT INTO "c" ("k", "v") VALUES (%s, %s), (%s, %s)', [0, "zero", 3, "three"]),
]


def test_rows_in_key_order_as_sqlite(tmp_path):
    lite = sqlite3.connect(":memory:")
    eng = Engine(tmp_path / "rk")
    try:
        for ddl in TABLES:
            lite.execute(ddl)
            eng.ok(ddl)
        refused = []
        unkeyed = set()
        for sql, params in STEPS:
            if '"c" SET "k"' in sql:
                unkeyed.add("c")  # (-1: no positive integer)
            err, res = run_both(lite, eng, sql, params, sqlite3.IntegrityError)
            if err is not None:
                assert res["error"]["code"] == 11000, res
                refused.append(sql)
            for table in ("t", "b", "c"):
                q = 'SELECT * FROM "%s"' % table
                want = norm_rows(lite.execute(q).fetchall())
                got = norm_rows(eng.ok(q)["rows"])
                if table in unkeyed:
                    got, want = sorted(got), sorted(want)
                assert got == want, (sql, table, got, want)
            q = 'SELECT "t"."name" FROM "t" WHERE "t"."id" > %s AND "t"."id" <= %s'
            assert norm_rows(eng.ok(q, [6, 110])["rows"]) == norm_rows(lite.execute(q.replace("%s", "?"), [6, 110]).fetchall())
        assert len(refused) == 3
    finally:
        eng.close()
