"""ALTER TABLE forms SQLite has no statement for (Django's SQLite backend
rebuilds the table instead), executed on the embedded engine alone
(``djongo-sql --batch``): what the table does afterwards is what the
rebuilt SQLite table would do.
"""
import pytest

from test_exec_vs_sqlite import TOOL, Engine

pytestmark = pytest.mark.skipif(not TOOL, reason="djongo-sql is not built")


@pytest.fixture
def eng(tmp_path):
    e = Engine(tmp_path / "data")
    yield e
    e.close()


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
