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
    cur.execute('SELECT COUNT(*) FROM "t"')  # a read begins one too (a snapshot)
    assert a.in_transaction
    cur.execute('INSERT INTO "t" ("v") VALUES (1), (2)')
    assert a.in_transaction
    assert values(a) == [1, 2]      # its own writes
    assert values(b) == []          # others see the last commit
    a.rollback()
    assert not a.in_transaction and values(a) == []
    cur.execute('INSERT INTO "t" ("v") VALUES (3)')
    a.commit()
    assert values(b) == []          # b's transaction keeps the snapshot of its first read
    b.rollback()
    assert values(b) == [3]         # a new transaction, a new snapshot
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


# ---- reads inside a transaction, conflicts, SELECT ... FOR UPDATE ------------

def counter(path, n=0):
    with driver.connect(path, db="d", autocommit=True) as c:
        c.cursor().execute('CREATE TABLE "c" ("id" integer NOT NULL PRIMARY KEY, "n" integer NOT NULL)')
        c.cursor().execute('INSERT INTO "c" ("id", "n") VALUES (1, %s)', [n])


def count(conn):
    cur = conn.cursor()
    cur.execute('SELECT "c"."n" FROM "c" WHERE "c"."id" = 1')
    return cur.fetchone()[0]


def test_reads_see_the_snapshot_and_own_writes(path):
    """A transaction's first statement begins it, a read too: its reads see
    one snapshot plus its own writes, never what others commit meanwhile;
    others do not see its writes before it commits."""
    counter(path, 5)
    a = driver.connect(path, db="d")
    with driver.connect(path, db="d", autocommit=True) as b:
        assert count(a) == 5 and a.in_transaction
        b.cursor().execute('UPDATE "c" SET "n" = 7 WHERE "c"."id" = 1')
        assert count(a) == 5            # a's snapshot, not b's commit
        assert count(b) == 7
        a.rollback()
        assert count(a) == 7            # a new transaction: a new snapshot
        a.cursor().execute('UPDATE "c" SET "n" = "c"."n" + 1 WHERE "c"."id" = 1')
        assert count(a) == 8            # its own uncommitted write
        assert count(b) == 7            # not visible to another connection
        a.commit()
        assert count(b) == 8
    a.close()


def test_write_after_a_conflicting_commit_fails(path):
    """Read, another commits, write: the write fails with WriteConflict
    (OperationalError, code 112) instead of writing on a stale read; after
    a rollback the retry sees the new value (SQLite's WAL mode does the same)."""
    counter(path, 1)
    a = driver.connect(path, db="d")
    n = count(a)
    with driver.connect(path, db="d", autocommit=True) as b:
        b.cursor().execute('UPDATE "c" SET "n" = 10 WHERE "c"."id" = 1')
    with pytest.raises(driver.OperationalError) as e:
        a.cursor().execute('UPDATE "c" SET "n" = %s WHERE "c"."id" = 1', [n + 1])
    assert e.value.code == 112 and "WriteConflict" in str(e.value)
    a.rollback()
    n = count(a)
    a.cursor().execute('UPDATE "c" SET "n" = %s WHERE "c"."id" = 1', [n + 1])
    a.commit()
    assert committed_count(path) == 11
    a.close()


def committed_count(path):
    with driver.connect(path, db="d", autocommit=True) as other:
        return count(other)


def test_read_only_transactions_do_not_block_writers(path):
    """A transaction that only reads holds no lock: others write meanwhile."""
    counter(path)
    a = driver.connect(path, db="d")
    assert count(a) == 0
    done = threading.Event()

    def other():
        with driver.connect(path, db="d", autocommit=True) as b:
            b.cursor().execute('UPDATE "c" SET "n" = 3 WHERE "c"."id" = 1')
        done.set()

    th = threading.Thread(target=other)
    th.start()
    th.join(30)
    assert done.is_set() and count(a) == 0
    a.commit()
    assert count(a) == 3
    a.close()


def test_select_for_update_takes_the_write_lock(path):
    """SELECT ... FOR UPDATE as a transaction's first statement holds the
    write lock from that SELECT: another writer waits for the commit, so
    its increment is not lost; the claimed document is left as it was."""
    counter(path, 1)
    a = driver.connect(path, db="d")
    cur = a.cursor()
    cur.execute('SELECT "c"."id", "c"."n" FROM "c" WHERE "c"."id" = %s FOR UPDATE', [1])
    assert cur.fetchall() == [(1, 1)]
    done = threading.Event()

    def other():
        with driver.connect(path, db="d", autocommit=True) as b:
            b.cursor().execute('UPDATE "c" SET "n" = "c"."n" + 10 WHERE "c"."id" = 1')  # waits
        done.set()

    th = threading.Thread(target=other)
    th.start()
    assert not done.wait(0.3)
    cur.execute('UPDATE "c" SET "n" = %s WHERE "c"."id" = 1', [2])
    a.commit()
    th.join(30)
    assert done.is_set() and committed_count(path) == 12
    doc = a.command({"find": "c", "filter": {}})["cursor"]["firstBatch"][0]
    assert sorted(doc) == ["_id", "id", "n"]  # no trace of the claim
    a.rollback()
    a.close()


def test_select_for_update_after_a_stale_read_conflicts(path):
    """FOR UPDATE after a read whose snapshot another commit made stale: the
    lock cannot be had on that snapshot, WriteConflict."""
    counter(path)
    a = driver.connect(path, db="d")
    assert count(a) == 0
    with driver.connect(path, db="d", autocommit=True) as b:
        b.cursor().execute('UPDATE "c" SET "n" = 5 WHERE "c"."id" = 1')
    with pytest.raises(driver.OperationalError) as e:
        a.cursor().execute('SELECT "c"."n" FROM "c" WHERE "c"."id" = 1 FOR UPDATE')
    assert e.value.code == 112
    a.rollback()
    a.close()


def test_select_for_update_outside_a_transaction_claims_nothing(path, conn):
    """In autocommit a lock would end with the statement: only the read runs
    (the claim is the transaction's), as FOR UPDATE alone in PostgreSQL."""
    counter(path, 4)
    conn.trace = True
    cur = conn.cursor()
    cur.execute('SELECT "c"."n" FROM "c" FOR UPDATE')
    assert cur.fetchall() == [(4,)]
    assert [c.split('"')[1] for c in cur.last_commands] == ["find"]
    assert not conn.in_transaction
    conn.cursor().execute("BEGIN")
    cur.execute('SELECT "c"."n" FROM "c" FOR UPDATE')
    assert [c.split('"')[1] for c in cur.last_commands] == ["update", "find"]
    conn.cursor().execute("COMMIT")
    with pytest.raises(driver.NotSupportedError, match="NOWAIT"):
        cur.execute('SELECT "c"."n" FROM "c" FOR UPDATE NOWAIT')


def test_select_for_update_over_a_join(path):
    """A join (Django's update_or_create() through a related manager): the
    first table's rows the query reads are claimed (their _ids found by an
    aggregate), and the write lock is held from that SELECT -- a second
    writer in this thread is told WriteConflict rather than deadlocking."""
    counter(path, 2)
    with driver.connect(path, db="d", autocommit=True) as c:
        c.cursor().execute('CREATE TABLE "p" ("id" integer NOT NULL PRIMARY KEY, "tag" text NOT NULL)')
        c.cursor().execute('INSERT INTO "p" ("id", "tag") VALUES (1, %s), (2, %s)', ["x", "y"])
    a = driver.connect(path, db="d")
    a.trace = True
    cur = a.cursor()
    cur.execute('SELECT "c"."n" FROM "c" INNER JOIN "p" ON ("c"."id" = "p"."id") WHERE "p"."tag" = %s FOR UPDATE',
                ["x"])
    assert cur.fetchall() == [(2,)]
    assert [c.split('"')[1] for c in cur.last_commands] == ["aggregate", "update", "aggregate"]
    assert cur.last_commands[1].count('"$oid"') == 2  # one row's _id, in the set and in the unset
    with driver.connect(path, db="d", autocommit=True) as b:
        with pytest.raises(driver.OperationalError) as e:
            b.cursor().execute('UPDATE "p" SET "tag" = %s WHERE "p"."id" = 2', ["z"])
        assert e.value.code == 112
    a.rollback()
    a.close()


def test_snapshots_dropped_on_another_thread_free_their_reader_slot(path):
    """A connection whose transaction only read, dropped on another thread
    (garbage collection does that): its snapshot ends there and then, rather
    than holding one of LMDB's 512 reader slots until the process exits."""
    counter(path)
    keep = driver.connect(path, db="d", autocommit=True)  # keeps the environment (and its reader table) open
    for _ in range(600):
        a = driver.connect(path, db="d")
        assert count(a) == 0  # a snapshot transaction is open
        box = [a]
        del a
        th = threading.Thread(target=box.clear)  # the last reference goes on that thread
        th.start()
        th.join()
    with driver.connect(path, db="d") as c:
        assert count(c) == 0
    keep.close()
