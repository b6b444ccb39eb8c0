"""COLLATE (Django's Collate), executed: comparisons and ORDER BY under
binary and nocase on SQLite and on the embedded engine (``djongo-sql
--batch``) must give the same rows (ASCII text: SQLite's NOCASE folds ASCII
letters only, djongo's every script's); the ICU collations SQLite lacks are
checked against the order the locale's rules give."""
import sqlite3

import pytest

from test_exec_vs_sqlite import TOOL, Engine, norm_rows

SCHEMA = 'CREATE TABLE "au" ("id" integer NOT NULL PRIMARY KEY, "alias" varchar(10) NULL, "name" varchar(10) NULL)'
ROWS = [(1, "a", "Jones 1"), (2, "A", "Jones 2"), (3, "b", "x"), (4, "B", "y"), (5, None, "z"), (6, "ab", "w"),
        (7, "Ab", "v")]

QUERIES = [
    ('SELECT "id" FROM "au" WHERE "alias" = (%s COLLATE "nocase") ORDER BY "id"', ["a"]),
    ('SELECT "id" FROM "au" WHERE ("alias" COLLATE "nocase") = %s ORDER BY "id"', ["AB"]),
    ('SELECT "id" FROM "au" WHERE "alias" = (%s COLLATE "binary") ORDER BY "id"', ["a"]),
    ('SELECT "id" FROM "au" WHERE "alias" <> (%s COLLATE "nocase") ORDER BY "id"', ["a"]),
    ('SELECT "id" FROM "au" WHERE "alias" > (%s COLLATE "nocase") ORDER BY "id"', ["a"]),
    ('SELECT "id" FROM "au" WHERE NOT ("alias" = (%s COLLATE "nocase")) ORDER BY "id"', ["b"]),
    ('SELECT "id" FROM "au" WHERE "alias" IN (%s, %s) ORDER BY "id"', ["a", "B"]),
    ('SELECT "id", "alias" FROM "au" ORDER BY "alias" COLLATE "binary" ASC, "id"', []),
    ('SELECT "id", "alias" FROM "au" ORDER BY "alias" COLLATE "nocase" ASC, "id" DESC', []),
    ('SELECT "id", "alias" FROM "au" ORDER BY "alias" COLLATE "nocase" DESC, "name"', []),
]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    if TOOL is None:
        pytest.fail("djongo-sql is not installed (pip install . puts it on PATH)")
    lite = sqlite3.connect(":memory:")
    eng = Engine(tmp_path_factory.mktemp("collate"))
    lite.execute(SCHEMA)
    assert "error" not in eng.run(SCHEMA, [])
    for r in ROWS:
        sql = 'INSERT INTO "au" ("id", "alias", "name") VALUES (%s, %s, %s)'
        lite.execute(sql.replace("%s", "?"), r)
        assert "error" not in eng.run(sql, list(r))
    yield lite, eng
    eng.close()
    lite.close()


@pytest.mark.parametrize("sql,params", QUERIES)
def test_collate_matches_sqlite(both, sql, params):
    lite, eng = both
    want = norm_rows(lite.execute(sql.replace("%s", "?"), params).fetchall())
    res = eng.run(sql, params)
    assert "error" not in res, res
    assert norm_rows(res["rows"]) == want
    assert want


def test_icu_collations(tmp_path):
    """Swedish sorts Ö after Z, English with O; level2 ignores case, level1
    accents too (Django's test_language_collation_order_by)."""
    if TOOL is None:
        pytest.fail("djongo-sql is not installed (pip install . puts it on PATH)")
    eng = Engine(tmp_path / "icu")
    try:
        eng.run('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "s" varchar(5) NULL)', [])
        for i, s in enumerate(["a", "A", "O", "\u00d6", "P", "Z", "o"], 1):
            eng.run('INSERT INTO "t" ("id", "s") VALUES (%s, %s)', [i, s])

        def ids(sql, params=()):
            return [r[0] for r in eng.ok(sql, params)["rows"]]
        assert ids('SELECT "id" FROM "t" ORDER BY "s" COLLATE "sv-u-ks-level2", "id"') == [1, 2, 3, 7, 5, 6, 4]
        assert ids('SELECT "id" FROM "t" ORDER BY "s" COLLATE "en-x-icu", "id"') == [1, 2, 7, 3, 4, 5, 6]
        assert ids('SELECT "id" FROM "t" WHERE "s" = (%s COLLATE "sv-u-ks-level2") ORDER BY "id"', ["\u00f6"]) == [4]
        assert ids('SELECT "id" FROM "t" WHERE "s" = (%s COLLATE "en-u-ks-level1") ORDER BY "id"', ["o"]) == [3, 4, 7]
        res = eng.run('SELECT "id" FROM "t" ORDER BY "s" COLLATE "klingon"', [])
        assert res["error"]["message"].startswith('not supported: collation "klingon"'), res
    finally:
        eng.close()
