"""Transactions through djongo.driver's libmongoc transport against
djongo-server: the session transaction starts at the first statement (a read
too), so MongoDB's rules apply -- the transaction reads one snapshot, a
write to a document another transaction changed since gets WriteConflict
(112, labelled TransientTransactionError on the wire; OperationalError in
the driver), and SELECT ... FOR UPDATE claims its rows by writing them, so a
second claimer conflicts. The same driver code runs against a real MongoDB
replica set."""
import os
import sys

import pytest

from djongo import driver

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from concurrently import in_threads  # noqa: E402


@pytest.fixture
def uri(server):
    with driver.connect(server.uri, db="d", autocommit=True) as c:
        c.cursor().execute('CREATE TABLE "c" ("id" integer NOT NULL PRIMARY KEY, "n" integer NOT NULL)')
        c.cursor().execute('INSERT INTO "c" ("id", "n") VALUES (1, 0)')
    return server.uri


def count(conn, suffix=""):
    cur = conn.cursor()
    cur.execute('SELECT "c"."n" FROM "c" WHERE "c"."id" = 1' + suffix)
    return cur.fetchone()[0]


def test_a_write_on_a_stale_read_conflicts(uri):
    a = driver.connect(uri, db="d")
    n = count(a)  # begins the session transaction: its snapshot
    with driver.connect(uri, db="d", autocommit=True) as b:
        b.cursor().execute('UPDATE "c" SET "n" = 10 WHERE "c"."id" = 1')
        assert count(a) == n == 0
        with pytest.raises(driver.OperationalError) as e:
            a.cursor().execute('UPDATE "c" SET "n" = %s WHERE "c"."id" = 1', [n + 1])
        assert e.value.code == 112
        a.rollback()
        a.cursor().execute('UPDATE "c" SET "n" = %s WHERE "c"."id" = 1', [count(a) + 1])
        a.commit()
        assert count(b) == 11
    a.close()


def test_select_for_update_claims_the_rows(uri):
    a, b = driver.connect(uri, db="d"), driver.connect(uri, db="d")
    assert count(a, " FOR UPDATE") == 0
    with pytest.raises(driver.OperationalError) as e:
        count(b, " FOR UPDATE")  # a holds the claim
    assert e.value.code == 112
    b.rollback()
    a.cursor().execute('UPDATE "c" SET "n" = 1 WHERE "c"."id" = 1')
    a.commit()
    n = count(b, " FOR UPDATE")  # free again, and it sees a's commit
    b.cursor().execute('UPDATE "c" SET "n" = %s WHERE "c"."id" = 1', [n + 1])
    b.commit()
    doc = a.command({"find": "c", "filter": {}})["cursor"]["firstBatch"][0]
    assert doc["n"] == 2 and "__djongo_claim" not in doc
    a.close(), b.close()


def test_concurrent_increments_lose_nothing(uri):
    per = 50

    def work(_):
        with driver.connect(uri, db="d") as c:
            for _ in range(per):
                while True:
                    try:
                        c.cursor().execute('UPDATE "c" SET "n" = %s WHERE "c"."id" = 1', [count(c) + 1])
                        c.commit()
                        break
                    except driver.OperationalError as e:
                        assert e.code == 112, e
                        c.rollback()

    assert in_threads(work, 2) == []
    with driver.connect(uri, db="d", autocommit=True) as c:
        assert count(c) == 2 * per
