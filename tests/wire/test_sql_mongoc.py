"""SQL over djongo.driver's libmongoc transport (against djongo-server, as
against a real MongoDB): what the SQL compiler translates to the embedded
engine's own operators ($_djongo..., src/engine/expr/ops_djongo.c) -- SQL
functions MongoDB has no operator for -- is refused by name before anything
is sent, rather than failing on the server as an unknown expression."""
import pytest

from djongo import driver

ENGINE_ONLY = ["MD5", "SHA1", "SHA224", "SHA256", "SHA384", "SHA512", "CHR", "ASCII"]


@pytest.mark.parametrize("fn", ENGINE_ONLY)
def test_engine_only_functions_are_refused_by_name(server, fn):
    with driver.connect(server.uri, db="d", autocommit=True) as c:
        cur = c.cursor()
        cur.execute('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "name" text NULL, "n" integer NULL)')
        cur.execute('INSERT INTO "t" ("id", "name", "n") VALUES (1, %s, 65)', ["x"])
        arg = '"t"."n"' if fn == "CHR" else '"t"."name"'
        with pytest.raises(driver.NotSupportedError) as e:
            cur.execute('SELECT "t"."id" FROM "t" WHERE %s(%s) IS NOT NULL' % (fn, arg))
        assert str(e.value).startswith("not supported: %s() on a MongoDB server" % fn)
        cur.execute('SELECT "t"."id", UPPER("t"."name") FROM "t"')  # the connection goes on
        assert cur.fetchall() == [(1, "X")]
