"""Savepoints on djongo-server (hello's djongo.savepoints): SQL's SAVEPOINT,
RELEASE and ROLLBACK TO inside a MongoDB transaction, as the commands
djongoSavepoint, djongoReleaseSavepoint and djongoRollbackToSavepoint
(src/server/sessions.c), which djongo's transport sends for Django's nested
atomic() blocks -- so that they, and Django's TestCase (a transaction per
class, a savepoint per test), work against the server as on the embedded
engine. MongoDB has none: there the driver still refuses them by name."""
import os
import re
import subprocess
import sys
import textwrap

import pymongo
import pytest
from pymongo.errors import OperationFailure

from conftest import run_django


def _ids(coll, session=None):
    return sorted(d["_id"] for d in coll.find({}, session=session))


@pytest.fixture
def c(server):
    """A pymongo client of the test's server (its database t: c.t)."""
    client = pymongo.MongoClient(server.uri)
    yield client
    client.close()


def test_hello_announces_them(c):
    assert c.admin.command("hello")["djongo"]["savepoints"] is True


def test_rollback_to_release_and_commit(c):
    db = c.t
    db.x.insert_one({"_id": 0})
    with c.start_session() as s:
        s.start_transaction()
        db.command("djongoSavepoint", "a", session=s)  # the transaction's first command begins it
        db.x.insert_one({"_id": 1}, session=s)
        db.command("djongoSavepoint", "b", session=s)
        db.x.insert_one({"_id": 2}, session=s)
        db.command("djongoRollbackToSavepoint", "b", session=s)  # 2 is gone, b stays (empty)
        assert _ids(db.x, s) == [0, 1]
        db.x.insert_one({"_id": 3}, session=s)
        db.command("djongoReleaseSavepoint", "B", session=s)  # names fold case, as SQL's
        db.command("djongoRollbackToSavepoint", "a", session=s)  # b went with its release; a still there
        assert _ids(db.x, s) == [0]
        db.x.insert_one({"_id": 4}, session=s)
        db.command("djongoSavepoint", "c", session=s)
        db.x.insert_one({"_id": 5}, session=s)
        assert _ids(db.x) == [0]  # nothing visible outside before the commit
        s.commit_transaction()  # commits the open savepoints with it
    assert _ids(db.x) == [0, 4, 5]


def test_a_failure_under_a_savepoint_leaves_the_transaction_open(c):
    db = c.t
    db.x.create_index("u", unique=True, sparse=True)
    db.x.insert_one({"_id": 0, "u": 0})
    with c.start_session() as s:
        s.start_transaction()
        db.x.insert_one({"_id": 1}, session=s)
        db.command("djongoSavepoint", "a", session=s)
        db.x.insert_one({"_id": 2}, session=s)
        with pytest.raises(OperationFailure) as e:
            # the second document is a duplicate: the first must not stay behind
            db.x.insert_many([{"_id": 3}, {"_id": 4, "u": 0}], session=s)
        assert e.value.details["writeErrors"][0]["code"] == 11000
        assert _ids(db.x, s) == [0, 1, 2]  # 3 went with the failed insert
        db.command("djongoRollbackToSavepoint", "a", session=s)
        db.x.insert_one({"_id": 5}, session=s)
        s.commit_transaction()
    assert _ids(db.x) == [0, 1, 5]


def test_without_a_savepoint_a_failure_still_aborts(c):
    # MongoDB's rule stands when no savepoint is open: an unknown name
    # fails, and so aborts the transaction like any failed command
    db = c.t
    with c.start_session() as s:
        s.start_transaction()
        db.x.insert_one({"_id": 1}, session=s)
        with pytest.raises(OperationFailure) as e:
            db.command("djongoRollbackToSavepoint", "nope", session=s)
        assert e.value.code == 20 and "no such savepoint: nope" in str(e.value)
        with pytest.raises(OperationFailure) as e:
            db.x.insert_one({"_id": 2}, session=s)
        assert e.value.code == 251  # NoSuchTransaction
        s.abort_transaction()
    assert _ids(db.x) == []


def test_a_write_conflict_aborts_even_under_a_savepoint(c):
    db = c.t
    db.x.insert_one({"_id": 0})
    with c.start_session() as s:
        s.start_transaction()
        assert _ids(db.x, s) == [0]  # a snapshot, not yet writing
        db.x.insert_one({"_id": 1})  # committed by someone else since
        # a savepoint makes the transaction a writer: its snapshot is stale
        with pytest.raises(OperationFailure) as e:
            db.command("djongoSavepoint", "a", session=s)
        assert e.value.code == 112 and e.value.has_error_label("TransientTransactionError")
        with pytest.raises(OperationFailure) as e:
            db.x.insert_one({"_id": 2}, session=s)
        assert e.value.code == 251


def test_refused_outside_a_transaction_and_without_a_name(c):
    db = c.t
    for name in ("djongoSavepoint", "djongoReleaseSavepoint", "djongoRollbackToSavepoint"):
        with pytest.raises(OperationFailure) as e:
            db.command(name, "a")
        assert e.value.code == 72 and "only inside a multi-document transaction" in str(e.value)
    with c.start_session() as s:
        with pytest.raises(OperationFailure) as e:
            db.command("djongoSavepoint", "a", session=s)  # a session, no transaction
        assert e.value.code == 72
        for bad in (5, "", "a\x00b"):  # each failure aborts its transaction: one each
            s.start_transaction()
            with pytest.raises(OperationFailure) as e:
                db.command("djongoSavepoint", bad, session=s)
            assert e.value.code == 14
            s.abort_transaction()


def test_django_nested_atomic(server):
    run_django(server.uri, "nested", r'''
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction
assert connection.features.uses_savepoints
with transaction.atomic():
    Group.objects.create(name="outer")
    try:
        with transaction.atomic():
            Group.objects.create(name="inner")
            raise ValueError
    except ValueError:
        pass
    with transaction.atomic():
        Group.objects.create(name="kept")
    try:
        with transaction.atomic():
            Group.objects.create(name="outer")  # a duplicate name: IntegrityError under the savepoint
    except IntegrityError:
        pass
    assert connection.is_usable()  # the transaction goes on
    Group.objects.create(name="after")
    g, made = Group.objects.get_or_create(name="kept")  # its IntegrityError path needs a savepoint
    assert not made
assert sorted(Group.objects.values_list("name", flat=True)) == ["after", "kept", "outer"]
print("ok")
''')


def test_dbapi_savepoint_outside_a_transaction(server):
    # as on the embedded engine (and SQLite): SAVEPOINT outside a
    # transaction begins one, which the release of the last savepoint commits
    from djongo import driver
    conn = driver.connect(server.uri, db="dbapi_sp", autocommit=True)
    cur = conn.cursor()
    cur.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
    cur.execute("SAVEPOINT a")
    assert conn.in_transaction
    cur.execute("INSERT INTO t (id, v) VALUES (1, 1)")
    cur.execute("SAVEPOINT b")
    cur.execute("INSERT INTO t (id, v) VALUES (2, 2)")
    cur.execute("ROLLBACK TO SAVEPOINT b")
    with pytest.raises(driver.ProgrammingError, match="no such savepoint: c"):
        cur.execute("RELEASE SAVEPOINT c")
    cur.execute("RELEASE SAVEPOINT a")
    assert not conn.in_transaction
    cur.execute("SELECT id FROM t ORDER BY id")
    assert cur.fetchall() == [(1,)]
    conn.close()


TESTS = '''
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.test import TestCase, TransactionTestCase


class ClassData(TestCase):
    @classmethod
    def setUpTestData(cls):
        Group.objects.create(name="class")

    def test_writes_are_rolled_back(self):
        Group.objects.create(name="mine")
        self.assertEqual(Group.objects.count(), 2)

    def test_sees_only_class_data(self):
        self.assertEqual(list(Group.objects.values_list("name", flat=True)), ["class"])

    def test_integrity_error_inside(self):
        with self.assertRaises(IntegrityError):
            with transaction.atomic():
                Group.objects.create(name="class")
        self.assertEqual(Group.objects.count(), 1)


class Flushed(TransactionTestCase):
    def test_commits(self):
        Group.objects.create(name="t")
        self.assertEqual(Group.objects.count(), 1)
'''


def test_manage_py_test_against_the_server(tmp_path, server):
    app = tmp_path / "sptest"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "tests.py").write_text(TESTS)
    (tmp_path / "sp_settings.py").write_text(textwrap.dedent('''
        SECRET_KEY = "x"
        USE_TZ = True
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "sptest"]
        DATABASES = {"default": {"ENGINE": "djongo", "NAME": "sptest", "HOST": %r}}
        DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
    ''' % server.uri))
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="sp_settings",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-m", "django", "test", "sptest", "-v", "2"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert re.search(r"Ran 4 tests", out) and "OK" in out, out


def test_uses_savepoints_is_not_decided_without_a_server():
    # djongo_has() cannot tell "no such extension" from "no server to ask":
    # the feature raises rather than keep a no for the connection's life
    p = subprocess.run([sys.executable, "-c", textwrap.dedent('''
        from django.conf import settings
        settings.configure(DATABASES={"default": {"ENGINE": "djongo", "NAME": "f",
                                                  "HOST": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"}})
        import django
        django.setup()
        from django.db import OperationalError, connection
        try:
            connection.features.uses_savepoints
            raise SystemExit("no error")
        except OperationalError:
            pass
        assert "uses_savepoints" not in connection.features.__dict__
        print("ok")
    ''')], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stdout + p.stderr
