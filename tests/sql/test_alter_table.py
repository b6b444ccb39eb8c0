"""ALTER TABLE forms SQLite has no statement for (Django's SQLite backend
rebuilds the table instead), executed on the embedded engine alone
(``djongo-sql --batch``): what the table does afterwards is what the
rebuilt SQLite table would do.
"""
import json
import os
import subprocess

import pytest
from bson import json_util

from test_exec_vs_sqlite import TOOL, Engine

pytestmark = pytest.mark.skipif(not TOOL, reason="djongo-sql is not built")


@pytest.fixture
def eng(tmp_path):
    e = Engine(tmp_path / "data")
    e.path = tmp_path / "data"
    yield e
    e.close()


def list_indexes(path, table):
    """{name: (key items, unique, partialFilterExpression)} of the table's
    indexes, read by djongo-engine (beside djongo-sql) from the data directory."""
    tool = os.path.join(os.path.dirname(TOOL), "djongo-engine")
    out = subprocess.run([tool, "--dbpath", str(path), "--db", "exec", json.dumps({"listIndexes": table})],
                         capture_output=True, text=True, check=True).stdout
    return {spec["name"]: (list(spec["key"].items()), spec.get("unique", False), spec.get("partialFilterExpression"))
            for spec in json_util.loads(out)["cursor"]["firstBatch"]}


def test_alter_column_type_autoincrement(eng):
    """TYPE t AUTOINCREMENT makes the column number itself (Django's
    IntegerField -> AutoField primary key), past the ids stored; TYPE t
    without it stops that (AutoField -> IntegerField)."""
    eng.ok('CREATE TABLE "t" ("i" integer NOT NULL PRIMARY KEY, "j" integer NOT NULL UNIQUE)')
    eng.ok('INSERT INTO "t" ("i", "j") VALUES (%s, %s)', [5, 1])
    res = eng.run('INSERT INTO "t" ("i", "j") VALUES (%s, %s)', [None, 2])
    assert res["error"]["code"] == 121, res  # NOT NULL: no id is given for it
    eng.ok('ALTER TABLE "t" ALTER COLUMN "i" TYPE integer AUTOINCREMENT')
    assert eng.ok('INSERT INTO "t" ("i", "j") VALUES (%s, %s) RETURNING "t"."i"', [None, 2])["rows"] == [[6]]
    assert eng.ok('INSERT INTO "t" ("j") VALUES (%s) RETURNING "t"."i"', [3])["rows"] == [[7]]
    eng.ok('ALTER TABLE "t" ALTER COLUMN "i" TYPE bigint')
    res = eng.run('INSERT INTO "t" ("i", "j") VALUES (%s, %s)', [None, 4])
    assert res["error"]["code"] == 121, res
    assert eng.ok('SELECT "t"."i", "t"."j" FROM "t" ORDER BY "t"."j"')["rows"] == [[5, 1], [6, 2], [7, 3]]


def test_rename_column_moves_its_indexes(eng):
    """RENAME COLUMN: a UNIQUE column stays unique under its new name, an
    index (with its name, options and partial filter) moves to it --
    indexes belong to the column in SQL."""
    eng.ok('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "slug" varchar(10) NOT NULL UNIQUE, '
           '"w" integer NULL, "n" integer NULL)')
    eng.ok('CREATE INDEX "t_w_slug" ON "t" ("w", "slug" DESC)')
    eng.ok('CREATE UNIQUE INDEX "t_n_part" ON "t" ("n") WHERE "slug" IS NOT NULL')
    eng.ok('INSERT INTO "t" ("id", "slug", "w", "n") VALUES (%s, %s, %s, %s)', [1, "a", 1, 7])
    eng.ok('ALTER TABLE "t" RENAME COLUMN "slug" TO "slug2"')
    res = eng.run('INSERT INTO "t" ("id", "slug2") VALUES (%s, %s)', [2, "a"])
    assert res["error"]["code"] == 11000, res
    res = eng.run('INSERT INTO "t" ("id", "slug2", "n") VALUES (%s, %s, %s)', [3, "b", 7])
    assert res["error"]["code"] == 11000, res  # the partial index's filter reads the new name
    eng.ok('INSERT INTO "t" ("id", "slug2") VALUES (%s, %s)', [4, "c"])
    eng.ok('ALTER TABLE "t" RENAME COLUMN "w" TO "weight"')
    eng.ok('ALTER TABLE "t" RENAME COLUMN "id" TO "pk"')
    indexes = list_indexes(eng.path, "t")
    assert indexes["t_w_slug"] == ([("weight", 1), ("slug2", -1)], False, None)
    assert indexes["t_n_part"] == ([("n", 1)], True, {"slug2": {"$ne": None}})
    assert sorted(k for key, _, _ in indexes.values() for k, _ in key) == ["_id", "n", "pk", "slug2", "slug2", "weight"]
    res = eng.run('INSERT INTO "t" ("pk", "slug2") VALUES (%s, %s)', [4, "d"])
    assert res["error"]["code"] == 11000, res  # the primary key too


def test_drop_column_drops_its_indexes(eng):
    """DROP COLUMN: the indexes that name the column go with it, those over
    several columns and those whose partial filter reads it too (as
    PostgreSQL drops them); the others stay."""
    eng.ok('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "slug" varchar(10) NULL UNIQUE, '
           '"w" integer NULL, "n" integer NULL)')
    eng.ok('CREATE INDEX "t_w_slug" ON "t" ("w", "slug")')
    eng.ok('CREATE UNIQUE INDEX "t_n_part" ON "t" ("n") WHERE "slug" IS NOT NULL')
    eng.ok('CREATE INDEX "t_w" ON "t" ("w")')
    eng.ok('INSERT INTO "t" ("id", "slug", "w", "n") VALUES (%s, %s, %s, %s), (%s, %s, %s, %s)',
           [1, "a", 1, 7, 2, "b", 1, 8])
    before = list_indexes(eng.path, "t")
    eng.ok('ALTER TABLE "t" DROP COLUMN "slug"')
    after = list_indexes(eng.path, "t")
    assert set(before) - set(after) == {"t_slug_uniq", "t_w_slug", "t_n_part"} and len(after) == 3, before
    assert after["t_w"] == ([("w", 1)], False, None)
    eng.ok('INSERT INTO "t" ("id", "n") VALUES (%s, %s)', [3, 7])  # n's partial unique index went


def test_add_column_expression_default(eng):
    """ADD COLUMN ... DEFAULT (expression): the rows there are get its value,
    as the table SQLite's backend rebuilds would hold (Django's
    db_default=Pi()); one that reads a column is refused."""
    eng.ok('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "a" integer NULL)')
    eng.ok('INSERT INTO "t" ("id", "a") VALUES (%s, %s), (%s, %s)', [1, 10, 2, None])
    eng.ok('ALTER TABLE "t" ADD COLUMN "h" real DEFAULT (PI()) NOT NULL')
    eng.ok('ALTER TABLE "t" ADD COLUMN "s" text DEFAULT (UPPER(%s) || %s) NULL', ["ab", "c"])
    rows = eng.ok('SELECT "t"."id", "t"."h", "t"."s" FROM "t" ORDER BY "t"."id"')["rows"]
    assert [(r[0], round(r[1], 12), r[2]) for r in rows] == [(1, 3.14159265359, "ABc"), (2, 3.14159265359, "ABc")]
    res = eng.run('ALTER TABLE "t" ADD COLUMN "b" integer DEFAULT ("a" + 1) NULL', [])
    assert "DEFAULT that reads a column" in res["error"]["message"], res
