"""djongo-sql as a person uses it (issue 19, "tools that behave like their
neighbours"): statements read until ';' as sqlite3 and psql read them, the
prompt's commands, a mistyped data directory or database refused instead
of created empty, real --help and --version, both placeholder styles, and
refusals that say "not supported:" first."""
import os
import shutil
import subprocess

import pytest

TOOL = os.environ.get("DJONGO_SQL") or shutil.which("djongo-sql")
pytestmark = pytest.mark.skipif(TOOL is None, reason="djongo-sql is not built")  # test.sh always sets DJONGO_SQL


def run(*args, stdin=None, cwd=None):
    return subprocess.run([TOOL, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture
def db(tmp_path):
    host = str(tmp_path / "data")
    out = run("--host", host, "--db", "shop", "--create",
              'CREATE TABLE "item" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" text NULL)')
    assert out.returncode == 0, out
    return host


def test_a_missing_data_directory_is_an_error_not_a_new_database(tmp_path):
    typo = tmp_path / "site-dat"
    out = run("--host", str(typo), "SELECT 1")
    assert out.returncode == 1 and "no database at" in out.stderr and "--create" in out.stderr, out
    assert not typo.exists()  # nothing was made
    assert run("--host", str(typo), "--create", "SELECT 1").returncode == 0
    assert (typo / "data.mdb").is_file()


def test_a_missing_database_is_an_error_unless_create(db):
    out = run("--host", db, "--db", "shp", 'SELECT "item"."id" FROM "item"')
    assert out.returncode == 1 and "no database 'shp'" in out.stderr, out
    assert run("--host", db, "--db", "shop", 'SELECT "item"."id" FROM "item"').returncode == 0
    assert run("--host", db, "--db", "shp", "--create", "SELECT 1").returncode == 0


def test_statements_end_at_semicolons_across_lines(db):
    script = ('INSERT INTO "item" ("name")\n'
              "  VALUES ('a;b');  INSERT INTO \"item\" (\"name\") VALUES ('c');\n"
              "-- a comment; with a semicolon\n"
              'SELECT "item"."name"\n'
              '  FROM "item" /* ; */\n'
              ' ORDER BY "item"."id";\n'
              "SELECT 42\n")  # the last statement may omit its ';'
    out = run("--host", db, "--db", "shop", stdin=script)
    assert out.returncode == 0, out
    lines = out.stdout.splitlines()
    assert lines[lines.index("name") + 1:lines.index("name") + 4] == ['"a;b"', '"c"', "(2 rows)"], out.stdout
    assert lines[-2:] == ["42", "(1 row)"], out.stdout


def test_prompt_commands(db):
    out = run("--host", db, "--db", "shop", stdin=".tables\n\\dt\n.help\n\\?\n.nope\n\\q\nSELECT 1;\n")
    assert out.stdout.count("item\n") == 2  # .tables and \dt; djongo's own collections are not listed
    assert "__djongo" not in out.stdout
    assert out.stdout.count(".tables \\dt") == 2  # the help text, twice
    assert "unknown command '.nope'" in out.stderr and out.returncode == 1
    assert "(1 row)" not in out.stdout  # \q left before SELECT 1


def test_help_and_version():
    out = run("--help")
    assert out.returncode == 0 and "--create" in out.stdout and "--host HOST" in out.stdout
    assert "a data directory" in out.stdout  # options are described, not only listed
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("djongo-sql ")
    out = run("--hots", "x")
    assert out.returncode == 2 and "unknown option" in out.stderr


def test_qmark_and_format_placeholders(db):
    out = run("--host", db, "--db", "shop", "--params", '["x", "y"]',
              'INSERT INTO "item" ("name") VALUES (?), (%s)')
    assert out.returncode == 0, out
    out = run("--host", db, "--db", "shop", "--params", '["y"]', '--json',
              'SELECT "item"."name" FROM "item" WHERE "item"."name" = ?')
    assert '"rows" : [ [ "y" ] ]' in out.stdout, out


def test_refusals_begin_not_supported(db):
    out = run("--host", db, "--db", "shop", 'SELECT "item"."id" FROM "item" WHERE "item"."name" -> \'$where\' = 1')
    assert out.returncode == 1 and out.stderr.startswith("error: not supported: "), out
