"""mongod's maxTimeAlwaysTimeOut fail point (a test command): every
operation running under a time limit -- a command with maxTimeMS, a getMore
on a cursor such a command opened -- fails with MaxTimeMSExpired (50);
commands without one run as usual. pymongo reports it as ExecutionTimeout."""
import pytest
from pymongo import MongoClient
from pymongo.errors import ExecutionTimeout, OperationFailure

from conftest import Server


@pytest.fixture
def tserver(tmp_path):
    s = Server(tmp_path / "data", "--setParameter", "enableTestCommands=1")
    yield s
    assert s.stop() == 0, "djongo-server did not stop cleanly on SIGTERM"


def always(c, mode):
    return c.admin.command("configureFailPoint", "maxTimeAlwaysTimeOut", mode=mode)


def test_commands_with_max_time_fail(tserver):
    with MongoClient(tserver.uri, directConnection=True, retryReads=False) as c:
        coll = c.db.coll
        coll.insert_many([{"n": i} for i in range(5)])
        always(c, "alwaysOn")
        try:
            with pytest.raises(ExecutionTimeout) as e:
                coll.find_one(max_time_ms=1)
            assert e.value.code == 50 and e.value.details["codeName"] == "MaxTimeMSExpired"
            with pytest.raises(ExecutionTimeout):
                c.db.command("count", "coll", maxTimeMS=1)
            with pytest.raises(ExecutionTimeout):
                coll.create_index("n", maxTimeMS=1)
            with pytest.raises(ExecutionTimeout):
                list(coll.aggregate([], maxTimeMS=5))
            # no time limit: as usual
            assert c.db.command("count", "coll")["n"] == 5
            assert len(list(coll.aggregate([]))) == 5
            assert coll.find_one({"n": 3}, max_time_ms=0)["n"] == 3
        finally:
            always(c, "off")
        assert coll.find_one({"n": 2}, max_time_ms=1)["n"] == 2


def test_get_more_of_a_timed_cursor_fails_and_ends_it(tserver):
    with MongoClient(tserver.uri, directConnection=True, retryReads=False) as c:
        coll = c.db.coll
        coll.insert_many([{"n": i} for i in range(10)])
        timed = coll.find(batch_size=2).max_time_ms(1000)
        untimed = coll.find(batch_size=2)
        next(timed)
        next(untimed)
        cid = timed.cursor_id
        always(c, {"times": 1})
        with pytest.raises(ExecutionTimeout):
            timed.to_list()
        assert len(untimed.to_list()) == 9  # its cursor has no time limit
        with pytest.raises(OperationFailure) as e:  # the failed getMore ended the cursor
            c.db.command("getMore", cid, collection="coll")
        assert e.value.code == 43

