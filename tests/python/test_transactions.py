"""Transactions through the DB-API driver on the embedded engine.

PEP 249's model (autocommit off: the first write begins a transaction that
commit()/rollback() end), SQL's transaction statements, savepoints as Django's
nested atomic blocks use them (SAVEPOINT / RELEASE / ROLLBACK TO, by quoted
name), statement atomicity, isolation from other connections, and what a
server without savepoints says.
"""
import threading

import pytest

from djongo import driver

TABLE = 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "v" integer NULL UNIQUE)'


@pytest.fixture
def path(tmp_path):
    p = str(tmp_path / "db")
    with driver.connect(p, db="d", autocommit=True) as c:
        c.cursor().execute(TABLE)
    return p


@pytest.fixture
def conn(path):
    """A connection in autocommit mode, as Django opens them; closed after the test."""
    with driver.connect(path, db="d", autocommit=True) as c:
        yield c


def values(conn):
    cur = conn.cursor()
    cur.execute('SELECT "t"."v" FROM "t" ORDER BY "t"."v"')
    return [v for (v,) in cur.fetchall()]


def committed(path):
    """The values another connection sees: what has been committed."""
    with driver.connect(path, db="d") as other:
        return values(other)


def test_pep249_implicit_transaction(path):
    a, b = driver.connect(path, db="d"), driver.connect(path, db="d")
    assert a.autocommit is False and not a.in_transaction
    cur = a.cursor()
    cur.execute('SELECT COUNT(*) FROM "t"')  # a read does not begin one
    assert not a.in_transaction
    cur.execute('INSERT INTO "t" ("v") VALUES (1), (2)')
    assert a.in_transaction
    assert values(a) == [1, 2]      # its own writes
    assert values(b) == []          # others see the last commit
    a.rollback()
    assert not a.in_transaction and values(a) == []
    cur.execute('INSERT INTO "t" ("v") VALUES (3)')
    a.commit()
    assert values(b) == [3]
    a.commit()  # nothing open: nothing to do
    a.rollback()
    a.close(), b.close()


def test_close_rolls_back(path):
    a = driver.connect(path, db="d")
    a.cursor().execute('INSERT INTO "t" ("v") VALUES (1)')
    a.close()
    assert committed(path) == []


def test_autocommit_switch_commits(path):
    a = driver.connect(path, db="d")
    a.cursor().execute('INSERT INTO "t" ("v") VALUES (1)')
    a.autocommit = True
    assert not a.in_transaction
    a.cursor().execute('INSERT INTO "t" ("v") VALUES (2)')
    assert not a.in_transaction
    assert committed(path) == [1, 2]
    a.close()


def test_sql_statements_and_savepoints(path, conn):
    """The SQL Django's atomic() sends with autocommit on."""
    cur = conn.cursor()
    cur.execute("BEGIN")
    cur.execute('INSERT INTO "t" ("v") VALUES (1)')
    cur.execute('SAVEPOINT "s1_x1"')
    cur.execute('INSERT INTO "t" ("v") VALUES (2)')
    cur.execute('SAVEPOINT "s1_x2"')
    cur.execute('INSERT INTO "t" ("v") VALUES (3)')
    cur.execute('ROLLBACK TO SAVEPOINT "s1_x2"')
    assert values(conn) == [1, 2]
    cur.execute('INSERT INTO "t" ("v") VALUES (4)')  # the savepoint stays usable
    cur.execute('RELEASE SAVEPOINT "s1_x2"')
    cur.execute('ROLLBACK TO SAVEPOINT "s1_x1"')
    assert values(conn) == [1]
    cur.execute('RELEASE SAVEPOINT "s1_x1"')
    with pytest.raises(driver.ProgrammingError, match="no such savepoint"):
        cur.execute('RELEASE SAVEPOINT "s1_x1"')
    with pytest.raises(driver.OperationalError, match="within a transaction"):
        cur.execute("BEGIN")
    cur.execute('INSERT INTO "t" ("v") VALUES (5)')
    cur.execute("COMMIT")
    assert committed(path) == [1, 5]
    cur.execute("BEGIN")
    cur.execute('DELETE FROM "t"')
    cur.execute("ROLLBACK")
    assert values(conn) == [1, 5]


def test_savepoint_outside_a_transaction_begins_one(path, conn):
    """SQLite's rule: releasing the outermost such savepoint commits."""
    cur = conn.cursor()
    cur.execute('SAVEPOINT "sp"')
    assert conn.in_transaction
    cur.execute('INSERT INTO "t" ("v") VALUES (7)')
    cur.execute('RELEASE SAVEPOINT "sp"')
    assert not conn.in_transaction
    assert committed(path) == [7]


def test_a_failed_statement_leaves_nothing(conn):
    """A multi-row INSERT that meets a duplicate inserts no row and uses no
    id, in autocommit and inside a transaction (which goes on)."""
    cur = conn.cursor()
    cur.execute('INSERT INTO "t" ("v") VALUES (1)')
    with pytest.raises(driver.IntegrityError):
        cur.execute('INSERT INTO "t" ("v") VALUES (2), (3), (1), (4)')
    assert values(conn) == [1]
    cur.execute("BEGIN")
    cur.execute('INSERT INTO "t" ("v") VALUES (5)')
    with pytest.raises(driver.IntegrityError):
        cur.execute('INSERT INTO "t" ("v") VALUES (6), (5)')
    cur.execute('INSERT INTO "t" ("v") VALUES (8)')
    cur.execute("COMMIT")
    assert values(conn) == [1, 5, 8]
    cur.execute('SELECT "t"."id" FROM "t" ORDER BY "t"."id"')
    assert [i for (i,) in cur.fetchall()] == [1, 2, 3]  # failed statements gave out no ids


def test_ddl_rolls_back(path):
    a = driver.connect(path, db="d")
    cur = a.cursor()
    cur.execute('CREATE TABLE "u" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "w" text)')
    cur.execute('INSERT INTO "u" ("w") VALUES (%s)', ["x"])
    a.rollback()
    with pytest.raises(driver.ProgrammingError, match="no such table: u"):  # SQLite's words: the table is gone
        cur.execute('SELECT COUNT(*) FROM "u"')
    cur.execute('INSERT INTO "u" ("w") VALUES (%s)', ["y"])  # a plain collection now: no auto id
    assert cur.lastrowid is None
    a.rollback()
    a.close()


def test_writer_waits_for_commit(path):
    """Another thread's writer waits for the transaction; readers do not."""
    a = driver.connect(path, db="d")
    a.cursor().execute('INSERT INTO "t" ("v") VALUES (1)')
    done, seen = threading.Event(), []

    def other():
        with driver.connect(path, db="d", autocommit=True) as b:
            seen.append(values(b))  # not blocked
            b.cursor().execute('INSERT INTO "t" ("v") VALUES (2)')  # waits
            done.set()

    th = threading.Thread(target=other)
    th.start()
    assert not done.wait(0.3)
    assert seen == [[]]
    a.commit()
    th.join(10)
    assert done.is_set() and values(a) == [1, 2]
    a.close()


def test_same_thread_second_writer_is_refused(path):
    """Two connections in one thread: the second writer would wait for the
    first forever, so it is told so instead."""
    a = driver.connect(path, db="d")
    a.cursor().execute('INSERT INTO "t" ("v") VALUES (1)')
    with driver.connect(path, db="d", autocommit=True) as b:
        with pytest.raises(driver.OperationalError) as e:
            b.cursor().execute('INSERT INTO "t" ("v") VALUES (2)')
        assert e.value.code == 112  # WriteConflict
    a.commit()
    a.close()


def test_server_transport_refuses_savepoints():
    c = driver.connect("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", db="d", autocommit=True)
    with pytest.raises(driver.NotSupportedError, match="savepoints"):
        c.cursor().execute('SAVEPOINT "s"')
    with pytest.raises(driver.OperationalError):
        c.cursor().execute("BEGIN")  # needs the server: none here
    c.close()


def test_savepoint_in_pep249_mode_nests_in_the_transaction(path):
    """Django's nested atomic with autocommit off: the savepoint's RELEASE
    must not commit; the transaction ends at commit()/rollback()."""
    a = driver.connect(path, db="d")
    cur = a.cursor()
    cur.execute('SAVEPOINT "s1"')
    cur.execute('INSERT INTO "t" ("v") VALUES (1)')
    cur.execute('RELEASE SAVEPOINT "s1"')
    assert a.in_transaction
    a.rollback()
    assert values(a) == []
    a.close()
