"""An INSERT's FOREIGN KEYs over djongo-server: checked by the insert
command itself (djongoReferences, src/engine/commands/references.c), which
djongo's transport sends because the server's hello says it reads them --
one command, one round trip per INSERT, where a query after the insert
checked the parent row before. A missing parent fails the INSERT with the
same IntegrityError, and now with nothing written (outside a transaction
the insert and the query after it were two separate writes' worth: the row
stayed). The server's profiler (level 2: every operation) shows which
commands a statement sent."""
import pymongo
import pytest

from conftest import Server
from djongo import driver

TABLES = ('CREATE TABLE "a" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" text NOT NULL)',
          'CREATE TABLE "b" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "title" text NOT NULL, '
          '"a_id" integer NOT NULL REFERENCES "a" ("id") DEFERRABLE INITIALLY DEFERRED)')


@pytest.fixture
def conn(server):
    c = driver.connect(server.uri, db="d", autocommit=True, tables=driver.TABLES_STRICT)
    cur = c.cursor()
    for sql in TABLES:
        cur.execute(sql)
    cur.execute('INSERT INTO "a" ("name") VALUES (%s)', ["one"])
    yield c
    c.close()


def test_hello_says_the_engine_reads_references(server):
    with pymongo.MongoClient(server.uri) as mc:
        assert mc.admin.command("hello")["djongo"] == {"insertReferences": True, "deferredReferences": True,
                                                      "djongoMax": True, "recordKeyed": True, "savepoints": True}


def test_no_query_for_the_parent(server, conn):
    cur = conn.cursor()
    with pymongo.MongoClient(server.uri) as mc:
        db = mc.d
        db.command("profile", 2)
        cur.execute('INSERT INTO "b" ("title", "a_id") VALUES (%s, %s) RETURNING "b"."id"', ["t", 1])
        db.command("profile", 0)
        ran = [(d["ns"], d["op"]) for d in db.system.profile.find() if "profile" not in d.get("command", {})]
        # (the first INSERT into b also reads b's table entry and reserves
        # its id: commands on b and __djongo_tables; none reads a)
        assert ("d.b", "insert") in ran and not [r for r in ran if r[0] == "d.a"], ran
        assert cur.fetchone() == (1,)
        assert list(db.b.find({}, {"_id": 0})) == [{"id": 1, "title": "t", "a_id": 1}]
    # DEFERRABLE INITIALLY DEFERRED inside a transaction: the insert reports
    # the value without its parent (djongoUnsettled), which the COMMIT then
    # checks (constraint.c): the parent may come later
    conn.autocommit = False
    cur.execute('INSERT INTO "b" ("title", "a_id") VALUES (%s, %s)', ["t", 2])
    cur.execute('INSERT INTO "a" ("id", "name") VALUES (%s, %s)', [2, "two"])
    conn.commit()
    conn.autocommit = True
    with pymongo.MongoClient(server.uri) as mc:
        assert mc.d.b.count_documents({"a_id": 2}) == 1


def test_missing_parent_fails_and_writes_nothing(server, conn):
    cur = conn.cursor()
    with pytest.raises(driver.IntegrityError, match=r"^FOREIGN KEY constraint failed: b\.a_id = 7 has no row in a\.id"):
        cur.execute('INSERT INTO "b" ("title", "a_id") VALUES (%s, %s) RETURNING "b"."id"', ["t", 7])
    with pymongo.MongoClient(server.uri) as mc:
        assert mc.d.b.count_documents({}) == 0
    cur.execute('INSERT INTO "b" ("title", "a_id") VALUES (%s, %s)', ["t", 1])
    with pymongo.MongoClient(server.uri) as mc:
        assert mc.d.b.count_documents({}) == 1



@pytest.fixture
def tconn(tmp_path):
    """conn's tables on a server of its own with the test commands on
    (failCommand: a command the statement must not send fails it)."""
    s = Server(tmp_path / "data", "--setParameter", "enableTestCommands=1")
    c = driver.connect(s.uri, db="d", autocommit=True, tables=driver.TABLES_STRICT)
    cur = c.cursor()
    for sql in TABLES:
        cur.execute(sql)
    cur.execute('INSERT INTO "a" ("name") VALUES (%s)', ["one"])
    cur.execute('INSERT INTO "b" ("title", "a_id") VALUES (%s, %s)', ["first", 1])
    yield s, c
    c.close()
    s.stop()


def failing(server, commands):
    """failCommand on `commands` until the block ends."""
    class Block:
        def __enter__(self):
            self.mc = pymongo.MongoClient(server.uri)
            self.mc.admin.command({"configureFailPoint": "failCommand", "mode": "alwaysOn",
                                   "data": {"failCommands": commands, "errorCode": 2}})

        def __exit__(self, *exc):
            self.mc.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
            self.mc.close()
    return Block()


def test_deferred_key_settled_by_the_insert(tconn):
    """A deferred key written inside a transaction whose parent row is there
    already is settled by the insert (djongoReferences' deferred items):
    the COMMIT sends no query for the parent rows (an aggregate would fail
    here) -- a bulk INSERT's transaction one round trip shorter."""
    server, conn = tconn
    cur = conn.cursor()
    conn.autocommit = False
    with failing(server, ["aggregate"]):
        cur.execute('INSERT INTO "b" ("title", "a_id") VALUES (%s, %s), (%s, %s)', ["t", 1, "u", 1])
        conn.commit()
    with pymongo.MongoClient(server.uri) as mc:
        assert mc.d.b.count_documents({"a_id": 1}) == 3
    # a parent missing at the insert and still at COMMIT: IntegrityError at
    # COMMIT, the transaction still open; a parent deleted after a settled
    # insert is the DELETE's own check, at COMMIT too
    cur.execute('INSERT INTO "b" ("title", "a_id") VALUES (%s, %s)', ["t", 9])
    with pytest.raises(driver.IntegrityError, match=r"^FOREIGN KEY constraint failed: b\.a_id = 9 has no row in a\.id"):
        conn.commit()
    conn.rollback()
    cur.execute('INSERT INTO "a" ("id", "name") VALUES (%s, %s)', [3, "three"])
    conn.commit()
    cur.execute('INSERT INTO "b" ("title", "a_id") VALUES (%s, %s)', ["t", 3])
    cur.execute('DELETE FROM "a" WHERE "id" = %s', [3])
    with pytest.raises(driver.IntegrityError, match=r"^FOREIGN KEY constraint failed: b\.a_id = 3 has no row in a\.id"):
        conn.commit()
    conn.rollback()
    conn.autocommit = True
    with pymongo.MongoClient(server.uri) as mc:
        assert mc.d.b.count_documents({"a_id": {"$ne": 1}}) == 0
        assert mc.d.a.count_documents({"id": 3}) == 1


def test_ids_reserved_in_one_command(tconn):
    """An INSERT's AUTOINCREMENT ids come from one findAndModify of the
    counter that reads the table's largest id itself (djongoMax,
    src/engine/commands/maxof.c): no find of that id before it (a find
    would fail here). Ids written past the counter by something else are
    still never given again."""
    server, conn = tconn
    cur = conn.cursor()
    with pymongo.MongoClient(server.uri) as mc:
        mc.d.a.insert_one({"id": 50, "name": "by hand"})  # the counter does not know it
    with failing(server, ["find"]):
        cur.execute('INSERT INTO "a" ("name") VALUES (%s), (%s) RETURNING "a"."id"', ["x", "y"])
        assert cur.fetchall() == [(51,), (52,)]
