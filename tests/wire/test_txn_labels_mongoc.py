"""Transactions interrupted by MongoDB's transient errors, through the
libmongoc transport against djongo-server's fail points: the driver's
errors carry the error labels (TransientTransactionError), a commit
labelled UnknownTransactionCommitResult is sent again by the transport, and
djongo.transaction.retry_atomic runs a lost block again so that it commits
once. https://www.mongodb.com/docs/manual/core/transactions-in-applications/"""
import pymongo
import pytest

from conftest import Server, run_django
from djongo import driver


def fail(uri, commands, times, code, labels):
    pymongo.MongoClient(uri).admin.command({
        "configureFailPoint": "failCommand", "mode": {"times": times},
        "data": {"failCommands": commands, "errorCode": code, "errorLabels": labels}})


@pytest.fixture
def tserver(tmp_path):
    s = Server(tmp_path / "data", "--setParameter", "enableTestCommands=1")
    yield s
    assert s.stop() == 0, "djongo-server did not stop cleanly on SIGTERM"


@pytest.fixture
def uri(tserver):
    with driver.connect(tserver.uri, db="d", autocommit=True) as c:
        c.cursor().execute('CREATE TABLE "c" ("id" integer NOT NULL PRIMARY KEY, "n" integer NOT NULL)')
    return tserver.uri


def test_driver_errors_carry_the_labels(uri):
    fail(uri, ["insert"], 1, 112, ["TransientTransactionError"])
    c = driver.connect(uri, db="d")
    with pytest.raises(driver.OperationalError) as e:
        c.cursor().execute('INSERT INTO "c" ("id", "n") VALUES (1, 1)')
    assert e.value.code == 112 and e.value.has_error_label("TransientTransactionError")
    c.rollback()
    c.cursor().execute('INSERT INTO "c" ("id", "n") VALUES (1, 1)')  # run again: it takes
    c.commit()
    c.close()


def test_an_unknown_commit_result_is_committed_again(uri):
    fail(uri, ["commitTransaction"], 2, 50, ["UnknownTransactionCommitResult"])  # MaxTimeMSExpired
    c = driver.connect(uri, db="d")
    c.cursor().execute('INSERT INTO "c" ("id", "n") VALUES (2, 1)')
    c.commit()
    with driver.connect(uri, db="d", autocommit=True) as b:
        cur = b.cursor()
        cur.execute('SELECT "c"."id" FROM "c"')
        assert cur.fetchall() == [(2,)]
    c.close()


def test_a_commit_still_unknown_is_reported_with_its_label(uri):
    fail(uri, ["commitTransaction"], 10, 50, ["UnknownTransactionCommitResult"])
    c = driver.connect(uri, db="d")
    c.cursor().execute('INSERT INTO "c" ("id", "n") VALUES (3, 1)')
    with pytest.raises(driver.OperationalError) as e:
        c.commit()
    assert e.value.has_error_label("UnknownTransactionCommitResult")
    c.close()
    pymongo.MongoClient(uri).admin.command({"configureFailPoint": "failCommand", "mode": "off"})


RETRIED = r'''
import pymongo
from djongo.transaction import retry_atomic
from surfaceapp.models import Maker
pymongo.MongoClient(os.environ["URI"]).admin.command({
    "configureFailPoint": "failCommand", "mode": {"times": 1},
    "data": {"failCommands": ["insert"], "errorCode": 112, "errorLabels": ["TransientTransactionError"]}})
runs = []

@retry_atomic(attempts=3)
def make():
    runs.append(1)
    Maker.objects.create(name="once")

make()
assert len(runs) == 2, runs
assert list(Maker.objects.values_list("name", flat=True)) == ["once"]
print("retried: ok")
'''


def test_retry_atomic_commits_a_retried_block_once(tserver):
    run_django(tserver.uri, "retry", RETRIED)
